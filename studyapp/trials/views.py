"""Pages of the guide trial. Coordinators (and admins) run trials; an outcome assessor (a
coordinator flagged on the membership) gets a blinded page and is refused the unblinded ones."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyapp.accounts.permissions import role_required
from studyapp.accounts.roles import STUDY_STAFF
from studyapp.cases.models import Case
from studyapp.jobs.services import start_job

from . import selectors, services
from .forms import BlindedOutcomeForm, ImportForm, KneeForm, MemberForm, OutcomeForm, TrialForm
from .models import GuideFile, GuideTrial, Placement, TrialKnee

STAFF = tuple(STUDY_STAFF)
GUIDE_FILES = {
    "guide.stl": "model/stl",
    "guide.3mf": "model/3mf",
    "tibia_print.stl": "model/stl",
    "report.json": "application/json",
}


def _unblinded_trial(request: HttpRequest, trial_id: int) -> GuideTrial:
    trial = get_object_or_404(GuideTrial, pk=trial_id)
    if services.is_blinded_for(trial, request.user):
        raise PermissionDenied("You assess this trial's outcomes blinded: use the assessor page.")
    return trial


@role_required(*STAFF)
@require_GET
def trial_list(request: HttpRequest) -> HttpResponse:
    return render(request, "trials/trial_list.html", {"trials": selectors.trials_for(request.user)})


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def trial_create(request: HttpRequest) -> HttpResponse:
    form = TrialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        trial = services.create_trial(
            form.cleaned_data["study"],
            form.cleaned_data["title"],
            form.cleaned_data["description"],
            request.user,
        )
        return redirect("trials:trial-detail", trial_id=trial.pk)
    return render(request, "trials/trial_form.html", {"form": form})


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def trial_detail(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _unblinded_trial(request, trial_id)
    knee_form = KneeForm(trial=trial)
    member_form = MemberForm()
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "knee":
                knee_form = KneeForm(request.POST, trial=trial)
                if knee_form.is_valid():
                    services.add_knee(trial, knee_form.cleaned_data["case"])
                    return redirect("trials:trial-detail", trial_id=trial.pk)
            elif action == "member":
                member_form = MemberForm(request.POST)
                if member_form.is_valid():
                    d = member_form.cleaned_data
                    services.add_member(trial, d["user"], d["is_surgeon"], d["is_assessor"])
                    return redirect("trials:trial-detail", trial_id=trial.pk)
            elif action == "randomise":
                count = services.randomise(trial)
                messages.success(request, f"{count} placements ordered (seed {trial.seed}).")
                return redirect("trials:trial-detail", trial_id=trial.pk)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    context = {
        "trial": trial,
        "knees": trial.knees.select_related("case"),
        "members": trial.members.select_related("user"),
        "placements": trial.placements.select_related("knee__case", "surgeon"),
        "runs": trial.virtual_runs.all()[:3],
        "knee_form": knee_form,
        "member_form": member_form,
    }
    return render(request, "trials/trial_detail.html", context)


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def outcome_entry(request: HttpRequest, placement_id: int) -> HttpResponse:
    placement = get_object_or_404(Placement.objects.select_related("trial"), pk=placement_id)
    _unblinded_trial(request, placement.trial_id)
    form = OutcomeForm(request.POST or None, instance=placement)
    if request.method == "POST" and form.is_valid():
        services.save_outcomes(placement, form.cleaned_data, request.user, blinded=False)
        messages.success(request, f"Outcomes of {placement.printed_bone_id} saved.")
        return redirect("trials:trial-detail", trial_id=placement.trial_id)
    return render(
        request,
        "trials/outcome_form.html",
        {"form": form, "placement": placement, "blinded": False},
    )


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def import_csv(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _unblinded_trial(request, trial_id)
    form = ImportForm(request.POST or None, request.FILES or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            count = services.import_outcomes_csv(
                trial, form.cleaned_data["file"].read(), request.user
            )
        except services.ImportRejected as exc:
            errors = exc.errors
        else:
            messages.success(request, f"{count} rows imported.")
            return redirect("trials:trial-detail", trial_id=trial.pk)
    context = {"trial": trial, "form": form, "errors": errors, "columns": services.CSV_COLUMNS}
    return render(request, "trials/import.html", context, status=400 if errors else 200)


@role_required(*STAFF)
@require_POST
def run_virtual(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _unblinded_trial(request, trial_id)
    with transaction.atomic():
        job = start_job(
            "trials.virtual_trial", user_id=request.user.pk, params={"trial_id": trial.pk}
        )
    return redirect("jobs:job-detail", job_id=job.pk)


@role_required(*STAFF)
@require_GET
def assessor_list(request: HttpRequest) -> HttpResponse:
    placements = selectors.assessor_placements(request.user)
    return render(request, "trials/assessor_list.html", {"placements": placements})


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def assessor_entry(request: HttpRequest, placement_id: int) -> HttpResponse:
    placement = get_object_or_404(selectors.assessor_placements(request.user), pk=placement_id)
    form = BlindedOutcomeForm(request.POST or None, instance=placement)
    if request.method == "POST" and form.is_valid():
        services.save_outcomes(placement, form.cleaned_data, request.user, blinded=True)
        messages.success(request, f"Outcomes of {placement.printed_bone_id} saved.")
        return redirect("trials:assessor-list")
    return render(
        request, "trials/outcome_form.html", {"form": form, "placement": placement, "blinded": True}
    )


def _refuse_assessors_of(request: HttpRequest, case: Case) -> None:
    for knee in TrialKnee.objects.filter(case=case).select_related("trial"):
        if services.is_blinded_for(knee.trial, request.user):
            raise PermissionDenied("You assess a trial with this knee blinded.")


@role_required(*STAFF)
@require_GET
def case_guides(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    _refuse_assessors_of(request, case)
    guides = list(case.guides.all())
    latest = {}
    for guide in guides:
        latest.setdefault(guide.source, guide)
    meshes = [
        {"bone": "tibia", "url": reverse("trials:guide-download", args=[g.pk, "tibia_print.stl"])}
        for g in list(latest.values())[:1]
    ] + [
        {
            "bone": f"guide-{g.source}",
            "url": reverse("trials:guide-download", args=[g.pk, "guide.stl"]),
        }
        for g in latest.values()
    ]
    context = {
        "case": case,
        "guides": guides,
        "files": list(GUIDE_FILES),
        "meshes_json": json.dumps(meshes),
    }
    return render(request, "trials/case_guides.html", context)


@role_required(*STAFF)
@require_GET
def guide_download(request: HttpRequest, guide_id: int, filename: str) -> HttpResponse:
    guide = get_object_or_404(GuideFile, pk=guide_id)
    _refuse_assessors_of(request, guide.case)
    if filename not in GUIDE_FILES:
        raise Http404("No such guide file.")
    path = Path(settings.MEDIA_ROOT) / guide.folder / filename
    if not path.is_file():
        raise Http404("The guide file is missing.")
    stem, _, suffix = filename.rpartition(".")
    name = f"{guide.label}_{stem}.{suffix}" if stem != "report" else f"{guide.label}_report.json"
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=name, content_type=GUIDE_FILES[filename]
    )
