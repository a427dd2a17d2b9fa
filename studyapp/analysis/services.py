"""Writes: request exports and reports (as jobs) and build them inside those jobs.

Exports de-blind the data (they carry the source of every item): only coordinators,
statisticians and admins may ask for them, and each build is logged in the reading
audit trail as an unblinding-key export.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from studyapp.accounts.roles import DATA_READERS, has_any_role
from studyapp.files import sha256_of_file
from studyapp.jobs import services as job_services
from studyapp.reading.models import AuditEvent, ReaderStudy

from . import codebook, exports, formats, provenance, selectors
from .models import FORMATS, AnalysisRun, Export, Report, Status

Progress = Callable[[float, str], None]


def _quiet(percent: float, message: str = "") -> None:
    return None


def _require_data_reader(user) -> None:
    if user is not None and not has_any_role(user, DATA_READERS):
        raise PermissionDenied("Only coordinators and statisticians may export or report.")


# --- exports -----------------------------------------------------------------------------


def request_export(
    reader_study: ReaderStudy,
    user,
    formats_wanted: Iterable[str] = FORMATS,
    *,
    inline: bool = False,
) -> Export:
    """Create the Export row and queue its job (after the transaction commits)."""
    _require_data_reader(user)
    export = Export(
        reader_study=reader_study,
        formats=list(formats_wanted),
        created_by=user if user is not None and user.pk else None,
    )
    export.full_clean()
    with transaction.atomic():
        export.save()
        job = job_services.start_job(
            "analysis.export",
            user_id=export.created_by_id,
            params={"export_id": export.pk},
            inline=inline,
        )
        Export.objects.filter(pk=export.pk).update(job=job)
        export.job = job
    return export


def build_export(export_id: int, progress: Progress = _quiet) -> Export:
    """Build the zip of an Export: every table in every chosen format, codebook, provenance."""
    export = Export.objects.select_related("reader_study__study").get(pk=export_id)
    Export.objects.filter(pk=export.pk).update(status=Status.RUNNING, error="")
    try:
        relative, digest, size, counts = _write_export(export, progress)
    except Exception as exc:
        Export.objects.filter(pk=export.pk).update(
            status=Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:4000],
            finished_at=timezone.now(),
        )
        raise
    Export.objects.filter(pk=export.pk).update(
        status=Status.DONE,
        file=relative,
        sha256=digest,
        size_bytes=size,
        row_counts=counts,
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def _write_export(export: Export, progress: Progress) -> tuple[str, str, int, dict[str, int]]:
    reader_study = export.reader_study
    progress(2, "reading answers and assignments")
    version = provenance.app_version()
    tables = exports.build_tables(reader_study, version=version)
    codebook.check_coverage(tables.frames)
    progress(15, "provenance")
    allocation = formats.for_text(tables["assignments"]).to_csv(index=False).encode()
    record = provenance.provenance(
        reader_study, allocation_sha256=provenance.sha256_bytes(allocation)
    )
    record["export_id"] = export.pk
    key = provenance.blinding_key_csv(reader_study)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    root_name = f"export-{reader_study.pk}-{stamp}"
    relative = f"exports/{root_name}-{uuid.uuid4().hex[:8]}.zip"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        formats.write_bundle(
            Path(temp_name),
            frames=tables.frames,
            formats=export.formats,
            root_name=root_name,
            extra_files={"unblinding_key.csv": key},
            provenance=record,
            readme_fields={
                "reader_study": reader_study.title,
                "study": reader_study.study.name,
                "generated_at": record["generated_at"],
                "app_version": version,
                "notes": "\n".join(f"Note: {t}: {n}" for t, n in exports.NOT_YET_STORED.items()),
            },
            progress=progress,
        )
        with open(temp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    AuditEvent.objects.create(
        reader_study=reader_study,
        action=AuditEvent.Action.KEY_EXPORT,
        actor=export.created_by,
        note=f"analysis export {export.pk} ({', '.join(export.formats)})",
    )
    progress(98, "hashing")
    return relative, sha256_of_file(target), target.stat().st_size, tables.row_counts()


# --- reports -----------------------------------------------------------------------------


def request_report(reader_study: ReaderStudy, user, *, inline: bool = False) -> Report:
    _require_data_reader(user)
    with transaction.atomic():
        report = Report.objects.create(
            reader_study=reader_study,
            created_by=user if user is not None and user.pk else None,
            answer_stamp=selectors.answer_stamp(reader_study),
        )
        job = job_services.start_job(
            "analysis.report",
            user_id=report.created_by_id,
            params={"report_id": report.pk},
            inline=inline,
        )
        Report.objects.filter(pk=report.pk).update(job=job)
        report.job = job
    return report


def build_report(report_id: int, progress: Progress = _quiet, **options: Any) -> Report:
    """Compute the analysis, render the HTML (figures inlined) and the PDF; store all three."""
    from . import report as report_module

    report = Report.objects.select_related("reader_study__study").get(pk=report_id)
    Report.objects.filter(pk=report.pk).update(status=Status.RUNNING, error="")
    try:
        built = report_module.build(report.reader_study, progress=progress, **options)
        folder = f"reports/report-{report.reader_study_id}-{report.pk}-{uuid.uuid4().hex[:8]}"
        html_path = Path(settings.MEDIA_ROOT) / f"{folder}.html"
        pdf_path = Path(settings.MEDIA_ROOT) / f"{folder}.pdf"
        progress(85, "PDF")
        engine = report_module.write_outputs(built, html_path, pdf_path)
    except Exception as exc:
        Report.objects.filter(pk=report.pk).update(
            status=Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:4000],
            finished_at=timezone.now(),
        )
        raise
    with transaction.atomic():
        Report.objects.filter(pk=report.pk).update(
            status=Status.DONE,
            html=f"{folder}.html",
            pdf=f"{folder}.pdf",
            pdf_engine=engine,
            html_sha256=sha256_of_file(html_path),
            pdf_sha256=sha256_of_file(pdf_path),
            answer_stamp=built.answer_stamp,
            finished_at=timezone.now(),
        )
        AnalysisRun.objects.create(
            reader_study=report.reader_study,
            report_id=report.pk,
            options=built.options,
            results=built.results,
            answer_stamp=built.answer_stamp,
        )
    report.refresh_from_db()
    return report
