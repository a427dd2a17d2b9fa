from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "studyapp.reading"
    label = "reading"
    verbose_name = "Blinded reader studies"

    def ready(self) -> None:
        from studyapp.demo.services import DEMO_STEPS

        from . import tasks  # noqa: F401 - registers this app's job kinds
        from .demo import build_demo_reader_study, simulate_demo_reading

        for step in (build_demo_reader_study, simulate_demo_reading):
            if step not in DEMO_STEPS:
                DEMO_STEPS.append(step)
