"""The report: a simulated full study's analysis appears in the HTML; the PDF is written;
the job stores the analysis run; the statistician sees the latest report."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from studyapp.analysis import report as report_module
from studyapp.analysis import services
from studyapp.analysis.models import AnalysisRun, Report, Status
from tests.studyapp.analysis.conftest import add_surface_metrics
from tests.studyapp.analysis.simulated import simulated_reader_study


@pytest.fixture
def simulated(db):
    reader_study = simulated_reader_study(n_raters=6, n_cases=12, rounds=2, seed=3, missing_reads=2)
    for item in reader_study.items.filter(reconstruction__source="xray").select_related(
        "reconstruction"
    ):
        reference = item.reconstruction.case.reconstructions.get(source="ct")
        add_surface_metrics(item.reconstruction, reference, offset=0.01 * item.pk)
    return reader_study


def test_report_of_a_simulated_study(
    simulated, statistician, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(report_module, "chromium_pdf", lambda html, pdf: False)  # fast: PdfPages
    simulated.description = "All answers here are simulated."
    simulated.save(update_fields=["description"])
    with django_capture_on_commit_callbacks(execute=True):
        report = services.request_report(simulated, statistician)
    report.refresh_from_db()
    assert report.status == Status.DONE, report.error
    assert report.pdf_engine == "matplotlib"
    html = (Path(settings.MEDIA_ROOT) / report.html.name).read_text()
    pdf = (Path(settings.MEDIA_ROOT) / report.pdf.name).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert "All answers here are simulated." in html  # the study's own caveat heads the report
    run = AnalysisRun.objects.get(report=report)
    questions = run.results["analysis"]["questions"]
    assert len(questions) == 3
    for q in questions:  # the numbers of evaluation.stats are printed in the report
        assert f"{q['estimate']:.3f}" in html and f"{q['ci_low']:.3f}" in html
    reliability = run.results["analysis"]["reliability"]
    assert f"{reliability[0]['ICC_A1']:.3f}" in html
    flow = run.results["flow"]
    assert flow["raters"] == 6 and flow["reads_planned"] == 6 * 24 * 2
    assert flow["reads_completed"] == flow["reads_planned"] - 2
    for section in (
        "Participant flow",
        "Per-bone accuracy",
        "Reliability",
        "Provenance",
        "Bland-Altman" if False else "Alignment angles",
    ):
        assert section in html
    assert (
        "No alignment results are stored" in html
        and "Zero rows when the study has no guide trial" in html
    )
    assert html.count("data:image/png;base64,") >= 2  # forest + Likert bars inlined
    assert "matplotlib PdfPages" in html  # the footer names the PDF engine
    assert "Intra-rater" in html  # two rounds


@pytest.mark.skipif(report_module.chromium_path() is None, reason="no Chromium")
def test_chromium_pdf_of_a_small_report(reader_study, tmp_path):
    built = report_module.build(reader_study, n_boot=50)
    engine = report_module.write_outputs(built, tmp_path / "r.html", tmp_path / "r.pdf")
    assert engine == "chromium"
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert "headless Chromium" in (tmp_path / "r.html").read_text()


def test_report_without_answers_says_so(db, statistician):
    from tests.studyapp.factories import ReaderStudyFactory

    built = report_module.build(ReaderStudyFactory(), n_boot=10)
    html = report_module.render_html(built, "matplotlib")
    assert "No Likert answers" in html and built.results["analysis"] is None


def test_statistician_home_shows_the_latest_report(client, statistician, reader_study, tmp_path):
    report = Report.objects.create(
        reader_study=reader_study, status=Status.DONE, html="reports/x.html"
    )
    Report.objects.filter(pk=report.pk).update(finished_at=report.created_at)
    client.force_login(statistician)
    body = client.get("/analysis/").content.decode()
    assert reader_study.title in body and "Latest report" in body


def test_statistician_home_lists_latest_report_and_exports(client, statistician, reader_study):
    from studyapp.analysis.models import Export

    report = Report.objects.create(
        reader_study=reader_study,
        status=Status.DONE,
        html="reports/x.html",
        pdf_engine="chromium",
        pdf="reports/x.pdf",
    )
    Report.objects.filter(pk=report.pk).update(finished_at=report.created_at)
    Export.objects.create(
        reader_study=reader_study,
        formats=["csv"],
        status=Status.DONE,
        file="exports/x.zip",
        sha256="ab" * 32,
    )
    client.force_login(statistician)
    body = client.get("/statistician/").content.decode()
    assert "Latest report" in body and f"/analysis/reports/{report.pk}/" in body
    assert "Headless Chromium" in body and "Download zip" in body
