from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "studyapp.demo"
    label = "demo"
    verbose_name = "Demo study"
