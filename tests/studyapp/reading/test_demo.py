"""The demo step builds a launched reader study from the demo study's reconstructions."""

from __future__ import annotations

import pytest

from studyapp.accounts.roles import Role
from studyapp.demo.services import DEMO_STEPS, DemoReport
from studyapp.reading import services
from studyapp.reading.demo import build_demo_reader_study, simulate_demo_reading
from studyapp.reading.models import Answer, Question, ReaderStudy
from tests.studyapp.factories import CaseFactory, UserFactory, complete_reconstruction

pytestmark = pytest.mark.django_db


def test_registered_as_a_demo_step():
    assert build_demo_reader_study in DEMO_STEPS


def test_without_reconstructions_it_does_nothing_and_says_so():
    case = CaseFactory()
    report = DemoReport(password="x")
    build_demo_reader_study(case.study, report)
    assert not ReaderStudy.objects.exists()
    assert "no finished reconstructions" in report.notes[-1]


def test_builds_once_with_sessions_open_for_raters():
    case = CaseFactory()
    for arm in ("ct", "xray"):
        complete_reconstruction(case, arm)
    raters = [UserFactory(roles=[Role.RATER]) for _ in range(2)]
    report = DemoReport(password="x")
    build_demo_reader_study(case.study, report)
    build_demo_reader_study(case.study, report)
    study = ReaderStudy.objects.get()
    assert study.is_launched and study.items.count() == 2
    assert study.assignments.count() == 2 * 2
    assert set(study.readers.all()) == set(raters)
    assert "ready" in report.notes[-1]


def test_simulated_reading_answers_all_but_the_first_rater_once():
    case = CaseFactory()
    for arm in ("ct", "xray"):
        complete_reconstruction(case, arm)
    raters = sorted(
        (UserFactory(roles=[Role.RATER]) for _ in range(3)), key=lambda u: u.get_username()
    )
    report = DemoReport(password="x")
    build_demo_reader_study(case.study, report)
    simulate_demo_reading(case.study, report)
    simulate_demo_reading(case.study, report)  # idempotent: nothing left to read
    study = ReaderStudy.objects.get()
    assert "simulated" in study.description
    answers = Answer.objects.filter(assignment__reader_study=study)
    assert not answers.filter(reader=raters[0]).exists()
    for rater in raters[1:]:
        assert answers.filter(reader=rater).count() == 2 * study.questions.count()
    assert set(answers.values_list("value", flat=True)) <= {1, 2, 3, 4, 5}
    assert sum("Simulated" in note for note in report.notes) == 1
    assert simulate_demo_reading in DEMO_STEPS
    assert DEMO_STEPS.index(simulate_demo_reading) == DEMO_STEPS.index(build_demo_reader_study) + 1


def test_simulated_reading_leaves_optional_non_likert_questions_unanswered():
    case = CaseFactory()
    for arm in ("ct", "xray"):
        complete_reconstruction(case, arm)
    for _ in range(2):
        UserFactory(roles=[Role.RATER])
    draft = services.create_reader_study(
        case.study, f"{case.study.name}: blinded reading", washout_days=0
    )
    comment = services.add_question(draft, "Comment", Question.Kind.TEXT, required=False)
    report = DemoReport(password="x")
    build_demo_reader_study(case.study, report)
    simulate_demo_reading(case.study, report)
    answers = Answer.objects.filter(assignment__reader_study=draft)
    assert answers.exists() and not answers.filter(question=comment).exists()
