"""The API: raters get 403 everywhere; staff get paginated long tables that match the export
columns, can queue exports and reports, and download them; the schema documents the rows."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from studyapp.accounts.roles import Role
from studyapp.analysis import exports
from studyapp.analysis.models import Export, Report

TABLES = {
    "answers": "answers",
    "assignments": "assignments",
    "surface-metrics": "surface_metrics",
    "alignment-angles": "alignment_angles",
    "guide-trial": "guide_trial",
}


@pytest.fixture
def api(db):
    return APIClient()


def test_rater_cannot_reach_any_export_or_report(api, rater, reader_study):
    export = Export.objects.create(
        reader_study=reader_study, formats=["csv"], status="done", file="exports/x.zip"
    )
    report = Report.objects.create(reader_study=reader_study, status="done", html="reports/x.html")
    api.force_authenticate(rater)
    urls = [f"/api/analysis/{t}/?reader_study={reader_study.pk}" for t in TABLES]
    urls += [
        "/api/analysis/exports/",
        f"/api/analysis/exports/{export.pk}/",
        f"/api/analysis/exports/{export.pk}/download/",
        "/api/analysis/reports/",
        f"/api/analysis/reports/{report.pk}/html/",
        f"/api/analysis/reports/{report.pk}/pdf/",
        "/api/analysis/codebook/",
    ]
    for url in urls:
        assert api.get(url).status_code == 403, url
    assert (
        api.post(
            "/api/analysis/exports/", {"reader_study": reader_study.pk}, format="json"
        ).status_code
        == 403
    )
    assert (
        api.post(
            "/api/analysis/reports/", {"reader_study": reader_study.pk}, format="json"
        ).status_code
        == 403
    )


def test_rater_cannot_reach_export_pages(client, rater, reader_study):
    export = Export.objects.create(
        reader_study=reader_study, formats=["csv"], status="done", file="exports/x.zip"
    )
    client.force_login(rater)
    assert client.get("/analysis/").status_code == 403
    assert client.get(f"/analysis/exports/{export.pk}/download/").status_code == 403
    assert client.post(f"/analysis/{reader_study.pk}/export/").status_code == 403
    assert client.post(f"/analysis/{reader_study.pk}/report/").status_code == 403


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.STATISTICIAN, Role.ADMIN])
def test_staff_page_through_the_answers(api, user_with_role, reader_study, role):
    api.force_authenticate(user_with_role(role))
    frame = exports.answers_frame(reader_study)
    rows, url = [], f"/api/analysis/answers/?reader_study={reader_study.pk}&page_size=30"
    while url:
        body = api.get(url).json()
        rows += body["results"]
        url = body["next"]
    assert body["count"] == len(frame) == len(rows)
    assert list(rows[0]) == list(exports.ANSWER_COLUMNS)
    assert sum(r["score"] is None for r in rows) == int(frame["score"].isna().sum())
    assert {r["status"] for r in rows} == set(frame["status"].astype(str))
    submitted = [r for r in rows if r["submitted_at"]]
    assert submitted[0]["submitted_at"].endswith("Z") and isinstance(submitted[0]["edited"], bool)


def test_tables_need_a_reader_study(api, statistician):
    api.force_authenticate(statistician)
    assert api.get("/api/analysis/answers/").status_code == 400
    assert api.get("/api/analysis/answers/?reader_study=999999").status_code == 404


def test_empty_tables_and_codebook(api, statistician, reader_study):
    api.force_authenticate(statistician)
    body = api.get(f"/api/analysis/alignment-angles/?reader_study={reader_study.pk}").json()
    assert body["count"] == 0
    surface = api.get(f"/api/analysis/surface-metrics/?reader_study={reader_study.pk}").json()
    assert surface["count"] == 3 * 2 * 3 and surface["results"][0]["unit"] == "mm"
    codebook = api.get("/api/analysis/codebook/?page_size=1000").json()
    names = {(r["table"], r["name"]) for r in codebook["results"]}
    for table, columns in exports.TABLE_COLUMNS.items():
        assert {(table, c) for c in columns} <= names


def test_statistician_queues_an_export_and_downloads_it(
    api, statistician, reader_study, django_capture_on_commit_callbacks
):
    api.force_authenticate(statistician)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/analysis/exports/",
            {"reader_study": reader_study.pk, "formats": ["csv", "dta"]},
            format="json",
        )
    assert response.status_code == 202
    detail = api.get(f"/api/analysis/exports/{response.json()['id']}/").json()
    assert detail["status"] == "done" and detail["download_url"]
    download = api.get(detail["download_url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content)[:2] == b"PK"
    bad = api.post(
        "/api/analysis/exports/",
        {"reader_study": reader_study.pk, "formats": ["exe"]},
        format="json",
    )
    assert bad.status_code == 400


def test_coordinator_downloads_an_export_page(
    client, coordinator, reader_study, django_capture_on_commit_callbacks
):
    client.force_login(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            client.post(f"/analysis/{reader_study.pk}/export/", {"formats": ["csv"]}).status_code
            == 302
        )
    export = Export.objects.get()
    response = client.get(f"/analysis/exports/{export.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "Download zip" in client.get("/analysis/").content.decode()


def test_schema_documents_the_long_tables(api, statistician):
    api.force_authenticate(statistician)
    schema = api.get("/api/schema/?format=json").json()
    assert "/api/analysis/answers/" in schema["paths"]
    rows = schema["components"]["schemas"]["AnswersRow"]["properties"]
    assert list(rows) == list(exports.ANSWER_COLUMNS)
    assert "Likert" in rows["score"]["description"] or "Score" in rows["score"]["description"]
    params = schema["paths"]["/api/analysis/answers/"]["get"]["parameters"]
    assert any(p["name"] == "reader_study" and p["required"] for p in params)
    assert any(p["name"] == "page" for p in params)
