"""Parallel submissions on PostgreSQL: one answer set, one submission, no corruption."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from studyapp.reading import services
from studyapp.reading.models import Answer, AuditEvent, Submission

from .conftest import build_study

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks under real parallelism need PostgreSQL (set DATABASE_URL=postgres://...)",
    ),
]


def _parallel(calls) -> list:
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - collected and checked by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_parallel_retries_with_one_key_store_one_answer_set(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    study, (reader, _) = build_study()
    assignment = services.next_assignment(study, reader.pk)
    raw = {f"q{q.pk}": "3" for q in study.questions.all()}
    results = _parallel(
        [lambda: services.submit(reader, assignment.pk, raw, idempotency_key="same-key-01")] * 8
    )
    assert all(isinstance(r, dict) for r in results), results
    assert all(r == results[0] for r in results)
    assert Answer.objects.filter(assignment=assignment).count() == 3
    assert Submission.objects.filter(assignment=assignment).count() == 1
    assert AuditEvent.objects.filter(action="create").count() == 3


def test_parallel_different_keys_one_wins_the_rest_are_locked(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    study, (reader, _) = build_study()
    assignment = services.next_assignment(study, reader.pk)
    raw = {f"q{q.pk}": "2" for q in study.questions.all()}
    calls = [
        (
            lambda n=n: services.submit(
                reader, assignment.pk, raw, idempotency_key=f"tab-key-{n:04d}"
            )
        )
        for n in range(8)
    ]
    results = _parallel(calls)
    assert sum(isinstance(r, dict) for r in results) == 1
    assert all(isinstance(r, dict | services.AnswerLocked) for r in results), results
    assert Answer.objects.filter(assignment=assignment).count() == 3
    assert Submission.objects.filter(assignment=assignment).count() == 1
