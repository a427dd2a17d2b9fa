"""Settings: the embedded default and production chosen by the environment alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 30 + "-a-long-random-production-secret-key-for-tests",
    "ALLOWED_HOSTS": "knee.example.org",
    "DATABASE_URL": "postgres://study@db.example.org:5432/knee",
    "CELERY_BROKER_URL": "redis://cache.example.org:6379/0",
    "REDIS_URL": "redis://cache.example.org:6379/1",
}
SETTINGS_ENV_NAMES = (*PRODUCTION_ENV, "CELERY_RESULT_BACKEND", "MEDIA_ROOT", "STUDYAPP_VAR_DIR")


def _clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV_NAMES}
    env.update(overrides)
    return env


def _print_settings(env: dict[str, str], expression: str) -> str:
    code = f"import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','studyapp.settings'); django.setup(); from django.conf import settings as s; print({expression})"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_no_environment_means_the_embedded_default():
    out = _print_settings(
        _clean_env(),
        "s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CELERY_RESULT_BACKEND, s.DEBUG, s.DEMO_ENABLED",
    )
    assert out == "django.db.backends.sqlite3 filesystem:// django-db True True"


def test_production_variables_select_postgres_and_redis():
    out = _print_settings(
        _clean_env(**PRODUCTION_ENV),
        "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL, s.SESSION_COOKIE_SECURE, s.DEMO_ENABLED, s.CACHES['default']['BACKEND']",
    )
    assert out == (
        "django.db.backends.postgresql db.example.org redis://cache.example.org:6379/0 True False "
        "django.core.cache.backends.redis.RedisCache"
    )


def test_deploy_check_passes_without_warnings_in_production_mode():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=_clean_env(**PRODUCTION_ENV),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = _clean_env(**{k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
