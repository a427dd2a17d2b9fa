from django.urls import path

from . import views

app_name = "reading"

urlpatterns = [
    # raters
    path("reading/<int:reader_study_id>/next/", views.next_item, name="next"),
    path("reading/items/<int:assignment_id>/", views.read, name="read"),
    path("reading/items/<int:assignment_id>/model.glb", views.blinded_model, name="model"),
    # coordinators
    path("reader-studies/", views.study_list, name="study-list"),
    path("reader-studies/new/", views.study_create, name="study-create"),
    path("reader-studies/<int:reader_study_id>/", views.study_design, name="study-design"),
    path(
        "reader-studies/<int:reader_study_id>/questions/<int:question_id>/delete/",
        views.question_delete,
        name="question-delete",
    ),
    path("reader-studies/<int:reader_study_id>/progress/", views.progress, name="progress"),
    path(
        "reader-studies/<int:reader_study_id>/readers/<int:reader_id>/reset/",
        views.reset_reader,
        name="reset-reader",
    ),
    path("reader-studies/<int:reader_study_id>/audit/", views.audit, name="audit"),
    path(
        "reader-studies/<int:reader_study_id>/unblinding-key.csv",
        views.unblinding_key,
        name="unblinding-key",
    ),
]
