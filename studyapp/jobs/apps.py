from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "studyapp.jobs"
    label = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from . import handlers  # noqa: F401 - registers the built-in job kinds
