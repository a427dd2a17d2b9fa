"""Analysis pages: request exports and reports, download them. Thin: services decide."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from studyapp.accounts.permissions import role_required
from studyapp.accounts.roles import Role
from studyapp.reading.models import ReaderStudy

from . import selectors, services
from .models import FORMATS, Export, Report, Status

DATA = (Role.COORDINATOR, Role.STATISTICIAN, Role.ADMIN)


def _serve(relative: str, *, attachment: bool, content_type: str) -> FileResponse:
    path = Path(settings.MEDIA_ROOT) / relative
    if not relative or not path.is_file():
        raise Http404("No such file.")
    return FileResponse(
        open(path, "rb"), as_attachment=attachment, filename=path.name, content_type=content_type
    )


@role_required(*DATA)
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "analysis/dashboard.html",
        {
            "reader_studies": selectors.reader_studies(),
            "exports": selectors.exports().order_by("-created_at", "-pk")[:20],
            "reports": selectors.reports().order_by("-created_at", "-pk")[:20],
            "latest_report": selectors.latest_report(),
            "formats": FORMATS,
        },
    )


@role_required(*DATA)
@require_POST
def export_create(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    reader_study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    wanted = request.POST.getlist("formats") or list(FORMATS)
    try:
        export = services.request_export(reader_study, request.user, wanted)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Export {export.pk} queued (job {export.job_id}).")
    return redirect("analysis:dashboard")


@role_required(*DATA)
@require_GET
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    export = get_object_or_404(Export, pk=export_id, status=Status.DONE)
    return _serve(export.file.name, attachment=True, content_type="application/zip")


@role_required(*DATA)
@require_POST
def report_create(request: HttpRequest, reader_study_id: int) -> HttpResponse:
    reader_study = get_object_or_404(ReaderStudy, pk=reader_study_id)
    report = services.request_report(reader_study, request.user)
    messages.success(request, f"Report {report.pk} queued (job {report.job_id}).")
    return redirect("analysis:dashboard")


@role_required(*DATA)
@require_GET
def report_html(request: HttpRequest, report_id: int) -> FileResponse:
    report = get_object_or_404(Report, pk=report_id, status=Status.DONE)
    return _serve(report.html.name, attachment=False, content_type="text/html; charset=utf-8")


@role_required(*DATA)
@require_GET
def report_pdf(request: HttpRequest, report_id: int) -> FileResponse:
    report = get_object_or_404(Report, pk=report_id, status=Status.DONE)
    return _serve(report.pdf.name, attachment=True, content_type="application/pdf")
