"""The Django project: web platform for the knee reconstruction study."""

from .celery import app as celery_app

__all__ = ["celery_app"]
