"""Shared fixtures: isolated media, users per role, and a real Celery worker for integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from studyapp.accounts.roles import Role
from tests.studyapp.factories import UserFactory

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path: Path) -> Path:
    """Each test writes its files to its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def eager_celery(request) -> Iterator[None]:
    """Unit tests run tasks in-process; integration tests use the real worker."""
    from studyapp.celery import app

    eager = request.node.get_closest_marker("integration") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def user_with_role(db):
    def make(role: Role | None, **fields):
        return UserFactory(roles=[role] if role else [], **fields)

    return make


@pytest.fixture
def coordinator(user_with_role):
    return user_with_role(Role.COORDINATOR)


@pytest.fixture
def statistician(user_with_role):
    return user_with_role(Role.STATISTICIAN)


@pytest.fixture
def rater(user_with_role):
    return user_with_role(Role.RATER)


@pytest.fixture
def admin_user(user_with_role):
    return user_with_role(Role.ADMIN)


def _database_url(settings_dict: dict) -> str:
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict]:
    """A real `celery worker` process on the configured broker and the test database.

    Yields a dict with the worker's Popen, its media root and a `restart()` helper so
    tests can kill it (SIGKILL) in the middle of a task and start a new one.
    """
    from django.conf import settings
    from django.db import connection

    from studyapp.celery import app

    media_root = tmp_path_factory.mktemp("worker-media")
    env = os.environ.copy()
    env.update(
        DATABASE_URL=_database_url(connection.settings_dict),
        MEDIA_ROOT=str(media_root),
        JOB_STALE_AFTER_SECONDS="2",
        PYTHONUNBUFFERED="1",
    )
    log_path = media_root.parent / "worker.log"
    state: dict = {"media_root": media_root, "log": log_path}

    def start() -> subprocess.Popen:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "studyapp",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"test-{time.monotonic_ns()}@%h",
        ]
        log = open(log_path, "ab")
        process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_until_ready(log_path, process)
        return process

    def restart() -> subprocess.Popen:
        stop(state["process"])
        state["process"] = start()
        return state["process"]

    with django_db_blocker.unblock():
        app.control.purge() if not str(settings.CELERY_BROKER_URL).startswith(
            "filesystem"
        ) else _purge_filesystem_queue(settings)
    state["process"] = start()
    state["restart"] = restart
    state["start"] = start
    yield state
    stop(state["process"])


def _purge_filesystem_queue(settings) -> None:
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def _wait_until_ready(log_path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("celery worker exited at start:\n" + log_path.read_text()[-3000:])
        if log_path.exists() and "ready." in log_path.read_text():
            return
        time.sleep(0.3)
    raise RuntimeError("celery worker did not become ready:\n" + log_path.read_text()[-3000:])


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
