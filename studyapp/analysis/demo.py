"""The demo's analysis: a report of the demo reader study once it has answers."""

from __future__ import annotations

from studyapp.cases.models import Study


def build_demo_analysis(study: Study, report) -> None:
    """Demo analysis: queue a report of the demo reader study if it has answers."""
    from studyapp.reading.models import ReaderStudy

    from . import selectors, services
    from .models import Report, Status

    title = f"{study.name}: blinded reading"
    reader_study = ReaderStudy.objects.filter(title=title).first()
    if reader_study is None or not selectors.has_answers(reader_study):
        report.notes.append(
            "Analysis report not built: the demo reader study has no answers yet "
            "(read as rater1..rater10, then regenerate the report as 'statistician')."
        )
        return
    stamp = selectors.answer_stamp(reader_study)
    current = Report.objects.filter(
        reader_study=reader_study,
        answer_stamp=stamp,
        status__in=[Status.QUEUED, Status.RUNNING, Status.DONE],
    ).exists()
    if not current:
        services.request_report(reader_study, None)
    report.notes.append(
        f"Analysis report of '{title}' {'is current' if current else 'queued'}; "
        "log in as 'statistician' to see it."
    )
