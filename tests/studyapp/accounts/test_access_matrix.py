"""Walks every URL pattern of the site for every role and checks the designed answer."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from studyapp.accounts.roles import Role
from tests.studyapp.factories import CaseFactory, JobFactory

ANON = "anonymous"
ROLES = [ANON, Role.RATER, Role.COORDINATOR, Role.STATISTICIAN, Role.ADMIN]
LOGIN = 302  # anonymous users are sent to the log-in page

# url name -> expected GET status per role (ANON, rater, coordinator, statistician, admin)
EXPECTED: dict[str, tuple[int, int, int, int, int]] = {
    "accounts:login": (200, 302, 302, 302, 302),
    "accounts:logout": (405, 405, 405, 405, 405),  # POST only
    "accounts:home": (302, 302, 302, 302, 302),
    "accounts:coordinator-home": (LOGIN, 403, 200, 403, 200),
    "accounts:statistician-home": (LOGIN, 403, 403, 200, 200),
    "accounts:rater-home": (LOGIN, 200, 403, 403, 403),
    "cases:study-create": (LOGIN, 403, 200, 403, 200),
    "cases:study-detail": (LOGIN, 403, 200, 200, 200),
    "cases:case-create": (LOGIN, 403, 200, 403, 200),
    "cases:case-detail": (LOGIN, 403, 200, 200, 200),
    "cases:upload-ct": (LOGIN, 403, 200, 403, 200),
    "cases:upload-xray": (LOGIN, 403, 200, 403, 200),
    "cases:upload-labels": (LOGIN, 403, 200, 403, 200),
    "cases:upload-meshes": (LOGIN, 403, 200, 403, 200),
    "cases:simulate-xray": (LOGIN, 403, 200, 403, 200),
    "cases:reconstruct-ct": (LOGIN, 403, 405, 403, 405),  # POST only
    "cases:reconstruct-xray": (LOGIN, 403, 405, 403, 405),  # POST only
    "jobs:job-list": (LOGIN, 403, 200, 403, 200),
    "jobs:job-detail": (LOGIN, 403, 200, 403, 200),
    "jobs:selfcheck": (LOGIN, 403, 405, 403, 405),  # POST only
    "protected-media": (LOGIN, 403, 200, 200, 200),
    # API: 401 for the unauthenticated, role checks for the rest.
    "api-root": (401, 200, 200, 200, 200),
    "study-list": (401, 403, 200, 200, 200),
    "study-detail": (401, 403, 200, 200, 200),
    "case-list": (401, 403, 200, 200, 200),
    "case-detail": (401, 403, 200, 200, 200),
    "case-upload-ct": (401, 403, 405, 403, 405),
    "case-upload-xray": (401, 403, 405, 403, 405),
    "case-upload-labels": (401, 403, 405, 403, 405),
    "case-simulate-xray": (401, 403, 405, 403, 405),
    "case-reconstruct-ct": (401, 403, 405, 403, 405),
    "case-reconstruct-xray": (401, 403, 405, 403, 405),
    "reconstruction-list": (401, 403, 200, 200, 200),
    "reconstruction-detail": (401, 403, 404, 404, 404),  # none exists with that id
    "job-list": (401, 403, 200, 403, 200),
    "job-detail": (401, 403, 200, 403, 200),
    "api-token": (405, 405, 405, 405, 405),  # POST only
    "api-schema": (401, 200, 200, 200, 200),
    "api-docs": (401, 200, 200, 200, 200),
    # Reading: a rater reaches only their own open assignments (404 otherwise, as for these
    # objects owned by another rater); coordinators design, monitor and unblind.
    "reading:next": (LOGIN, 404, 403, 403, 403),
    "reading:read": (LOGIN, 404, 403, 403, 403),
    "reading:model": (LOGIN, 404, 403, 403, 403),
    "reading:study-list": (LOGIN, 403, 200, 403, 200),
    "reading:study-create": (LOGIN, 403, 200, 403, 200),
    "reading:study-design": (LOGIN, 403, 200, 403, 200),
    "reading:question-delete": (LOGIN, 403, 405, 403, 405),  # POST only
    "reading:progress": (LOGIN, 403, 200, 403, 200),
    "reading:reset-reader": (LOGIN, 403, 405, 403, 405),  # POST only
    "reading:audit": (LOGIN, 403, 200, 403, 200),
    "reading:unblinding-key": (LOGIN, 403, 200, 403, 200),
    "reading-assignment-list": (401, 200, 403, 403, 403),
    "reading-assignment-detail": (401, 404, 403, 403, 403),  # another rater's assignment
    "reading-assignment-submit": (401, 405, 403, 403, 403),  # POST only
    "reader-study-list": (401, 403, 200, 200, 200),
    "reader-study-detail": (401, 403, 200, 200, 200),
    "reader-study-progress": (401, 403, 200, 200, 200),
    # Analysis: exports and reports de-blind, so never for raters (ids below do not exist).
    "analysis:dashboard": (LOGIN, 403, 200, 200, 200),
    "analysis:export-create": (LOGIN, 403, 405, 405, 405),  # POST only
    "analysis:export-download": (LOGIN, 403, 404, 404, 404),
    "analysis:report-create": (LOGIN, 403, 405, 405, 405),  # POST only
    "analysis:report-html": (LOGIN, 403, 404, 404, 404),
    "analysis:report-pdf": (LOGIN, 403, 404, 404, 404),
    "analysis-export-list": (401, 403, 200, 200, 200),
    "analysis-export-detail": (401, 403, 404, 404, 404),
    "analysis-export-download": (401, 403, 404, 404, 404),
    "analysis-report-list": (401, 403, 200, 200, 200),
    "analysis-report-detail": (401, 403, 404, 404, 404),
    "analysis-report-html": (401, 403, 404, 404, 404),
    "analysis-report-pdf": (401, 403, 404, 404, 404),
    "analysis-answer-list": (401, 403, 400, 400, 400),  # ?reader_study= is required
    "analysis-assignment-list": (401, 403, 400, 400, 400),
    "analysis-surface-metric-list": (401, 403, 400, 400, 400),
    "analysis-alignment-angle-list": (401, 403, 400, 400, 400),
    "analysis-guide-trial-list": (401, 403, 400, 400, 400),
    "analysis-codebook-list": (401, 403, 200, 200, 200),
    # Guide trials: coordinators run them (ids below do not exist); the API is de-blinded data.
    "trials:trial-list": (LOGIN, 403, 200, 403, 200),
    "trials:trial-create": (LOGIN, 403, 200, 403, 200),
    "trials:trial-detail": (LOGIN, 403, 404, 403, 404),
    "trials:import-csv": (LOGIN, 403, 404, 403, 404),
    "trials:run-virtual": (LOGIN, 403, 405, 403, 405),  # POST only
    "trials:outcome-entry": (LOGIN, 403, 404, 403, 404),
    "trials:assessor-list": (LOGIN, 403, 200, 403, 200),
    "trials:assessor-entry": (LOGIN, 403, 404, 403, 404),
    "trials:case-guides": (LOGIN, 403, 200, 403, 200),
    "trials:guide-download": (LOGIN, 403, 404, 403, 404),
    "guide-trial-list": (401, 403, 200, 200, 200),
    "guide-trial-detail": (401, 403, 404, 404, 404),
    "guide-trial-outcomes": (401, 403, 404, 404, 404),
}
IGNORED_PREFIXES = ("admin:",)  # Django admin has its own staff checks, tested by Django
IGNORED_NAMES = {"api-root"}  # checked separately below: only format suffix variants differ


def _named_patterns(resolver: URLResolver | None = None, prefix: str = "") -> dict[str, URLPattern]:
    found: dict[str, URLPattern] = {}
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            found.update(_named_patterns(entry, namespace))
        elif entry.name:
            found.setdefault(f"{prefix}{entry.name}", entry)  # routers add format variants later
    return found


def test_every_named_url_declares_its_access() -> None:
    names = {
        name
        for name in _named_patterns()
        if not name.startswith(IGNORED_PREFIXES) and not name.endswith("-format")
    }
    undeclared = names - set(EXPECTED)
    assert not undeclared, f"declare the access of: {sorted(undeclared)}"


@pytest.fixture
def objects(db, isolated_media):
    case = CaseFactory()
    job = JobFactory(case=case)
    (isolated_media / "ct-previews").mkdir()
    (isolated_media / "ct-previews" / "p.png").write_bytes(b"\x89PNG\r\n")
    reading = _launched_reader_study(case)
    return {
        **reading,
        "study_id": case.study_id,
        "case_id": case.pk,
        "job_id": job.pk,
        "pk": case.pk,
        "relative_path": "ct-previews/p.png",
        "pair_id": 999999,
        "export_id": 999999,
        "report_id": 999999,
        "trial_id": 999999,
        "placement_id": 999999,
        "guide_id": 999999,
        "filename": "guide.stl",
    }


def _launched_reader_study(case) -> dict:
    from studyapp.reading import services as reading_services
    from tests.studyapp.factories import ItemFactory, ReaderStudyFactory, UserFactory

    reader_study = ReaderStudyFactory(study=case.study)
    question = reading_services.add_question(reader_study, "Overall shape")
    ItemFactory(reader_study=reader_study)
    reader = UserFactory(roles=[Role.RATER])
    reading_services.set_readers(reader_study, [reader])
    reading_services.launch(reader_study, actor=None)
    return {
        "reader_study_id": reader_study.pk,
        "assignment_id": reader_study.assignments.get().pk,
        "reader_id": reader.pk,
        "question_id": question.pk,
    }


def _url_for(name: str, objects: dict) -> str:
    from django.urls import reverse

    pattern = _named_patterns()[name]
    wanted = set(pattern.pattern.regex.groupindex)
    kwargs = {key: objects[key] for key in wanted}
    if name in {"study-detail"}:
        kwargs["pk"] = objects["study_id"]
    if name in {"job-detail"}:
        kwargs["pk"] = objects["job_id"]
    if name == "reconstruction-detail":
        kwargs["pk"] = 999999
    if name.startswith("reading-assignment-") and name != "reading-assignment-list":
        kwargs["pk"] = objects["assignment_id"]
    if name.startswith("reader-study-") and name != "reader-study-list":
        kwargs["pk"] = objects["reader_study_id"]
    return reverse(name, kwargs=kwargs)


@pytest.mark.parametrize("role_index, role", list(enumerate(ROLES)), ids=[str(r) for r in ROLES])
def test_each_url_answers_each_role_as_designed(client, user_with_role, objects, role_index, role):
    if role != ANON:
        client.force_login(user_with_role(role))
    mismatches = []
    for name, expected in EXPECTED.items():
        url = _url_for(name, objects)
        response = client.get(url)
        if response.status_code != expected[role_index]:
            mismatches.append(
                f"{name} {url}: got {response.status_code}, want {expected[role_index]}"
            )
    assert not mismatches, "\n".join(mismatches)


def test_user_without_role_gets_no_page(client, user_with_role, objects):
    client.force_login(user_with_role(None))
    assert client.get("/").status_code == 403
    assert client.get(_url_for("cases:case-detail", objects)).status_code == 403
    assert client.get("/api/cases/").status_code == 403


def test_rater_pages_never_name_cases(client, rater, objects):
    client.force_login(rater)
    body = client.get("/rater/").content.decode()
    from studyapp.cases.models import Case

    for code in Case.objects.values_list("code", flat=True):
        assert code not in body
