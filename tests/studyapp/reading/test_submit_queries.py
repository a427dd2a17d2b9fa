"""The submission path stays lean: a fixed, small number of SQL queries per submit."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from studyapp.accounts.services import api_token_for
from studyapp.reading import services
from studyapp.reading.models import Answer, AuditEvent

from .conftest import build_study

pytestmark = pytest.mark.django_db

# token + user, roles, savepoint, locked assignment + study, the reader's
# assignment rows, questions, answers, audit events, timing update, submission, release.
SUBMIT_QUERY_BUDGET = 11


def test_submit_over_the_api_uses_a_fixed_small_number_of_queries():
    study, (reader, _) = build_study(readers=2, knees=4)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(reader)}")
    answers = {str(q.pk): 4 for q in study.questions.all()}
    counts = []
    for number in range(4):
        assignment = services.next_assignment(study, reader.pk)
        payload = {
            "answers": answers,
            "idempotency_key": f"q-key-{number:04d}",
            "active_seconds": 2,
        }
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                f"/api/reading/assignments/{assignment.pk}/submit/", payload, format="json"
            )
        assert response.status_code == 200, response.content
        # the result names the same next item as the read path does afterwards
        upcoming = services.next_assignment(study, reader.pk)
        assert response.json()["next"] == (upcoming.pk if upcoming else None)
        counts.append(len(queries))
    assert max(counts) <= SUBMIT_QUERY_BUDGET, counts
    assert Answer.objects.filter(reader=reader).count() == 4 * len(answers)
    assert AuditEvent.objects.filter(reader=reader).count() == 4 * len(answers)


def test_assignment_list_queries_do_not_grow_with_the_session():
    counts = []
    for session_size in (2, 8):
        study, (reader,) = build_study(readers=1, knees=8, session_size=session_size)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(reader)}")
        with CaptureQueriesContext(connection) as queries:
            listed = client.get("/api/reading/assignments/").json()["results"]
        assert len(listed) == session_size and all(len(a["questions"]) == 3 for a in listed)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
