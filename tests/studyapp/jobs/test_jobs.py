"""Job lifecycle: in-process for the state machine, and with a real worker process for crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from studyapp.files import atomic_write_bytes
from studyapp.jobs import services
from studyapp.jobs.models import Job
from studyapp.jobs.registry import TransientJobError, register
from tests.studyapp.factories import CaseFactory, JobFactory


def _run(kind: str, django_capture_on_commit_callbacks, **params) -> Job:
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_job(kind, params=params)
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_successful_job_reports_progress_and_result(django_capture_on_commit_callbacks):
    job = _run("jobs.selfcheck", django_capture_on_commit_callbacks, steps=3, step_seconds=0)
    assert job.state == Job.State.SUCCEEDED
    assert job.progress == 100
    assert job.result == {"steps": 3}
    assert job.attempts == 1
    assert job.started_at <= job.finished_at


@pytest.mark.django_db
def test_failing_job_is_marked_failed_with_its_reason(django_capture_on_commit_callbacks):
    job = _run(
        "jobs.selfcheck", django_capture_on_commit_callbacks, steps=1, step_seconds=0, fail=True
    )
    assert job.state == Job.State.FAILED
    assert "selfcheck asked to fail" in job.error
    assert job.finished_at is not None


_calls: list[int] = []


@register("tests.flaky")
def _flaky(context, succeed_on: int = 2) -> dict:
    _calls.append(context.job_id)
    if len(_calls) < succeed_on:
        raise TransientJobError("database is locked")
    return {"calls": len(_calls)}


@pytest.mark.django_db
def test_transient_errors_are_retried_then_succeed():
    from studyapp.jobs.tasks import run_job

    _calls.clear()
    job = JobFactory(kind="tests.flaky", params={"succeed_on": 2})
    run_job.apply(args=[job.pk], throw=False)  # eagerly, Celery runs the retry at once
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert job.result == {"calls": 2}
    assert job.attempts == 2


@pytest.mark.django_db
def test_unknown_kind_is_refused_before_anything_is_stored():
    with pytest.raises(LookupError):
        services.start_job("no.such.kind")
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_progress_is_clamped_and_only_for_running_jobs():
    job = JobFactory(state=Job.State.RUNNING)
    services.report_progress(job.pk, 140, "x")
    job.refresh_from_db()
    assert job.progress == 100
    finished = JobFactory(state=Job.State.SUCCEEDED, progress=100)
    services.report_progress(finished.pk, 10)
    finished.refresh_from_db()
    assert finished.progress == 100


@pytest.mark.django_db
def test_reaper_requeues_then_fails_jobs_whose_worker_vanished(
    django_capture_on_commit_callbacks, monkeypatch
):
    dispatched: list[int] = []
    monkeypatch.setattr(services, "dispatch", dispatched.append)
    stale = timezone.now() - timedelta(hours=1)
    lost_once = JobFactory(
        case=CaseFactory(), state=Job.State.RUNNING, attempts=1, heartbeat_at=stale
    )
    lost_thrice = JobFactory(state=Job.State.RUNNING, attempts=3, heartbeat_at=stale)
    alive = JobFactory(state=Job.State.RUNNING, attempts=1, heartbeat_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.reap_stale_jobs(timedelta(minutes=5))
    assert outcome == {"requeued": [lost_once.pk], "failed": [lost_thrice.pk]}
    assert dispatched == [lost_once.pk]
    lost_thrice.refresh_from_db()
    assert lost_thrice.state == Job.State.FAILED and "worker lost" in lost_thrice.error
    alive.refresh_from_db()
    assert alive.state == Job.State.RUNNING


@pytest.mark.django_db
def test_duplicate_delivery_of_a_finished_job_does_nothing():
    from studyapp.jobs.tasks import run_job

    job = JobFactory(state=Job.State.SUCCEEDED, result={"kept": True}, attempts=1)
    assert run_job.apply(args=[job.pk]).get() == {"kept": True}
    job.refresh_from_db()
    assert job.attempts == 1


def test_atomic_write_leaves_no_file_when_the_writer_is_killed(tmp_path: Path):
    target = tmp_path / "out" / "mesh.stl"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from studyapp.files import atomic_write_bytes\n"
        "def chunks():\n"
        "    for _ in range(1000):\n"
        "        yield b'x' * 1024\n"
        "        print('chunk', flush=True)\n"
        "        time.sleep(0.01)\n"
        f"atomic_write_bytes(Path({str(target)!r}), chunks())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[3]
    )
    assert process.stdout.readline().strip() == b"chunk"  # the write has started
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not target.exists()
    atomic_write_bytes(target, b"complete")
    assert target.read_bytes() == b"complete"


# --- with a real worker process --------------------------------------------------------------


def _wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_job_to_completion(celery_worker_process):
    job = services.start_job(
        "jobs.selfcheck", params={"steps": 3, "step_seconds": 0.1, "write_file": "ok.txt"}
    )
    _wait_for(lambda: Job.objects.get(pk=job.pk).is_finished)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert (celery_worker_process["media_root"] / "selfcheck" / "ok.txt").read_text().count(
        "step"
    ) == 3


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_killed_worker_leaves_no_stuck_job_and_no_partial_file(celery_worker_process):
    job = services.start_job(
        "jobs.selfcheck", params={"steps": 40, "step_seconds": 0.25, "write_file": "crash.txt"}
    )
    _wait_for(lambda: Job.objects.get(pk=job.pk).progress >= 5)
    os.killpg(celery_worker_process["process"].pid, signal.SIGKILL)  # the whole worker, mid-task
    celery_worker_process["process"].wait()
    output = celery_worker_process["media_root"] / "selfcheck" / "crash.txt"
    assert not output.exists()
    assert Job.objects.get(pk=job.pk).state == Job.State.RUNNING  # nobody could report
    time.sleep(2.5)  # past the heartbeat limit
    outcome = services.reap_stale_jobs(timedelta(seconds=2))
    assert outcome["requeued"] == [job.pk]
    celery_worker_process["restart"]()
    _wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2
    assert output.read_text().count("step") == 40


@pytest.mark.django_db
def test_inline_jobs_run_in_this_process_with_the_same_bookkeeping(
    django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(services, "dispatch", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_job(
            "jobs.selfcheck", params={"steps": 2, "step_seconds": 0}, inline=True
        )
    job.refresh_from_db()
    assert sent == []  # nothing went to the broker
    assert job.state == Job.State.SUCCEEDED and job.attempts == 1 and job.progress == 100
