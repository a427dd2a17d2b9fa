"""Writes and rules of reader studies: design, items, launch, submission, reset, unblinding.

Every answer change goes through `submit`, which locks the assignment row, validates the
values in one place, stores them with an audit event each, and remembers the result under
the client's idempotency key so that a retry (double click, network retry) gets the same
answer back without writing twice.
"""

from __future__ import annotations

import csv
import io
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from reconstruction import blinding
from studyapp.accounts.roles import Role, has_any_role
from studyapp.cases.models import Bone, Reconstruction, Study
from studyapp.files import atomic_write_bytes
from studyapp.jobs import services as job_services

from . import randomisation
from .models import (
    Answer,
    Assignment,
    AuditEvent,
    Item,
    Question,
    ReaderStudy,
    Submission,
)

LIKERT_DEFAULTS: list[tuple[str, list[str]]] = [
    (
        "Overall shape",
        ["Unrecognisable", "Poor", "Acceptable", "Good", "Indistinguishable from real anatomy"],
    ),
    (
        "Fine detail",
        ["Absent", "Poor", "Acceptable", "Good", "Excellent"],
    ),
    (
        "Clinical usefulness for planning",
        ["Useless", "Limited", "Usable with care", "Useful", "Fully adequate"],
    ),
]
KEY_PATTERN = re.compile(r"^[A-Za-z0-9-]{8,64}$")
TEXT_LIMIT = 2000
OUT_OF_DATE = "The form is out of date; reload the page."


class ReadingError(Exception):
    """A refused reading action; the message is safe to show to the reader."""


class NotAvailable(ReadingError):
    """Not this reader's open assignment (shown as 404: nothing is revealed)."""


class AnswerLocked(ReadingError):
    """Answers of this item are submitted and the study does not allow changes."""


class InvalidAnswers(ReadingError):
    def __init__(self, errors: dict[int, str]):
        super().__init__("Some answers are missing or invalid.")
        self.errors = errors


# --- design ------------------------------------------------------------------------------


def create_reader_study(
    study: Study,
    title: str,
    *,
    created_by: AbstractBaseUser | None = None,
    default_questions: bool = True,
    **fields: Any,
) -> ReaderStudy:
    with transaction.atomic():
        reader_study = ReaderStudy(study=study, title=title, created_by=created_by, **fields)
        reader_study.full_clean()
        reader_study.save()
        if default_questions:
            for order, (text, anchors) in enumerate(LIKERT_DEFAULTS, start=1):
                add_question(reader_study, text, Question.Kind.LIKERT, options=anchors, order=order)
    return reader_study


def _require_draft(reader_study: ReaderStudy) -> None:
    # Ask the database: the caller's instance may predate the launch.
    launched = ReaderStudy.objects.filter(
        pk=reader_study.pk, status=ReaderStudy.Status.LAUNCHED
    ).exists()
    if launched or reader_study.is_launched:
        raise ValidationError("The study is launched: its design can no longer change.")


def update_settings(reader_study: ReaderStudy, **fields: Any) -> ReaderStudy:
    _require_draft(reader_study)
    for name, value in fields.items():
        setattr(reader_study, name, value)
    reader_study.full_clean()
    reader_study.save()
    return reader_study


def add_question(
    reader_study: ReaderStudy,
    text: str,
    kind: str = Question.Kind.LIKERT,
    *,
    required: bool = True,
    options: list[str] | None = None,
    order: int | None = None,
    **bounds: float | None,
) -> Question:
    _require_draft(reader_study)
    if order is None:
        order = reader_study.questions.count() + 1
    question = Question(
        reader_study=reader_study,
        text=text,
        kind=kind,
        required=required,
        options=options or [],
        order=order,
        **bounds,
    )
    question.full_clean()
    question.save()
    return question


def delete_question(question: Question) -> None:
    _require_draft(question.reader_study)
    question.delete()


def set_readers(reader_study: ReaderStudy, users: Iterable[AbstractBaseUser]) -> None:
    _require_draft(reader_study)
    users = list(users)
    not_raters = [u.get_username() for u in users if not has_any_role(u, {Role.RATER})]
    if not_raters:
        raise ValidationError("Only raters can read: " + ", ".join(not_raters))
    reader_study.readers.set(users)


