"""The demo command: users for every role, idempotent, never in production."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from studyapp.accounts.roles import Role, roles_of
from studyapp.cases.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_demo(monkeypatch):
    """Phantom-heavy demo steps are exercised by their own tests; here only users and study."""
    from studyapp.demo import services

    monkeypatch.setattr(services, "DEMO_STEPS", [])


def test_demo_creates_every_role_and_is_idempotent(client, capsys, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "a-demo-secret")
    call_command("demo", "--no-serve")
    call_command("demo", "--no-serve")
    out = capsys.readouterr().out
    assert "rater10" in out and "coordinator" in out and "a-demo-secret" in out
    users = get_user_model().objects
    assert users.filter(username__startswith="rater").count() == 10
    assert Study.objects.count() == 1
    assert roles_of(users.get(username="statistician")) == {Role.STATISTICIAN}
    response = client.post("/accounts/login/", {"username": "rater3", "password": "a-demo-secret"})
    assert response.status_code == 302 and response.url == "/"


def test_demo_refuses_when_disabled(settings):
    settings.DEMO_ENABLED = False
    with pytest.raises(ImproperlyConfigured):
        call_command("demo", "--no-serve")
    assert not get_user_model().objects.exists()
