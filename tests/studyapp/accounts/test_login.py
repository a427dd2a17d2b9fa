"""Log-in, landing pages, rate limiting, CSRF and API tokens."""

from __future__ import annotations

import pytest
from django.test import Client

from studyapp.accounts.roles import Role
from tests.studyapp.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "role, landing",
    [
        (Role.RATER, "/rater/"),
        (Role.COORDINATOR, "/coordinator/"),
        (Role.STATISTICIAN, "/statistician/"),
        (Role.ADMIN, "/coordinator/"),
    ],
)
def test_each_role_lands_on_its_home(client, user_with_role, role, landing):
    user = user_with_role(role)
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": TEST_PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == landing
    assert response.status_code == 200


def test_passwords_are_hashed(user_with_role):
    user = user_with_role(Role.RATER)
    assert user.password.startswith(("pbkdf2_sha256$", "argon2", "bcrypt"))
    assert TEST_PASSWORD not in user.password


def test_repeated_failures_lock_the_account_for_a_while(client, user_with_role, settings):
    user = user_with_role(Role.RATER)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
        assert response.status_code in (200, 429)
    locked = client.post("/accounts/login/", {"username": user.username, "password": TEST_PASSWORD})
    assert locked.status_code == 429
    assert b"Too many failed" in locked.content
    assert "_auth_user_id" not in client.session


def test_forms_require_csrf_tokens(user_with_role):
    strict = Client(enforce_csrf_checks=True)
    user = user_with_role(Role.COORDINATOR)
    response = strict.post(
        "/accounts/login/", {"username": user.username, "password": TEST_PASSWORD}
    )
    assert response.status_code == 403
    strict.force_login(user)
    assert strict.post("/studies/new/", {"name": "x"}).status_code == 403


def test_logout_needs_post_and_ends_the_session(client, user_with_role):
    client.force_login(user_with_role(Role.RATER))
    assert client.get("/accounts/logout/").status_code == 405
    client.post("/accounts/logout/")
    assert client.get("/rater/").status_code == 302


def test_api_token_authenticates(client, user_with_role):
    user = user_with_role(Role.COORDINATOR)
    response = client.post("/api/token/", {"username": user.username, "password": TEST_PASSWORD})
    token = response.json()["token"]
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/cases/").status_code == 200
    assert Client(HTTP_AUTHORIZATION="Token wrong").get("/api/cases/").status_code == 401