def eligible_reconstructions_of_study(
    study: Study, exclude_ids: Iterable[int] = ()
) -> list[Reconstruction]:
    """Finished reconstructions of the study with all four bones."""
    candidates = (
        Reconstruction.objects.filter(case__study=study, status=Reconstruction.Status.DONE)
        .exclude(pk__in=list(exclude_ids))
        .select_related("case")
        .prefetch_related("bones")
        .order_by("case__code", "source")
    )
    return [r for r in candidates if {b.bone for b in r.bones.all()} == set(Bone.values)]


def eligible_reconstructions(reader_study: ReaderStudy) -> list[Reconstruction]:
    """Finished, complete reconstructions of the reader study's study, not yet items."""
    taken = reader_study.items.values_list("reconstruction_id", flat=True)
    return eligible_reconstructions_of_study(reader_study.study, taken)


def add_items(
    reader_study: ReaderStudy,
    reconstructions: Iterable[Reconstruction],
    *,
    training: bool = False,
    user_id: int | None = None,
) -> list[Item]:
    """Items for many reconstructions in one action; their blinded files are built by a job."""
    _require_draft(reader_study)
    reconstructions = list(reconstructions)
    eligible = {r.pk for r in eligible_reconstructions(reader_study)}
    refused = [r.pk for r in reconstructions if r.pk not in eligible]
    if refused:
        raise ValidationError(
            "Only finished reconstructions of this study with all four bones can be added "
            f"once (refused: {len(refused)})."
        )
    _check_training_apart(reader_study, reconstructions, training)
    with transaction.atomic():
        items = [
            Item.objects.create(reader_study=reader_study, reconstruction=r, is_training=training)
            for r in reconstructions
        ]
        if items:
            job_services.start_job(
                "reading.prepare_items",
                user_id=user_id,
                params={"item_ids": [item.pk for item in items]},
            )
    return items


def _check_training_apart(
    reader_study: ReaderStudy, reconstructions: list[Reconstruction], training: bool
) -> None:
    """Training knees and study knees never overlap (calibration stays apart from data)."""
    other_cases = set(
        reader_study.items.filter(is_training=not training).values_list(
            "reconstruction__case_id", flat=True
        )
    )
    if other_cases & {r.case_id for r in reconstructions}:
        raise ValidationError("A knee cannot be both a training case and a study case.")


def remove_item(item: Item) -> None:
    _require_draft(item.reader_study)
    if item.blinded_file:
        (Path(settings.MEDIA_ROOT) / item.blinded_file.name).unlink(missing_ok=True)
    item.delete()


def prepare_item_file(item: Item) -> Item:
    """Normalise the item's four bone meshes and store them as one metadata-free GLB."""
    import trimesh

    bones = {b.bone: b for b in item.reconstruction.bones.all()}
    meshes = {
        bone: trimesh.load(Path(settings.MEDIA_ROOT) / bones[bone].mesh.name, force="mesh")
        for bone in blinding.BONE_ORDER
    }
    data = blinding.blinded_glb(blinding.normalise_knee(meshes))
    relative = f"reading/{uuid.uuid4().hex}.glb"
    atomic_write_bytes(Path(settings.MEDIA_ROOT) / relative, data)
    previous = item.blinded_file.name if item.blinded_file else ""
    Item.objects.filter(pk=item.pk).update(blinded_file=relative, blinded_bytes=len(data))
    if previous:
        (Path(settings.MEDIA_ROOT) / previous).unlink(missing_ok=True)
    item.refresh_from_db()
    return item


# --- launch ------------------------------------------------------------------------------


