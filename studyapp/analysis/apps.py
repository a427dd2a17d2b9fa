from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    name = "studyapp.analysis"
    label = "analysis"
    verbose_name = "Exports, reports and analyses"

    def ready(self) -> None:
        from studyapp.demo.services import DEMO_STEPS

        from . import tasks  # noqa: F401 - registers this app's job kinds
        from .demo import build_demo_analysis

        if build_demo_analysis not in DEMO_STEPS:
            DEMO_STEPS.append(build_demo_analysis)
