"""Coordinator pages for jobs: list, detail with live progress, and the worker self-check."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from studyapp.accounts.permissions import role_required
from studyapp.accounts.roles import Role

from . import selectors, services
from .models import Job

STAFF = (Role.COORDINATOR, Role.ADMIN)


@role_required(*STAFF)
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    services.reap_stale_jobs()
    return render(request, "jobs/job_list.html", {"jobs": selectors.all_jobs()[:100]})


@role_required(*STAFF)
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    return render(request, "jobs/job_detail.html", {"job": get_object_or_404(Job, pk=job_id)})


@role_required(*STAFF)
@require_POST
def run_selfcheck(request: HttpRequest) -> HttpResponse:
    job = services.start_job("jobs.selfcheck", user_id=request.user.pk, params={"steps": 5})
    return redirect("jobs:job-detail", job_id=job.pk)
