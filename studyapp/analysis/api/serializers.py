"""API shapes of exports, reports and the long tables (row shapes generated from the codebook)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from studyapp.analysis import codebook
from studyapp.analysis.models import FORMATS, Export, Report
from studyapp.reading.models import ReaderStudy


class ExportSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    job_progress = serializers.IntegerField(source="job.progress", read_only=True, default=None)

    class Meta:
        model = Export
        fields = [
            "id",
            "reader_study",
            "kind",
            "formats",
            "status",
            "sha256",
            "size_bytes",
            "row_counts",
            "error",
            "job",
            "job_progress",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str | None:
        if export.status != "done":
            return None
        return reverse("analysis-export-download", args=[export.pk])


class ExportCreateSerializer(serializers.Serializer):
    reader_study = serializers.PrimaryKeyRelatedField(queryset=ReaderStudy.objects.all())
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=FORMATS), default=list(FORMATS), allow_empty=False
    )


class ReportSerializer(serializers.ModelSerializer):
    html_url = serializers.SerializerMethodField()
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "reader_study",
            "status",
            "pdf_engine",
            "html_sha256",
            "pdf_sha256",
            "error",
            "job",
            "created_at",
            "finished_at",
            "html_url",
            "pdf_url",
        ]
        read_only_fields = fields

    def get_html_url(self, report: Report) -> str | None:
        return reverse("analysis-report-html", args=[report.pk]) if report.html else None

    def get_pdf_url(self, report: Report) -> str | None:
        return reverse("analysis-report-pdf", args=[report.pk]) if report.pdf else None


class ReportCreateSerializer(serializers.Serializer):
    reader_study = serializers.PrimaryKeyRelatedField(queryset=ReaderStudy.objects.all())


_FIELD_FOR_TYPE = {
    "integer": lambda **kw: serializers.IntegerField(**kw),
    "float": lambda **kw: serializers.FloatField(**kw),
    "boolean": lambda **kw: serializers.BooleanField(**kw),
}


def _field(variable: codebook.Variable) -> serializers.Field:
    help_text = f"{variable.label}. {variable.derivation}".strip()
    if variable.unit:
        help_text += f" Unit: {variable.unit}."
    if variable.allowed:
        help_text += f" Allowed: {variable.allowed}."
    options = {"help_text": help_text, "allow_null": True, "read_only": True}
    if variable.type.startswith("datetime"):
        return serializers.DateTimeField(**options)
    make = _FIELD_FOR_TYPE.get(variable.type)
    return make(**options) if make else serializers.CharField(**options)


def row_serializer(table: str) -> type[serializers.Serializer]:
    """A serializer whose fields are the table's codebook variables, in export order."""
    fields = {v.name: _field(v) for v in codebook.CODEBOOK[table]}
    name = "".join(part.title() for part in table.split("_")) + "RowSerializer"
    return type(name, (serializers.Serializer,), fields)


ROW_SERIALIZERS = {table: row_serializer(table) for table in codebook.CODEBOOK}


class CodebookRowSerializer(serializers.Serializer):
    table = serializers.CharField()
    name = serializers.CharField()
    label = serializers.CharField()
    type = serializers.CharField()
    unit = serializers.CharField()
    allowed = serializers.CharField()
    missing = serializers.CharField()
    derivation = serializers.CharField()
    table_note = serializers.CharField()
