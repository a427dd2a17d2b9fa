"""The cases API: role checks, writes through services, consistent error bodies, schema."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from studyapp.cases.models import Case
from tests.studyapp.factories import CaseFactory, StudyFactory

from .imaging_factories import nifti_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def test_coordinator_creates_a_case(api, coordinator):
    study = StudyFactory()
    api.force_authenticate(coordinator)
    response = api.post(
        "/api/cases/", {"study": study.pk, "code": "k-7", "side": "L"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["code"] == "K-7"
    duplicate = api.post(
        "/api/cases/", {"study": study.pk, "code": "K-7", "side": "L"}, format="json"
    )
    assert duplicate.status_code == 400
    body = duplicate.json()["error"]
    assert set(body) == {"code", "message", "fields"}


def test_statistician_reads_but_cannot_write(api, statistician):
    CaseFactory()
    api.force_authenticate(statistician)
    assert api.get("/api/cases/").status_code == 200
    response = api.post(
        "/api/cases/", {"study": StudyFactory().pk, "code": "K9", "side": "R"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"]


def test_rater_sees_no_case_data(api, rater):
    CaseFactory()
    api.force_authenticate(rater)
    for url in ("/api/cases/", "/api/studies/", "/api/reconstructions/", "/api/jobs/"):
        assert api.get(url).status_code == 403


def test_lists_are_paginated_and_filterable(api, coordinator):
    study = StudyFactory()
    CaseFactory.create_batch(3, study=study, side=Case.Side.LEFT)
    CaseFactory(study=study, side=Case.Side.RIGHT)
    api.force_authenticate(coordinator)
    page = api.get("/api/cases/", {"side": "L"}).json()
    assert page["count"] == 3 and len(page["results"]) == 3 and "next" in page


def test_ct_upload_through_the_api(api, coordinator, tmp_path):
    case = CaseFactory()
    api.force_authenticate(coordinator)
    response = api.post(
        f"/api/cases/{case.pk}/upload-ct/", {"file": nifti_upload(tmp_path)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["shape"] == [24, 20, 16]
    text_file = SimpleUploadedFile("notes.txt", b"not a volume")
    bad = api.post(f"/api/cases/{case.pk}/upload-ct/", {"file": text_file}, format="multipart")
    assert bad.status_code == 400
    assert "unsupported file type" in bad.json()["error"]["fields"]["file"][0]


def test_openapi_schema_describes_the_endpoints(api, statistician):
    api.force_authenticate(statistician)
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/api/cases/", "/api/cases/{id}/upload-ct/", "/api/jobs/{id}/"):
        assert path in schema["paths"]
