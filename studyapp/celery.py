"""Celery application; broker and result backend come from Django settings."""

import os

from celery import Celery
from celery.signals import worker_init

from reconstruction.runtime import keep_freed_memory

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")

app = Celery("studyapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _ensure_filesystem_broker_folders() -> None:
    """kombu's filesystem transport needs its folders before the first message."""
    from django.conf import settings

    if not settings.configured or not str(settings.CELERY_BROKER_URL).startswith("filesystem"):
        return
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
        if folder:
            os.makedirs(folder, exist_ok=True)


app.on_after_configure.connect(lambda sender, **_: _ensure_filesystem_broker_folders(), weak=False)


# Reconstruction jobs allocate CT-sized temporaries; reuse freed memory (reconstruction.runtime).
worker_init.connect(lambda **_: keep_freed_memory(), weak=False)  # forked children inherit it