def launch(
    reader_study: ReaderStudy, actor: AbstractBaseUser | None, now: datetime | None = None
) -> int:
    """Generate the reading order once from the stored seed and store it. Returns its size."""
    now = now or timezone.now()
    with transaction.atomic():
        ReaderStudy.objects.select_for_update().get(pk=reader_study.pk)
        _require_draft(reader_study)
        problems = launch_problems(reader_study)
        if problems:
            raise ValidationError(problems)
        design = _design_of(reader_study)
        slots = randomisation.generate(design)
        Assignment.objects.bulk_create(
            Assignment(
                reader_study=reader_study,
                reader_id=slot.reader,
                item_id=slot.item,
                round=slot.round,
                session=slot.session,
                position=slot.position,
                is_training=slot.training,
                available_from=now + timedelta(days=slot.available_day),
            )
            for slot in slots
        )
        reader_study.status = ReaderStudy.Status.LAUNCHED
        reader_study.launched_at = now
        reader_study.save(update_fields=["status", "launched_at"])
        AuditEvent.objects.create(
            reader_study=reader_study,
            action=AuditEvent.Action.LAUNCH,
            actor=actor,
            note=f"{len(slots)} assignments from seed {reader_study.seed}",
        )
    return len(slots)


def launch_problems(reader_study: ReaderStudy) -> list[str]:
    problems = []
    if not reader_study.readers.exists():
        problems.append("Add at least one reader.")
    if not reader_study.questions.exists():
        problems.append("Add at least one question.")
    if not reader_study.items.filter(is_training=False).exists():
        problems.append("Add at least one study item.")
    unprepared = reader_study.items.filter(blinded_file="").count()
    if unprepared:
        problems.append(f"{unprepared} item(s) have no blinded model yet (job still running?).")
    return problems


def _design_of(reader_study: ReaderStudy) -> randomisation.Design:
    items = reader_study.items.select_related("reconstruction")
    return randomisation.Design(
        readers=sorted(reader_study.readers.values_list("pk", flat=True)),
        items=[
            randomisation.Item(
                id=item.pk, pair_key=item.reconstruction.case_id, arm=item.reconstruction.source
            )
            for item in items
            if not item.is_training
        ],
        training=sorted(item.pk for item in items if item.is_training),
        rounds=reader_study.rounds,
        session_size=reader_study.session_size,
        washout_days=reader_study.washout_days,
        seed=reader_study.seed,
    )


# --- sessions: when does each open ------------------------------------------------------


@dataclass
class SessionState:
    number: int
    round: int
    is_training: bool
    total: int = 0
    done: int = 0
    opens_at: datetime | None = None  # None: an earlier session is unfinished
    assignment_ids: list[int] = field(default_factory=list)  # reading order
    submitted_ids: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    def is_open(self, now: datetime) -> bool:
        return self.opens_at is not None and self.opens_at <= now


@dataclass(frozen=True)
class _AssignmentRow:
    pk: int
    session: int
    round: int
    is_training: bool
    available_from: datetime
    submitted_at: datetime | None
    case_id: int


def _assignment_rows(reader_study: ReaderStudy, reader_id: int) -> list[_AssignmentRow]:
    """One query: everything the session rules need, in reading order."""
    rows = (
        Assignment.objects.filter(reader_study=reader_study, reader_id=reader_id)
        .order_by("session", "position")
        .values_list(
            "pk",
            "session",
            "round",
            "is_training",
            "available_from",
            "submitted_at",
            "item__reconstruction__case_id",
        )
    )
    return [_AssignmentRow(*row) for row in rows]


def session_states(reader_study: ReaderStudy, reader_id: int) -> list[SessionState]:
    """Sessions in order. A session opens once the earlier ones are complete, its earliest day
    has come and the washout has passed since the reader submitted any item of the same knee."""
    return _states_from_rows(_assignment_rows(reader_study, reader_id), reader_study.washout_days)


def _states_from_rows(rows: Iterable[_AssignmentRow], washout_days: int) -> list[SessionState]:
    washout = timedelta(days=washout_days)
    sessions: dict[int, SessionState] = {}
    cases: dict[int, list[tuple[int, datetime | None]]] = {}
    for row in rows:
        state = sessions.setdefault(
            row.session, SessionState(row.session, row.round, row.is_training)
        )
        state.total += 1
        state.assignment_ids.append(row.pk)
        if row.submitted_at is not None:
            state.done += 1
            state.submitted_ids.add(row.pk)
        state.opens_at = max(state.opens_at or row.available_from, row.available_from)
        cases.setdefault(row.session, []).append((row.case_id, row.submitted_at))
    last_read: dict[int, datetime] = {}
    blocked = False
    for number in sorted(sessions):
        state = sessions[number]
        if blocked:
            state.opens_at = None
            continue
        if not state.is_training:
            for case_id, _ in cases[number]:
                if case_id in last_read:
                    state.opens_at = max(state.opens_at, last_read[case_id] + washout)
            for case_id, submitted in cases[number]:
                if submitted is not None:
                    last_read[case_id] = max(last_read.get(case_id, submitted), submitted)
        blocked = not state.complete
    return [sessions[n] for n in sorted(sessions)]


