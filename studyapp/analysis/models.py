"""Exports (one zip of tidy tables in several formats), reports (HTML + PDF) and analysis runs.

Every row is produced by a background job; the row records who asked, the job, the file
and its SHA-256 so that a statistician can cite exactly which bundle an analysis used.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx", "sav", "dta", "imrmc")


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Export(models.Model):
    class Kind(models.TextChoices):
        FULL = "full", "Full study (answers, assignments, surface, alignment, guide trial)"

    reader_study = models.ForeignKey(
        "reading.ReaderStudy", on_delete=models.PROTECT, related_name="exports"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULL)
    formats = models.JSONField(default=list)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    file = models.FileField(upload_to="exports/", blank=True, max_length=255)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    row_counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Export {self.pk} of {self.reader_study} ({self.status})"

    def clean(self) -> None:
        formats = self.formats or []
        if not isinstance(formats, list) or not formats:
            raise ValidationError({"formats": "Choose at least one format."})
        unknown = sorted(set(formats) - set(FORMATS))
        if unknown:
            raise ValidationError({"formats": f"Unknown format(s): {', '.join(unknown)}."})
        if len(set(formats)) != len(formats):
            raise ValidationError({"formats": "A format is listed twice."})


class Report(models.Model):
    class PdfEngine(models.TextChoices):
        NONE = "", "None"
        CHROMIUM = "chromium", "Headless Chromium print-to-PDF"
        MATPLOTLIB = "matplotlib", "matplotlib PdfPages (figures and tables)"

    reader_study = models.ForeignKey(
        "reading.ReaderStudy", on_delete=models.PROTECT, related_name="reports"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    html = models.FileField(upload_to="reports/", blank=True, max_length=255)
    pdf = models.FileField(upload_to="reports/", blank=True, max_length=255)
    pdf_engine = models.CharField(max_length=16, choices=PdfEngine.choices, blank=True)
    html_sha256 = models.CharField(max_length=64, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    answer_stamp = models.CharField(
        max_length=64, blank=True, help_text="Fingerprint of the answers the report used."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Report {self.pk} of {self.reader_study} ({self.status})"


class AnalysisRun(models.Model):
    """The statistics (evaluation.stats) computed for one report, kept as plain JSON."""

    reader_study = models.ForeignKey(
        "reading.ReaderStudy", on_delete=models.PROTECT, related_name="analysis_runs"
    )
    report = models.OneToOneField(
        Report, null=True, blank=True, on_delete=models.SET_NULL, related_name="analysis"
    )
    options = models.JSONField(default=dict, blank=True)
    results = models.JSONField(default=dict, blank=True)
    answer_stamp = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Analysis {self.pk} of {self.reader_study}"
