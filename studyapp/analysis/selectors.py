"""Reads for exports, reports and analyses (views and the API call these, never the ORM)."""

from __future__ import annotations

import hashlib

from django.db.models import Count, Max, Q, QuerySet

from studyapp.reading.models import Answer, Assignment, AuditEvent, ReaderStudy

from .models import AnalysisRun, Export, Report, Status


def reader_studies() -> QuerySet[ReaderStudy]:
    return (
        ReaderStudy.objects.select_related("study")
        .annotate(answer_count=Count("items__answers", distinct=True))
        .order_by("-created_at")
    )


def exports(reader_study: ReaderStudy | None = None) -> QuerySet[Export]:
    rows = Export.objects.select_related("reader_study", "created_by", "job")
    return rows.filter(reader_study=reader_study) if reader_study else rows


def reports(reader_study: ReaderStudy | None = None) -> QuerySet[Report]:
    rows = Report.objects.select_related("reader_study", "created_by", "job")
    return rows.filter(reader_study=reader_study) if reader_study else rows


def latest_report(reader_study: ReaderStudy | None = None) -> Report | None:
    return reports(reader_study).filter(status=Status.DONE).order_by("-finished_at", "-pk").first()


def latest_exports(limit: int = 5) -> list[Export]:
    return list(exports().order_by("-created_at", "-pk")[:limit])


def latest_analysis(reader_study: ReaderStudy) -> AnalysisRun | None:
    return (
        AnalysisRun.objects.filter(reader_study=reader_study).order_by("-created_at", "-pk").first()
    )


def answer_stamp(reader_study: ReaderStudy) -> str:
    """A fingerprint of the reading data: changes whenever an answer or a read changes."""
    answers = Answer.objects.filter(assignment__reader_study=reader_study).aggregate(
        n=Count("pk"), last=Max("updated_at")
    )
    reads = Assignment.objects.filter(reader_study=reader_study).aggregate(
        n=Count("pk"),
        submitted=Count("pk", filter=Q(submitted_at__isnull=False)),
        opened=Count("pk", filter=Q(opened_at__isnull=False)),
    )
    events = AuditEvent.objects.filter(reader_study=reader_study).count()
    text = f"{answers}|{reads}|{events}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def has_answers(reader_study: ReaderStudy) -> bool:
    return Answer.objects.filter(assignment__reader_study=reader_study).exists()
