"""The one Celery task that runs every Job: it takes an id, never an object."""

from __future__ import annotations

import logging
import traceback

from celery import shared_task
from django.db import OperationalError

from . import services
from .models import Job
from .registry import JobContext, TransientJobError, handler_for

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientJobError, OperationalError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=services.MAX_ATTEMPTS - 1,
    name="jobs.run_job",
)
def run_job(self, job_id: int) -> dict:
    # Celery's Django fix-up closes stale database connections around each task.
    try:
        job = Job.objects.get(pk=job_id)
    except Job.DoesNotExist:
        logger.error("job %s vanished before it ran", job_id)
        return {}
    if job.is_finished:
        return job.result  # a duplicate delivery after success or failure: nothing to do
    job = services.mark_running(job_id)
    context = JobContext(
        job_id=job.pk,
        case_id=job.case_id,
        user_id=job.created_by_id,
        report=lambda percent, message="": services.report_progress(job_id, percent, message),
    )
    try:
        result = handler_for(job.kind)(context, **job.params) or {}
    except (TransientJobError, OperationalError) as exc:
        if self.request.retries >= self.max_retries:
            services.mark_failed(job_id, f"{type(exc).__name__}: {exc} (gave up after retries)")
            return {}
        services.mark_retrying(job_id, str(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - every other failure is reported on the job
        logger.exception("job %s (%s) failed", job_id, job.kind)
        services.mark_failed(job_id, _describe(exc))
        return {}
    services.mark_succeeded(job_id, result)
    return result


def _describe(exc: Exception) -> str:
    """A message a coordinator can read, with the technical tail for the logs."""
    summary = f"{type(exc).__name__}: {exc}"
    tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return summary if summary == tail else f"{summary}\n{tail}"


@shared_task(name="jobs.reap_stale_jobs")
def reap_stale_jobs_task() -> dict:
    return services.reap_stale_jobs()
