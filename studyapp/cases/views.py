"""Coordinator pages for studies and cases. Thin: forms in, services do the work."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from studyapp.accounts.permissions import role_required
from studyapp.accounts.roles import Role
from studyapp.jobs import selectors as job_selectors

from . import selectors, services
from .forms import (
    CaseForm,
    CTUploadForm,
    LabelMapUploadForm,
    MeshesUploadForm,
    ReconstructCTForm,
    SimulateDRRForm,
    StudyForm,
    XRayPairUploadForm,
)
from .models import Case, Study, XRayPair

STAFF = (Role.COORDINATOR, Role.ADMIN)
READERS = (Role.COORDINATOR, Role.ADMIN, Role.STATISTICIAN)


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def study_create(request: HttpRequest) -> HttpResponse:
    form = StudyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        study = services.create_study(**form.cleaned_data)
        messages.success(request, f"Study {study.name} created.")
        return redirect("cases:study-detail", study_id=study.pk)
    return render(request, "cases/study_form.html", {"form": form})


@role_required(*READERS)
@require_http_methods(["GET"])
def study_detail(request: HttpRequest, study_id: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=study_id)
    return render(
        request,
        "cases/study_detail.html",
        {"study": study, "cases": selectors.cases_of_study(study.pk), "form": CaseForm()},
    )


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def case_create(request: HttpRequest, study_id: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=study_id)
    form = CaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.create_case(study, **form.cleaned_data)
        except (ValidationError, IntegrityError) as exc:
            form.add_error("code", _first_message(exc))
        else:
            messages.success(request, f"Case {case.code} added.")
            return redirect("cases:case-detail", case_id=case.pk)
    return render(request, "cases/case_form.html", {"study": study, "form": form})


@role_required(*READERS)
@require_http_methods(["GET"])
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    try:
        case = selectors.case_detail(case_id)
    except Case.DoesNotExist:
        return render(request, "404.html", status=404)
    return render(
        request,
        "cases/case_detail.html",
        {
            "case": case,
            "viewers": selectors.reconstruction_viewers(case),
            "xray_previews": selectors.xray_previews(case),
            "evaluation_tables": selectors.evaluation_tables(case),
            "alignment_panels": selectors.alignment_panels(case),
            "jobs": job_selectors.jobs_for_case(case.pk)[:20],
            "ct_form": CTUploadForm(),
            "reconstruct_ct_form": ReconstructCTForm(),
            "xray_form": XRayPairUploadForm(),
            "labels_form": LabelMapUploadForm(),
            "meshes_form": MeshesUploadForm(),
        },
    )


def _upload_view(form_class, handler, template_title: str):
    @role_required(*STAFF)
    @require_http_methods(["GET", "POST"])
    def view(request: HttpRequest, case_id: int) -> HttpResponse:
        case = get_object_or_404(Case, pk=case_id)
        form = form_class(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                handler(request, case, form.cleaned_data)
            except services.UploadRejected as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{template_title}: stored.")
                return redirect("cases:case-detail", case_id=case.pk)
        status = 400 if request.method == "POST" else 200
        return render(
            request,
            "cases/upload.html",
            {"form": form, "case": case, "title": template_title},
            status=status,
        )

    return view


@role_required(*STAFF)
@require_http_methods(["GET", "POST"])
def simulate_drr(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    form = SimulateDRRForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.request_drr_simulation(case, user_id=request.user.pk, **form.cleaned_data)
        except services.UploadRejected as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "X-ray simulation queued; progress below.")
            return redirect("cases:case-detail", case_id=case.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "cases/upload.html",
        {"form": form, "case": case, "title": "Simulated X-ray pair", "multipart": False},
        status=status,
    )


@role_required(*STAFF)
@require_http_methods(["POST"])
def reconstruct_ct(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    form = ReconstructCTForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a reconstruction method.")
    else:
        try:
            services.request_ct_reconstruction(case, form.cleaned_data["method"], request.user.pk)
        except services.UploadRejected as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "CT reconstruction queued; progress below.")
    return redirect("cases:case-detail", case_id=case.pk)


@role_required(*STAFF)
@require_http_methods(["POST"])
def reconstruct_xray(request: HttpRequest, case_id: int, pair_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    pair = get_object_or_404(XRayPair, pk=pair_id, case=case)
    try:
        services.request_xray_reconstruction(case, pair, request.user.pk)
    except services.UploadRejected as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "X-ray reconstruction queued; progress below.")
    return redirect("cases:case-detail", case_id=case.pk)


upload_ct = _upload_view(
    CTUploadForm,
    lambda request, case, data: services.upload_ct(case, data["file"], user_id=request.user.pk),
    "CT volume",
)
upload_xray = _upload_view(
    XRayPairUploadForm,
    lambda request, case, data: services.upload_xray_pair(
        case, data["view1"], data["view2"], data["geometry"], user_id=request.user.pk
    ),
    "X-ray pair",
)
upload_labels = _upload_view(
    LabelMapUploadForm,
    lambda request, case, data: services.upload_label_map(
        case, data["file"], data["made_by"], user_id=request.user.pk
    ),
    "Ground-truth label map",
)
upload_meshes = _upload_view(
    MeshesUploadForm,
    lambda request, case, data: services.upload_ground_truth_meshes(
        case,
        {bone: data[bone] for bone in ("femur", "tibia", "fibula", "patella")},
        data["made_by"],
    ),
    "Ground-truth meshes",
)


def _first_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return "A case with this code already exists in the study."
