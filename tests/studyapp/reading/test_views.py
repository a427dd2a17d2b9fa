"""Reading pages: blinding of everything a rater receives, form handling, coordinator pages."""

from __future__ import annotations

import gzip

import pytest
from django.urls import reverse

from studyapp.reading import services
from studyapp.reading.models import Answer, AuditEvent

from .conftest import build_study

pytestmark = pytest.mark.django_db


def _post_scores(client, study, assignment, value="4", **extra):
    data = {f"q{q.pk}": value for q in study.questions.all()}
    data.update({"idempotency_key": "form-key-0001", "active_seconds": "12", **extra})
    return client.post(reverse("reading:read", args=[assignment.pk]), data)


def _forbidden_words(study) -> set[str]:
    words = {"ct", "xray", "x-ray", "expert", "test-method"}
    for item in study.items.select_related("reconstruction__case"):
        words |= {item.code, item.reconstruction.case.code, item.blinded_file.name}
    return words


def _assert_blind(response, study) -> None:
    text = response.content.decode(errors="replace").lower() if response.content else ""
    headers = " ".join(f"{k}: {v}" for k, v in response.headers.items()).lower()
    for word in _forbidden_words(study):
        word = word.lower()
        # whole-token check for the short arm names (avoid matching "select", "object"...)
        for haystack in (text, headers):
            if len(word) <= 6:
                import re

                assert not re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", haystack), word
            else:
                assert word not in haystack, word


def test_rater_pages_reveal_neither_source_nor_case(client):
    study, (reader, _) = build_study()
    client.force_login(reader)
    home = client.get(reverse("accounts:rater-home"))
    assert home.status_code == 200 and study.title.encode() in home.content
    _assert_blind(home, study)
    assignment = services.next_assignment(study, reader.pk)
    page = client.get(reverse("reading:read", args=[assignment.pk]))
    assert page.status_code == 200 and assignment.code.encode() in page.content
    _assert_blind(page, study)
    model = client.get(reverse("reading:model", args=[assignment.pk]))
    assert model.status_code == 200
    assert model["Content-Disposition"] == 'inline; filename="model.glb"'
    assert "Last-Modified" not in model.headers and "ETag" not in model.headers
    _assert_blind(model, study)


def test_the_model_is_sent_compressed_when_accepted(client):
    study, (reader, _) = build_study()
    client.force_login(reader)
    assignment = services.next_assignment(study, reader.pk)
    response = client.get(
        reverse("reading:model", args=[assignment.pk]), HTTP_ACCEPT_ENCODING="gzip"
    )
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content) == b"glTF-placeholder"


def test_other_readers_items_and_closed_items_are_plain_404(client):
    study, (reader, other) = build_study()
    client.force_login(reader)
    theirs = services.next_assignment(study, other.pk)
    later = study.assignments.filter(reader=reader, session=2).first()
    for assignment in (theirs, later):
        for name in ("reading:read", "reading:model"):
            response = client.get(reverse(name, args=[assignment.pk]))
            assert response.status_code == 404
            _assert_blind(response, study)
    assert _post_scores(client, study, theirs).status_code == 404
    assert not Answer.objects.exists()


def test_submit_and_next_then_locked(client):
    study, (reader, _) = build_study()
    client.force_login(reader)
    first = services.next_assignment(study, reader.pk)
    client.get(reverse("reading:read", args=[first.pk]))
    response = _post_scores(client, study, first)
    second = services.next_assignment(study, reader.pk)
    assert response.status_code == 302 and response.url == reverse("reading:read", args=[second.pk])
    # A double click resends the same key: same redirect, one set of answers.
    again = _post_scores(client, study, first)
    assert again.status_code == 302 and again.url == response.url
    assert Answer.objects.filter(assignment=first).count() == 3
    # The submitted item is no longer reachable (locked study).
    assert client.get(reverse("reading:read", args=[first.pk])).status_code == 404


def test_bad_values_get_clear_errors_and_lose_nothing(client):
    study, (reader, _) = build_study()
    client.force_login(reader)
    assignment = services.next_assignment(study, reader.pk)
    questions = list(study.questions.all())
    data = {
        f"q{questions[0].pk}": "2",
        f"q{questions[1].pk}": "9",
        "idempotency_key": "bad-form-01",
    }
    response = client.post(reverse("reading:read", args=[assignment.pk]), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "Choose a score from 1 to 5." in body and "This question is required." in body
    assert f'name="q{questions[0].pk}" value="2" checked' in body
    assert not Answer.objects.exists()


def test_coordinator_designs_launches_and_monitors(
    client, coordinator, django_capture_on_commit_callbacks
):
    study, (reader, _) = build_study(launch=False)
    client.force_login(coordinator)
    design = reverse("reading:study-design", args=[study.pk])
    assert client.get(design).status_code == 200
    bad = client.post(
        design, {"action": "question", "text": "Pick", "kind": "choice", "options": "only"}
    )
    assert bad.status_code == 400 and b"at least two options" in bad.content
    ok = client.post(
        design,
        {
            "action": "question",
            "text": "Pick",
            "kind": "choice",
            "options": "a\nb",
            "required": "on",
        },
    )
    assert ok.status_code == 302 and study.questions.count() == 4
    assert client.post(design, {"action": "launch"}).status_code == 302
    study.refresh_from_db()
    assert study.is_launched
    services.submit(
        reader,
        services.next_assignment(study, reader.pk).pk,
        {f"q{q.pk}": "1" if q.kind == "likert" else "a" for q in study.questions.all()},
        idempotency_key="coord-key-1",
    )
    progress = client.get(reverse("reading:progress", args=[study.pk]))
    assert progress.status_code == 200 and reader.username.encode() in progress.content
    reset = client.post(reverse("reading:reset-reader", args=[study.pk, reader.pk]))
    assert reset.status_code == 302 and not Answer.objects.filter(reader=reader).exists()
    audit = client.get(reverse("reading:audit", args=[study.pk]))
    assert b"Answers reset" in audit.content and b"Answer created" in audit.content
    key = client.get(reverse("reading:unblinding-key", args=[study.pk]))
    assert key.status_code == 200 and b"item_code,case_code" in key.content
    assert AuditEvent.objects.filter(action="key_export", actor=coordinator).exists()


def test_coordinator_adds_items_from_many_cases_in_one_action(
    client, coordinator, django_capture_on_commit_callbacks
):
    from tests.studyapp.factories import CaseFactory, complete_reconstruction

    study, _ = build_study(knees=0, launch=False)
    recons = [
        complete_reconstruction(CaseFactory(study=study.study), arm) for arm in ("ct", "xray")
    ]
    client.force_login(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("reading:study-design", args=[study.pk]),
            {"action": "items", "reconstructions": [str(r.pk) for r in recons]},
        )
    assert response.status_code == 302
    items = list(study.items.all())
    assert len(items) == 2 and all(item.blinded_file and item.blinded_bytes > 0 for item in items)
    assert all(item.blinded_file.name.startswith("reading/") for item in items)
