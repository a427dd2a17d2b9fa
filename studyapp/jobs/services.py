"""Writes for jobs: create and dispatch, progress, finish, and the reaper for lost workers."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Job
from .registry import handler_for

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def start_job(
    kind: str,
    *,
    case_id: int | None = None,
    user_id: int | None = None,
    params: dict[str, Any] | None = None,
    inline: bool = False,
) -> Job:
    """Create a queued Job and send it to the broker once the transaction commits.

    `inline` runs it in this process instead (after the commit), with the same
    bookkeeping: for command-line builders such as the demo that need the result now.
    """
    handler_for(kind)  # fail now, in the request, for an unknown kind
    job = Job.objects.create(kind=kind, case_id=case_id, created_by_id=user_id, params=params or {})
    transaction.on_commit(lambda: run_inline(job.pk) if inline else dispatch(job.pk))
    return job


def run_inline(job_id: int) -> None:
    from .tasks import run_job

    run_job.apply(args=[job_id], throw=False)


def dispatch(job_id: int) -> None:
    from .tasks import run_job

    async_result = run_job.delay(job_id)
    Job.objects.filter(pk=job_id).update(celery_task_id=async_result.id or "")


def mark_running(job_id: int) -> Job:
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        job.state = Job.State.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.finished_at = None
        job.error = ""
        job.progress = 0
        job.message = "started" if job.attempts == 1 else f"restarted (attempt {job.attempts})"
        job.save()
    return job


def report_progress(job_id: int, percent: float, message: str = "") -> None:
    clamped = max(0, min(100, int(round(percent))))
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
        progress=clamped, message=message[:255], heartbeat_at=timezone.now()
    )


def mark_succeeded(job_id: int, result: dict[str, Any] | None) -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.SUCCEEDED,
        progress=100,
        message="done",
        result=result or {},
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )


def mark_failed(job_id: int, error: str) -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.FAILED,
        message="failed",
        error=error[:4000],
        finished_at=timezone.now(),
    )


def mark_retrying(job_id: int, reason: str) -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.QUEUED, message=f"will retry: {reason}"[:255]
    )


def reap_stale_jobs(max_age: timedelta | None = None) -> dict[str, list[int]]:
    """Running jobs whose worker stopped sending heartbeats are re-queued or failed.

    A worker killed mid-task (OOM, SIGKILL, machine restart) cannot report; this
    is what keeps such jobs from showing "running" forever.
    """
    age = max_age or timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    cutoff = timezone.now() - age
    requeued: list[int] = []
    failed: list[int] = []
    stale_ids = list(
        Job.objects.filter(state=Job.State.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for job_id in stale_ids:
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=job_id)
            if job.state != Job.State.RUNNING or (job.heartbeat_at and job.heartbeat_at >= cutoff):
                continue
            if job.attempts < MAX_ATTEMPTS:
                job.state = Job.State.QUEUED
                job.message = "worker lost; re-queued"
                job.save(update_fields=["state", "message"])
                transaction.on_commit(lambda jid=job_id: dispatch(jid))
                requeued.append(job_id)
            else:
                job.state = Job.State.FAILED
                job.error = (
                    f"worker lost: no heartbeat for over {int(age.total_seconds())} s "
                    f"after {job.attempts} attempts"
                )
                job.message = "failed"
                job.finished_at = timezone.now()
                job.save(update_fields=["state", "error", "message", "finished_at"])
                failed.append(job_id)
    if requeued or failed:
        logger.warning("reaped stale jobs: requeued=%s failed=%s", requeued, failed)
    return {"requeued": requeued, "failed": failed}
