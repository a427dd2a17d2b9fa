"""The demo step: a note without answers; a queued report with them; idempotent."""

from __future__ import annotations

from studyapp.analysis.demo import build_demo_analysis
from studyapp.analysis.models import Report
from studyapp.demo.services import DEMO_STEPS, DemoReport


def test_demo_step_is_registered():
    assert build_demo_analysis in DEMO_STEPS


def test_demo_step_notes_missing_answers(db):
    from tests.studyapp.factories import StudyFactory

    report = DemoReport(password="x")
    build_demo_analysis(StudyFactory(), report)
    assert "no answers yet" in report.notes[0] and not Report.objects.exists()


def test_demo_step_queues_one_report(reader_study, django_capture_on_commit_callbacks):
    reader_study.title = f"{reader_study.study.name}: blinded reading"
    reader_study.save()
    report = DemoReport(password="x")
    with django_capture_on_commit_callbacks(execute=False):
        build_demo_analysis(reader_study.study, report)
        build_demo_analysis(reader_study.study, report)
    assert Report.objects.filter(reader_study=reader_study).count() == 1
    assert "queued" in report.notes[0] and "is current" in report.notes[1]
