from django.urls import path

from . import views

app_name = "analysis"

urlpatterns = [
    path("analysis/", views.dashboard, name="dashboard"),
    path("analysis/<int:reader_study_id>/export/", views.export_create, name="export-create"),
    path(
        "analysis/exports/<int:export_id>/download/", views.export_download, name="export-download"
    ),
    path("analysis/<int:reader_study_id>/report/", views.report_create, name="report-create"),
    path("analysis/reports/<int:report_id>/", views.report_html, name="report-html"),
    path("analysis/reports/<int:report_id>/report.pdf", views.report_pdf, name="report-pdf"),
]