def _reachable_ids(
    states: Iterable[SessionState], now: datetime, allow_modification: bool
) -> set[int]:
    open_ids: set[int] = set()
    for state in states:
        if state.is_open(now):
            open_ids.update(state.assignment_ids)
            if not allow_modification:
                open_ids -= state.submitted_ids
    return open_ids


def _next_id(states: Iterable[SessionState], now: datetime) -> int | None:
    """The first unsubmitted assignment of the reader's open sessions, in reading order."""
    for state in states:
        if state.complete:
            continue
        if not state.is_open(now):
            return None
        return next(pk for pk in state.assignment_ids if pk not in state.submitted_ids)
    return None


def reachable_assignment_ids(
    reader_study: ReaderStudy, reader_id: int, now: datetime | None = None
) -> set[int]:
    """The reader's open assignments: unsubmitted ones in open sessions, plus submitted ones
    there when answers may be changed."""
    states = session_states(reader_study, reader_id)
    return _reachable_ids(states, now or timezone.now(), reader_study.allow_answer_modification)


def next_assignment(
    reader_study: ReaderStudy, reader_id: int, now: datetime | None = None
) -> Assignment | None:
    """The first unsubmitted assignment of the reader's open sessions, in reading order."""
    upcoming = _next_id(session_states(reader_study, reader_id), now or timezone.now())
    return None if upcoming is None else Assignment.objects.get(pk=upcoming)


def open_assignment(reader: AbstractBaseUser, assignment_id: int, now=None) -> Assignment:
    """The reader opens an item: check it is theirs and open; record opened_at once."""
    now = now or timezone.now()
    assignment = _reachable(reader, assignment_id, now)
    if assignment.opened_at is None:
        Assignment.objects.filter(pk=assignment.pk, opened_at__isnull=True).update(opened_at=now)
        assignment.opened_at = now
    return assignment


def _reachable(reader: AbstractBaseUser, assignment_id: int, now: datetime) -> Assignment:
    assignment = (
        Assignment.objects.select_related("reader_study")
        .filter(pk=assignment_id, reader_id=reader.pk)
        .first()
    )
    if assignment is None or not assignment.reader_study.is_launched:
        raise NotAvailable("No such item.")
    if assignment.pk not in reachable_assignment_ids(assignment.reader_study, reader.pk, now):
        raise NotAvailable("No such item.")
    return assignment


# --- answers -----------------------------------------------------------------------------


def validate_answers(
    questions: Iterable[Question], raw: Mapping[str, Any]
) -> tuple[dict[int, Any], dict[int, str]]:
    """The one place answers are checked. `raw` maps "q<id>" (or the id) to the posted value.
    Returns the clean values (answered questions only) and an error per question."""
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    for question in questions:
        posted = raw.get(f"q{question.pk}", raw.get(str(question.pk), raw.get(question.pk)))
        if posted is None or (isinstance(posted, str) and not posted.strip()):
            if question.required:
                errors[question.pk] = "This question is required."
            continue
        try:
            values[question.pk] = clean_value(question, posted)
        except ValueError as exc:
            errors[question.pk] = str(exc)
    return values, errors


def clean_value(question: Question, posted: Any) -> Any:
    if question.kind == Question.Kind.LIKERT:
        return _integer_in(posted, 1, 5, "Choose a score from 1 to 5.")
    if question.kind == Question.Kind.CHOICE:
        if str(posted) not in question.options:
            raise ValueError("Choose one of the listed options.")
        return str(posted)
    if question.kind == Question.Kind.NUMBER:
        return _number(question, posted)
    text = str(posted).strip()
    if len(text) > TEXT_LIMIT:
        raise ValueError(f"At most {TEXT_LIMIT} characters.")
    return text


