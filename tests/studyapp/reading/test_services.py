"""Reader-study rules: design, launch, washout gates, submission, locking, audit, reset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from studyapp.reading import services
from studyapp.reading.models import (
    Answer,
    AppendOnlyError,
    Assignment,
    AuditEvent,
    Item,
    Question,
    Submission,
)
from tests.studyapp.factories import CaseFactory, ReconstructionFactory, complete_reconstruction

from .conftest import build_study

pytestmark = pytest.mark.django_db


def _scores(study, value=3) -> dict[str, str]:
    return {f"q{q.pk}": str(value) for q in study.questions.all()}


def _first(study, reader):
    return services.next_assignment(study, reader.pk)


def test_a_new_study_has_the_three_likert_questions_with_anchors():
    study, _ = build_study(launch=False)
    questions = list(study.questions.all())
    assert [q.text for q in questions] == [
        "Overall shape",
        "Fine detail",
        "Clinical usefulness for planning",
    ]
    assert all(q.kind == Question.Kind.LIKERT and len(q.options) == 5 for q in questions)


def test_launch_stores_every_item_for_every_reader_and_freezes_the_design():
    study, raters = build_study(readers=3, knees=4, rounds=2)
    assert Assignment.objects.filter(reader_study=study).count() == 3 * 8 * 2
    assert AuditEvent.objects.filter(reader_study=study, action="launch").count() == 1
    with pytest.raises(ValidationError):
        services.launch(study, actor=None)
    with pytest.raises(ValidationError):
        services.add_question(study, "Late question")
    with pytest.raises(ValidationError):
        services.update_settings(study, rounds=3)


def test_launch_refuses_a_study_without_readers_or_blinded_models():
    study, _ = build_study(readers=0, launch=False)
    Item.objects.filter(reader_study=study).update(blinded_file="")
    with pytest.raises(ValidationError) as error:
        services.launch(study, actor=None)
    assert "reader" in str(error.value) and "blinded model" in str(error.value)


def test_items_come_from_finished_complete_reconstructions_once(django_capture_on_commit_callbacks):
    study, _ = build_study(knees=0, launch=False)
    case = CaseFactory(study=study.study)
    done = complete_reconstruction(case, "ct")
    running = ReconstructionFactory(case=case, source="xray", status="running")
    assert services.eligible_reconstructions(study) == [done]
    with django_capture_on_commit_callbacks(execute=False):
        items = services.add_items(study, [done])
    assert len(items) == 1 and len(items[0].code) == 8
    with pytest.raises(ValidationError):
        services.add_items(study, [done])
    with pytest.raises(ValidationError):
        services.add_items(study, [running])


def test_training_knees_stay_apart_from_study_knees(django_capture_on_commit_callbacks):
    study, _ = build_study(knees=0, launch=False)
    case = CaseFactory(study=study.study)
    ct, xray = complete_reconstruction(case, "ct"), complete_reconstruction(case, "xray")
    with django_capture_on_commit_callbacks(execute=False):
        services.add_items(study, [ct])
        with pytest.raises(ValidationError, match="training"):
            services.add_items(study, [xray], training=True)


def test_submit_stores_answers_times_and_audit():
    study, (reader, _) = build_study()
    assignment = _first(study, reader)
    start = timezone.now()
    services.open_assignment(reader, assignment.pk, now=start)
    result = services.submit(
        reader,
        assignment.pk,
        _scores(study, 4),
        idempotency_key="key-00000001",
        active_seconds=9999,
        now=start + timedelta(seconds=30),
    )
    assert result["status"] == "submitted"
    assignment.refresh_from_db()
    assert assignment.submitted_at == start + timedelta(seconds=30)
    assert assignment.active_seconds == 30  # clamped to opened..submitted
    assert sorted(Answer.objects.filter(assignment=assignment).values_list("value", flat=True)) == [
        4,
        4,
        4,
    ]
    events = AuditEvent.objects.filter(action="create", reader=reader)
    assert events.count() == 3 and {e.new_value for e in events} == {4}
    assert all(e.old_value is None and e.actor == reader for e in events)


def test_a_retried_submission_returns_the_same_result_and_stores_once():
    study, (reader, _) = build_study()
    assignment = _first(study, reader)
    first = services.submit(reader, assignment.pk, _scores(study), idempotency_key="double-click-1")
    again = services.submit(
        reader, assignment.pk, _scores(study, 5), idempotency_key="double-click-1"
    )
    assert again == first
    assert Answer.objects.filter(assignment=assignment).count() == 3
    assert set(Answer.objects.filter(assignment=assignment).values_list("value", flat=True)) == {3}
    assert Submission.objects.filter(assignment=assignment).count() == 1


def test_a_key_reused_for_another_item_is_refused_and_stores_nothing():
    study, (reader, _) = build_study()
    first = _first(study, reader)
    services.submit(reader, first.pk, _scores(study), idempotency_key="reused-key-1")
    second = services.next_assignment(study, reader.pk)
    with pytest.raises(services.ReadingError, match="out of date"):
        services.submit(reader, second.pk, _scores(study), idempotency_key="reused-key-1")
    second.refresh_from_db()
    assert second.submitted_at is None and not second.answers.exists()
    # a retry of the first item with its own key still gets the stored result back
    again = services.submit(reader, first.pk, _scores(study, 1), idempotency_key="reused-key-1")
    assert again["status"] == "submitted" and again["item"] == first.code


def test_answers_are_locked_after_submit_unless_the_study_allows_changes():
    study, (reader, _) = build_study()
    assignment = _first(study, reader)
    services.submit(reader, assignment.pk, _scores(study), idempotency_key="first-key-1")
    with pytest.raises(services.AnswerLocked):
        services.submit(reader, assignment.pk, _scores(study, 5), idempotency_key="second-key")


def test_changes_are_kept_in_the_audit_when_allowed():
    study, (reader, _) = build_study(allow_answer_modification=True)
    assignment = _first(study, reader)
    services.submit(reader, assignment.pk, _scores(study, 2), idempotency_key="first-key-1")
    result = services.submit(reader, assignment.pk, _scores(study, 5), idempotency_key="second-key")
    assert result["status"] == "changed"
    changes = AuditEvent.objects.filter(action="change", reader=reader)
    assert {(e.old_value, e.new_value) for e in changes} == {(2, 5)}
    assert changes.count() == 3
    assert set(Answer.objects.filter(assignment=assignment).values_list("value", flat=True)) == {5}


LIKERT_CASES = [
    ("0", False),
    ("6", False),
    ("2.5", False),
    ("abc", False),
    ("1", True),
    ("5", True),
    (" 3 ", True),
]


@pytest.mark.parametrize("value, valid", LIKERT_CASES)
def test_likert_values_are_validated_on_the_server(value, valid):
    study, (reader, _) = build_study()
    assignment = _first(study, reader)
    raw = _scores(study)
    question = study.questions.first()
    raw[f"q{question.pk}"] = value
    if valid:
        services.submit(reader, assignment.pk, raw, idempotency_key="valid-key-1")
    else:
        with pytest.raises(services.InvalidAnswers) as error:
            services.submit(reader, assignment.pk, raw, idempotency_key="invalid-key")
        assert set(error.value.errors) == {question.pk}
        assert not Answer.objects.exists()


@pytest.mark.parametrize(
    "kind, extra, value, expected",
    [
        ("choice", {"options": ["yes", "no"]}, "yes", "yes"),
        ("choice", {"options": ["yes", "no"]}, "maybe", None),
        ("number", {"minimum": 0, "maximum": 10, "step": 0.5}, "2,5", 2.5),
        ("number", {"minimum": 0, "maximum": 10, "step": 0.5}, "2.3", None),
        ("number", {"minimum": 0, "maximum": 10}, "11", None),
        ("number", {}, "nan", None),
        ("text", {}, "  irregular condyle ", "irregular condyle"),
        ("text", {}, "x" * 2001, None),
    ],
)
def test_other_question_kinds(kind, extra, value, expected):
    study, _ = build_study(launch=False)
    question = services.add_question(study, "Extra", kind, **extra)
    values, errors = services.validate_answers([question], {f"q{question.pk}": value})
    if expected is None:
        assert question.pk in errors
    else:
        assert values == {question.pk: expected} and not errors


def test_required_questions_are_enforced_and_optional_ones_may_be_empty():
    study, _ = build_study(launch=False)
    required = services.add_question(study, "Req", "text")
    optional = services.add_question(study, "Opt", "text", required=False)
    values, errors = services.validate_answers([required, optional], {})
    assert errors == {required.pk: "This question is required."} and values == {}


def test_question_design_is_validated():
    study, _ = build_study(launch=False)
    with pytest.raises(ValidationError):
        services.add_question(study, "Bad", "choice", options=["only one"])
    with pytest.raises(ValidationError):
        services.add_question(study, "Bad", "likert", options=["a", "b"])
    with pytest.raises(ValidationError):
        services.add_question(study, "Bad", "number", minimum=5, maximum=1)


def test_a_reader_cannot_reach_another_readers_or_a_later_assignment():
    study, (reader, other) = build_study()
    theirs = _first(study, other)
    with pytest.raises(services.NotAvailable):
        services.open_assignment(reader, theirs.pk)
    with pytest.raises(services.NotAvailable):
        services.submit(reader, theirs.pk, _scores(study), idempotency_key="steal-key-1")
    later = Assignment.objects.filter(reader=reader, session=2).first()
    with pytest.raises(services.NotAvailable):
        services.open_assignment(reader, later.pk)


def test_the_paired_session_opens_only_after_the_washout():
    study, (reader,) = build_study(readers=1, knees=2, session_size=10, washout_days=14)
    start = timezone.now()
    first_session = Assignment.objects.filter(reader=reader, session=1)
    assert first_session.count() == 2  # one arm of each knee
    for n, assignment in enumerate(first_session):
        services.submit(
            reader, assignment.pk, _scores(study), idempotency_key=f"wash-{n:06d}", now=start
        )
    paired = Assignment.objects.get(reader=reader, session=2, position=1)
    for days, reachable in [(0, False), (13, False), (15, True)]:
        now = start + timedelta(days=days)
        assert (paired.pk in services.reachable_assignment_ids(study, reader.pk, now)) is reachable
    # Late reading pushes the washout: it counts from the actual submission.
    states = services.session_states(study, reader.pk)
    assert states[1].opens_at >= start + timedelta(days=14)


def test_reset_removes_one_readers_answers_with_audit():
    study, (reader, other) = build_study()
    mine, theirs = _first(study, reader), _first(study, other)
    services.submit(reader, mine.pk, _scores(study, 2), idempotency_key="reset-key-1")
    services.submit(other, theirs.pk, _scores(study, 2), idempotency_key="reset-key-2")
    coordinator = study.created_by
    assert services.reset_reader(study, reader.pk, actor=coordinator) == 3
    assert not Answer.objects.filter(reader=reader).exists()
    assert Answer.objects.filter(reader=other).count() == 3
    mine.refresh_from_db()
    assert mine.submitted_at is None and mine.opened_at is None
    resets = AuditEvent.objects.filter(action="reset", reader=reader)
    assert {(e.old_value, e.new_value) for e in resets} == {(2, None)}
    # The key of the reset submission may be used again.
    services.submit(reader, mine.pk, _scores(study, 4), idempotency_key="reset-key-1")


def test_the_audit_log_is_append_only():
    study, (reader, _) = build_study()
    services.submit(reader, _first(study, reader).pk, _scores(study), idempotency_key="audit-key-1")
    event = AuditEvent.objects.filter(action="create").first()
    event.new_value = 1
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(new_value=1)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_unblinding_key_names_case_and_arm_and_is_logged(coordinator):
    study, _ = build_study()
    csv_text = services.unblinding_key_csv(study, coordinator).decode()
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("item_code,case_code,side,arm")
    assert len(lines) == 1 + study.items.count()
    assert {line.split(",")[3] for line in lines[1:]} == {"ct", "xray"}
    assert AuditEvent.objects.filter(action="key_export", actor=coordinator).count() == 1
