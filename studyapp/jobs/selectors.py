"""Reads for jobs."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Job


def recent_jobs(limit: int = 20) -> list[Job]:
    return list(Job.objects.select_related("case")[:limit])


def jobs_for_case(case_id: int) -> QuerySet[Job]:
    return Job.objects.filter(case_id=case_id)


def all_jobs() -> QuerySet[Job]:
    return Job.objects.select_related("case", "created_by")
