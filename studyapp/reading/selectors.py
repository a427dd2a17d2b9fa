"""Reads for reader studies. Everything a rater sees is scoped by the rater's own id and
carries no source, case or other reader's data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from . import services
from .models import Answer, Assignment, AuditEvent, ReaderStudy


@dataclass(frozen=True)
class RaterSession:
    reader_study_id: int
    title: str
    number: int
    round: int
    is_training: bool
    total: int
    done: int
    state: str  # "open", "waiting", "done", "later"
    opens_at: datetime | None
    next_assignment_id: int | None

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def studies_of_reader(user) -> QuerySet[ReaderStudy]:
    return ReaderStudy.objects.filter(readers=user, status=ReaderStudy.Status.LAUNCHED).order_by(
        "title"
    )


def sessions_of_reader(user, now: datetime | None = None) -> list[RaterSession]:
    """The rater's sessions in every launched study they read, with progress."""
    now = now or timezone.now()
    result = []
    for study in studies_of_reader(user):
        upcoming = services.next_assignment(study, user.pk, now)
        for state in services.session_states(study, user.pk):
            if state.complete:
                label = "done"
            elif state.is_open(now):
                label = "open"
            elif state.opens_at is not None:
                label = "waiting"
            else:
                label = "later"
            result.append(
                RaterSession(
                    reader_study_id=study.pk,
                    title=study.title,
                    number=state.number,
                    round=state.round,
                    is_training=state.is_training,
                    total=state.total,
                    done=state.done,
                    state=label,
                    opens_at=state.opens_at if label == "waiting" else None,
                    next_assignment_id=(
                        upcoming.pk
                        if upcoming and label == "open" and upcoming.pk in state.assignment_ids
                        else None
                    ),
                )
            )
    return result


def reading_context(assignment: Assignment) -> dict:
    """What the reading page of one of the reader's own assignments needs (blinded)."""
    study = assignment.reader_study
    answers = {a.question_id: a.value for a in assignment.answers.all()}
    questions = list(study.questions.all())
    session = Assignment.objects.filter(
        reader_study=study, reader_id=assignment.reader_id, session=assignment.session
    ).aggregate(total=Count("pk"), done=Count("pk", filter=Q(submitted_at__isnull=False)))
    return {
        "study_title": study.title,
        # Knee side only orients the medial/lateral buttons (both arms share it).
        "side": assignment.item.reconstruction.case.side,
        "questions": [(q, answers.get(q.pk)) for q in questions],
        "session_total": session["total"],
        "session_done": session["done"],
        "locked": assignment.submitted_at is not None and not study.allow_answer_modification,
    }


# --- coordinators ----------------------------------------------------------------------


def reader_studies() -> QuerySet[ReaderStudy]:
    return ReaderStudy.objects.select_related("study").annotate(
        item_count=Count("items", distinct=True), reader_count=Count("readers", distinct=True)
    )


def progress_per_reader(reader_study: ReaderStudy) -> list[dict]:
    rows = (
        Assignment.objects.filter(reader_study=reader_study, is_training=False)
        .values("reader_id", "reader__username")
        .annotate(
            total=Count("pk"),
            done=Count("pk", filter=Q(submitted_at__isnull=False)),
            active=Sum("active_seconds"),
        )
        .order_by("reader__username")
    )
    return [
        {
            "reader_id": row["reader_id"],
            "username": row["reader__username"],
            "total": row["total"],
            "done": row["done"],
            "percent": round(100 * row["done"] / row["total"]) if row["total"] else 0,
            "active_minutes": round((row["active"] or 0) / 60, 1),
        }
        for row in rows
    ]


def audit_log(reader_study: ReaderStudy, limit: int = 200) -> QuerySet[AuditEvent]:
    return reader_study.audit.select_related("actor", "reader", "item", "question")[:limit]


def answers_of(reader_study: ReaderStudy) -> QuerySet[Answer]:
    return Answer.objects.filter(assignment__reader_study=reader_study)
