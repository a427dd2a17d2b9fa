"""Demo step: a small guide trial on the demo's phantom knees, with a virtual run."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from studyapp.cases.models import Case, Reconstruction
from studyapp.jobs.services import start_job

from . import services
from .models import GuideTrial

DEMO_TRIAL = "Demo HTO guide trial (CT vs X-ray)"
DEMO_KNEES = 2


def build_demo_guide_trial(study, report) -> None:
    """guide trial: two knees, CT and X-ray guides, randomised order, virtual trial"""
    trial = GuideTrial.objects.filter(title=DEMO_TRIAL).first()
    if trial is not None and trial.virtual_runs.exists():
        return
    cases = [
        c
        for c in Case.objects.filter(study=study).order_by("code")
        if c.reconstructions.filter(source=Reconstruction.Source.CT, status="done").exists()
    ][:DEMO_KNEES]
    if not cases:
        report.notes.append("guide trial: no case with a CT reconstruction, skipped")
        return
    users = get_user_model().objects
    with transaction.atomic():
        if trial is None:
            trial = services.create_trial(
                study, DEMO_TRIAL, "Knee-only phantoms: HTO plans use the approximate fallback."
            )
        for case in cases:
            services.add_knee(trial, case)
        for user in users.filter(groups__name="coordinator").order_by("username")[:1]:
            services.add_member(trial, user, surgeon=True)
        if trial.members.filter(is_surgeon=True).exists():
            services.randomise(trial)
        start_job("trials.virtual_trial", params={"trial_id": trial.pk}, inline=True)
    report.notes.append(f"guide trial '{DEMO_TRIAL}': {len(cases)} knees, virtual trial run")
