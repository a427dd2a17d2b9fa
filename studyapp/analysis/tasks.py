"""Background work of the analysis app: exports and reports, each a Job with progress."""

from __future__ import annotations

from studyapp.jobs.registry import JobContext, register

from . import services


@register("analysis.export")
def export_job(context: JobContext, export_id: int) -> dict:
    export = services.build_export(export_id, progress=context.report)
    return {
        "export_id": export.pk,
        "file": export.file.name,
        "sha256": export.sha256,
        "bytes": export.size_bytes,
        "rows": export.row_counts,
    }


@register("analysis.report")
def report_job(context: JobContext, report_id: int) -> dict:
    report = services.build_report(report_id, progress=context.report)
    return {"report_id": report.pk, "html": report.html.name, "pdf_engine": report.pdf_engine}
