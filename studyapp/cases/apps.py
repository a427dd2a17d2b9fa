from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "studyapp.cases"
    label = "cases"
    verbose_name = "Cases and imaging data"

    def ready(self) -> None:
        from studyapp.demo.services import DEMO_STEPS

        from . import tasks  # noqa: F401 - registers this app's job kinds
        from .demo import add_phantom_cases

        if add_phantom_cases not in DEMO_STEPS:
            DEMO_STEPS.append(add_phantom_cases)
