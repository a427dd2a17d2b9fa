"""Writes for accounts: users with roles, API tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from .roles import Role


@transaction.atomic
def create_or_update_user(username: str, password: str, roles: list[Role]) -> AbstractUser:
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_active = True
    user.is_staff = Role.ADMIN in roles
    user.save()
    user.groups.set([Group.objects.get_or_create(name=role.value)[0] for role in roles])
    return user


def api_token_for(user: AbstractUser) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
