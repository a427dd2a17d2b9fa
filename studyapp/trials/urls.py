from django.urls import path

from . import views

app_name = "trials"

urlpatterns = [
    path("guide-trials/", views.trial_list, name="trial-list"),
    path("guide-trials/new/", views.trial_create, name="trial-create"),
    path("guide-trials/<int:trial_id>/", views.trial_detail, name="trial-detail"),
    path("guide-trials/<int:trial_id>/import/", views.import_csv, name="import-csv"),
    path("guide-trials/<int:trial_id>/virtual/", views.run_virtual, name="run-virtual"),
    path("guide-trials/placements/<int:placement_id>/", views.outcome_entry, name="outcome-entry"),
    path("guide-trials/assess/", views.assessor_list, name="assessor-list"),
    path("guide-trials/assess/<int:placement_id>/", views.assessor_entry, name="assessor-entry"),
    path("cases/<int:case_id>/guides/", views.case_guides, name="case-guides"),
    path("guides/<int:guide_id>/<str:filename>", views.guide_download, name="guide-download"),
]