def _integer_in(posted: Any, low: int, high: int, message: str) -> int:
    try:
        number = float(str(posted).strip())
    except ValueError:
        raise ValueError(message) from None
    if not number.is_integer() or not low <= number <= high:
        raise ValueError(message)
    return int(number)


def _number(question: Question, posted: Any) -> float:
    try:
        number = float(str(posted).strip().replace(",", "."))
    except ValueError:
        raise ValueError("Enter a number.") from None
    if not math.isfinite(number):
        raise ValueError("Enter a finite number.")
    if question.minimum is not None and number < question.minimum:
        raise ValueError(f"At least {question.minimum:g}.")
    if question.maximum is not None and number > question.maximum:
        raise ValueError(f"At most {question.maximum:g}.")
    if question.step:
        base = question.minimum or 0.0
        steps = (number - base) / question.step
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"Use steps of {question.step:g}.")
    return number


def submit(
    reader: AbstractBaseUser,
    assignment_id: int,
    raw: Mapping[str, Any],
    *,
    idempotency_key: str,
    active_seconds: Any = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store the reader's answers for one assignment; idempotent per key. Returns the result."""
    if not KEY_PATTERN.match(str(idempotency_key or "")):
        raise ReadingError(OUT_OF_DATE)
    try:
        return _submit_once(reader, assignment_id, raw, idempotency_key, active_seconds, now)
    except IntegrityError:
        # The key is taken: by a concurrent request for this item that won the race (return
        # what it stored), or by another item (a stale form).
        stored = Submission.objects.filter(reader=reader, idempotency_key=idempotency_key).first()
        if stored is None:
            raise
        if stored.assignment_id != assignment_id:
            raise ReadingError(OUT_OF_DATE) from None
        return stored.result


def _submit_once(reader, assignment_id, raw, key, active_seconds, now) -> dict[str, Any]:
    with transaction.atomic():
        # The row lock serialises submissions of one assignment (retries, parallel tabs);
        # of=("self",) keeps the study row unlocked for the other readers.
        assignment = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("reader_study")
            .filter(pk=assignment_id, reader_id=reader.pk)
            .first()
        )
        if assignment is None:
            raise NotAvailable("No such item.")
        # A key already used here implies a submitted assignment; a key used for another
        # assignment fails the unique (reader, key) insert below and is answered in `submit`.
        if assignment.submitted_at is not None:
            previous = Submission.objects.filter(reader=reader, idempotency_key=key).first()
            if previous is not None:
                if previous.assignment_id != assignment_id:
                    raise ReadingError(OUT_OF_DATE)
                return previous.result
        now = now or timezone.now()
        study = assignment.reader_study
        rows = _assignment_rows(study, reader.pk)
        _check_reachable(assignment, _states_from_rows(rows, study.washout_days), now)
        questions = list(study.questions.all())
        values, errors = validate_answers(questions, raw)
        if errors:
            raise InvalidAnswers(errors)
        first_time = assignment.submitted_at is None
        _store_answers(assignment, questions, values, actor=reader, first_time=first_time)
        _record_time(assignment, active_seconds, now)
        rows = [
            replace(row, submitted_at=row.submitted_at or now) if row.pk == assignment.pk else row
            for row in rows
        ]
        result = {
            "item": assignment.code,
            "status": "submitted" if first_time else "changed",
            "answers": {str(pk): value for pk, value in values.items()},
            "next": _next_id(_states_from_rows(rows, study.washout_days), now),
        }
        Submission.objects.create(
            reader=reader, assignment=assignment, idempotency_key=key, result=result
        )
        return result


def _check_reachable(assignment: Assignment, states: list[SessionState], now: datetime) -> None:
    study = assignment.reader_study
    if assignment.submitted_at is not None and not study.allow_answer_modification:
        raise AnswerLocked("This item is already submitted; its answers are locked.")
    if assignment.pk not in _reachable_ids(states, now, study.allow_answer_modification):
        raise NotAvailable("No such item.")


