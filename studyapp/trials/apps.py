from django.apps import AppConfig


class TrialsConfig(AppConfig):
    name = "studyapp.trials"
    label = "trials"
    verbose_name = "Osteotomy-guide trials"

    def ready(self) -> None:
        from studyapp.demo.services import DEMO_STEPS

        from . import tasks  # noqa: F401 - registers this app's job kinds
        from .demo import build_demo_guide_trial

        if build_demo_guide_trial not in DEMO_STEPS:
            DEMO_STEPS.append(build_demo_guide_trial)
