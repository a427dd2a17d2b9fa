from django.urls import path

from . import views

app_name = "cases"

urlpatterns = [
    path("studies/new/", views.study_create, name="study-create"),
    path("studies/<int:study_id>/", views.study_detail, name="study-detail"),
    path("studies/<int:study_id>/cases/new/", views.case_create, name="case-create"),
    path("cases/<int:case_id>/", views.case_detail, name="case-detail"),
    path("cases/<int:case_id>/upload/ct/", views.upload_ct, name="upload-ct"),
    path("cases/<int:case_id>/upload/xray/", views.upload_xray, name="upload-xray"),
    path("cases/<int:case_id>/upload/labels/", views.upload_labels, name="upload-labels"),
    path("cases/<int:case_id>/upload/meshes/", views.upload_meshes, name="upload-meshes"),
    path("cases/<int:case_id>/simulate-xray/", views.simulate_drr, name="simulate-xray"),
    path("cases/<int:case_id>/reconstruct-ct/", views.reconstruct_ct, name="reconstruct-ct"),
    path(
        "cases/<int:case_id>/xray-pairs/<int:pair_id>/reconstruct/",
        views.reconstruct_xray,
        name="reconstruct-xray",
    ),
]