def _store_answers(
    assignment: Assignment,
    questions: list[Question],
    values: dict[int, Any],
    actor,
    *,
    first_time: bool,
) -> None:
    # Answers exist only once an assignment was submitted (a reset removes both together).
    existing = {} if first_time else {a.question_id: a for a in assignment.answers.all()}
    created: list[Answer] = []
    events = []
    for question in questions:
        old = existing.get(question.pk)
        old_value = None if old is None else old.value
        new_value = values.get(question.pk)
        if old is None and new_value is None:
            continue
        if old is None:
            created.append(
                Answer(
                    assignment=assignment,
                    reader_id=assignment.reader_id,
                    item_id=assignment.item_id,
                    question=question,
                    round=assignment.round,
                    value=new_value,
                )
            )
            action = AuditEvent.Action.CREATE
        elif old.value != new_value:
            old.value = new_value
            old.save(update_fields=["value", "updated_at"])
            action = AuditEvent.Action.CHANGE
        else:
            continue
        events.append(
            AuditEvent(
                reader_study_id=assignment.reader_study_id,
                action=action,
                actor=actor,
                reader_id=assignment.reader_id,
                item_id=assignment.item_id,
                question=question,
                round=assignment.round,
                old_value=old_value,
                new_value=new_value,
            )
        )
    Answer.objects.bulk_create(created)
    AuditEvent.objects.bulk_create(events)


def _record_time(assignment: Assignment, active_seconds: Any, now: datetime) -> None:
    """Server times are authoritative; the client's active time is clamped to opened..now."""
    opened = assignment.opened_at or now
    try:
        reported = float(active_seconds)
    except (TypeError, ValueError):
        reported = 0.0
    if not math.isfinite(reported):
        reported = 0.0
    elapsed = max(0.0, (now - opened).total_seconds())
    total = min(max(0.0, assignment.active_seconds + max(0.0, reported)), elapsed)
    Assignment.objects.filter(pk=assignment.pk).update(
        opened_at=opened,
        submitted_at=assignment.submitted_at or now,
        active_seconds=total,
    )


# --- coordinator actions ---------------------------------------------------------------


def reset_reader(reader_study: ReaderStudy, reader_id: int, actor: AbstractBaseUser) -> int:
    """Remove one reader's answers and timings (audited per answer). Returns answers removed."""
    with transaction.atomic():
        assignments = Assignment.objects.select_for_update().filter(
            reader_study=reader_study, reader_id=reader_id
        )
        ids = list(assignments.values_list("pk", flat=True))
        answers = list(Answer.objects.filter(assignment_id__in=ids))
        AuditEvent.objects.bulk_create(
            AuditEvent(
                reader_study=reader_study,
                action=AuditEvent.Action.RESET,
                actor=actor,
                reader_id=reader_id,
                item_id=answer.item_id,
                question_id=answer.question_id,
                round=answer.round,
                old_value=answer.value,
                new_value=None,
            )
            for answer in answers
        )
        Answer.objects.filter(assignment_id__in=ids).delete()
        Submission.objects.filter(assignment_id__in=ids).delete()
        Assignment.objects.filter(pk__in=ids).update(
            opened_at=None, submitted_at=None, active_seconds=0
        )
    return len(answers)


def unblinding_key_csv(reader_study: ReaderStudy, actor: AbstractBaseUser) -> bytes:
    """Item code -> case, side, arm and method, for coordinators; each export is logged."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["item_code", "case_code", "side", "arm", "method", "reconstruction_id", "training"]
    )
    items = reader_study.items.select_related("reconstruction__case").order_by("code")
    for item in items:
        reconstruction = item.reconstruction
        writer.writerow(
            [
                item.code,
                reconstruction.case.code,
                reconstruction.case.side,
                reconstruction.source,
                reconstruction.method,
                reconstruction.pk,
                int(item.is_training),
            ]
        )
    AuditEvent.objects.create(
        reader_study=reader_study,
        action=AuditEvent.Action.KEY_EXPORT,
        actor=actor,
        note=f"{items.count()} items",
    )
    return buffer.getvalue().encode()
