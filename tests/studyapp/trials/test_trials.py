from __future__ import annotations

from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from studyapp.accounts.roles import Role
from studyapp.trials import services
from studyapp.trials.forms import OutcomeForm
from studyapp.trials.models import Placement
from studyapp.trials.randomisation import schedule
from studyapp.trials.selectors import OUTCOME_COLUMNS, outcomes_frame
from tests.studyapp.factories import CaseFactory, StudyFactory, UserFactory


@pytest.fixture
def trial(db):
    study = StudyFactory()
    trial = services.create_trial(study, "HTO guides")
    for code in ("K1", "K2"):
        services.add_knee(trial, CaseFactory(study=study, code=code))
    for name in ("alice", "bob"):
        services.add_member(trial, UserFactory(username=name, roles=[Role.RATER]), surgeon=True)
    services.randomise(trial)
    return trial


def test_schedule_is_seeded_complete_and_counterbalanced():
    slots = schedule(7, [1, 2], [10, 11, 12, 13])
    assert slots == schedule(7, [2, 1], [13, 12, 11, 10])
    assert len(slots) == 2 * 4 * 2
    for surgeon in (1, 2):
        mine = [s for s in slots if s.surgeon == surgeon]
        assert sorted(s.position for s in mine) == list(range(1, 9))
        assert Counter((s.knee, s.source) for s in mine) == {
            (k, src): 1 for k in (10, 11, 12, 13) for src in ("ct", "xray")
        }
    firsts = Counter(s.source for s in slots if s.period == 1)
    assert firsts["ct"] == firsts["xray"]


def test_randomise_stores_the_order_and_freezes_after_outcomes(trial, coordinator):
    assert trial.placements.count() == 8
    placement = trial.placements.first()
    services.save_outcomes(placement, {"time_s": 30.0}, coordinator, blinded=False)
    with pytest.raises(ValidationError, match="frozen"):
        services.randomise(trial)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("time_s", "-5", "between 0 and 3600 seconds"),
        ("achieved_deg", "400", "between -30 and 30 degrees"),
        ("fit", "7", "between 1 and 5"),
    ],
)
def test_form_rejects_bad_values_and_keeps_the_others(trial, field, value, message):
    data = {"time_s": "42", "fit": "4", "stability": "5", "accuracy": "3", "achieved_deg": "8.5"}
    data[field] = value
    form = OutcomeForm(data=data, instance=trial.placements.first())
    assert not form.is_valid()
    assert message in form.errors[field][0]
    assert len(form.errors) == 1  # the other values are fine and stay in the form


def test_outcome_page_keeps_values_on_error(client, trial, coordinator):
    client.force_login(coordinator)
    placement = trial.placements.first()
    url = reverse("trials:outcome-entry", args=[placement.pk])
    response = client.post(url, {"time_s": "-1", "fit": "4", "comments": "wobbly"})
    body = response.content.decode()
    assert response.status_code == 200 and "between 0 and 3600" in body
    assert "wobbly" in body and 'value="4"' in body or "selected" in body
    placement.refresh_from_db()
    assert placement.entered_at is None


def _csv(rows: list[str]) -> str:
    return "surgeon,knee,source,time_s,fit,stability,accuracy,achieved_deg\n" + "\n".join(rows)


def test_csv_import_is_all_or_nothing_with_row_messages(trial, coordinator):
    bad = _csv(["alice,K1,ct,60,4,4,4,8", "alice,K1,xray,-3,4,4,4,8", "carol,K2,ct,1,1,1,1,1"])
    with pytest.raises(services.ImportRejected) as caught:
        services.import_outcomes_csv(trial, bad.encode(), coordinator)
    errors = caught.value.errors
    assert any(e.startswith("row 3: time_s:") for e in errors)
    assert any(e.startswith("row 4:") and "carol" in e for e in errors)
    assert not Placement.objects.filter(entered_at__isnull=False).exists()
    good = _csv(["alice,K1,ct,60,4,4,4,8", "bob,K2,xray,75.5,3,5,4,7.5"])
    assert services.import_outcomes_csv(trial, good.encode(), coordinator) == 2
    frame = outcomes_frame(trial=trial)
    assert tuple(frame.columns) == OUTCOME_COLUMNS
    assert len(frame) == 2 and set(frame["source"]) == {"ct", "xray"}
    assert frame["time_s"].sum() == pytest.approx(135.5)


def test_assessor_page_hides_the_source_and_unblinded_pages_refuse(client, trial, coordinator):
    services.add_member(trial, coordinator, assessor=True)
    client.force_login(coordinator)
    placement = trial.placements.first()
    body = client.get(reverse("trials:assessor-entry", args=[placement.pk])).content.decode()
    assert placement.printed_bone_id in body
    assert (
        "X-ray" not in body
        and ">CT" not in body
        and "source" not in body.lower().replace("the guide source is not shown", "")
    )
    assert client.get(reverse("trials:trial-detail", args=[trial.pk])).status_code == 403
    response = client.post(
        reverse("trials:assessor-entry", args=[placement.pk]),
        {"achieved_deg": "9", "deviation_deg": "1.2", "deviation_mm": "0.8", "accuracy": "4"},
    )
    assert response.status_code == 302
    placement.refresh_from_db()
    assert placement.achieved_deg == 9 and placement.entered_by == coordinator


def test_assessor_must_be_a_coordinator(trial):
    with pytest.raises(ValidationError, match="coordinator"):
        services.add_member(trial, UserFactory(roles=[Role.RATER]), assessor=True)


def test_api_lists_outcomes_for_statisticians(client, trial, statistician, coordinator):
    services.save_outcomes(trial.placements.first(), {"fit": 5}, coordinator, blinded=False)
    client.force_login(statistician)
    rows = client.get(f"/api/guide-trials/{trial.pk}/outcomes/").json()
    assert len(rows) == 1 and rows[0]["fit"] == 5 and rows[0]["time_s"] is None
