"""Reading API: own open assignments only, blinded fields, idempotent submit, clear errors."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from studyapp.reading import services
from studyapp.reading.models import Answer

from .conftest import build_study

pytestmark = pytest.mark.django_db


def test_rater_lists_and_submits_own_assignments():
    study, (reader, other) = build_study()
    client = APIClient()
    client.force_authenticate(reader)
    listed = client.get("/api/reading/assignments/").json()["results"]
    first = services.next_assignment(study, reader.pk)
    assert [a["id"] for a in listed] == list(
        study.assignments.filter(reader=reader, session=1)
        .order_by("position")
        .values_list("pk", flat=True)
    )
    assert set(listed[0]) == {
        "id",
        "code",
        "round",
        "session",
        "position",
        "submitted",
        "model_url",
        "questions",
    }
    body = str(listed)
    for item in study.items.select_related("reconstruction__case"):
        assert item.code not in body and item.reconstruction.case.code not in body
    answers = {str(q.pk): 5 for q in study.questions.all()}
    payload = {"answers": answers, "idempotency_key": "api-key-0001", "active_seconds": 3}
    url = f"/api/reading/assignments/{first.pk}/submit/"
    one = client.post(url, payload, format="json")
    two = client.post(url, payload, format="json")
    assert one.status_code == two.status_code == 200 and one.json() == two.json()
    assert Answer.objects.filter(assignment=first).count() == 3
    locked = client.post(url, {**payload, "idempotency_key": "api-key-0002"}, format="json")
    assert locked.status_code == 409
    theirs = services.next_assignment(study, other.pk)
    assert client.get(f"/api/reading/assignments/{theirs.pk}/").status_code == 404
    assert (
        client.post(
            f"/api/reading/assignments/{theirs.pk}/submit/", payload, format="json"
        ).status_code
        == 404
    )


def test_invalid_answers_name_the_question():
    study, (reader, _) = build_study()
    client = APIClient()
    client.force_authenticate(reader)
    first = services.next_assignment(study, reader.pk)
    question = study.questions.first()
    response = client.post(
        f"/api/reading/assignments/{first.pk}/submit/",
        {"answers": {str(question.pk): 7}, "idempotency_key": "api-key-0003"},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["answers"]
    assert errors[str(question.pk)] == "Choose a score from 1 to 5."
    assert len(errors) == 3  # the other two are required and missing
