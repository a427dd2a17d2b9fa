"""The four roles of the platform and the one place that answers "may this user do X".

Roles are Django groups. Admin is the Django superuser or a member of the
"admin" group; admins may do everything a coordinator may.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(StrEnum):
    RATER = "rater"
    COORDINATOR = "coordinator"
    STATISTICIAN = "statistician"
    ADMIN = "admin"


ALL_ROLES: tuple[Role, ...] = tuple(Role)
# Who may manage cases, reconstructions and jobs.
STUDY_STAFF: frozenset[Role] = frozenset({Role.COORDINATOR, Role.ADMIN})
# Who may read de-blinded data (exports, analyses).
DATA_READERS: frozenset[Role] = frozenset({Role.COORDINATOR, Role.STATISTICIAN, Role.ADMIN})


def roles_of(user: AbstractBaseUser | AnonymousUser | None) -> frozenset[Role]:
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_cached_roles", None)
    if cached is not None:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    roles = {role for role in Role if role.value in names}
    if user.is_superuser:
        roles.add(Role.ADMIN)
    result = frozenset(roles)
    user._cached_roles = result  # type: ignore[attr-defined]
    return result


def has_any_role(user: AbstractBaseUser | AnonymousUser | None, allowed: Iterable[Role]) -> bool:
    return bool(roles_of(user) & frozenset(allowed))


def primary_role(user: AbstractBaseUser | AnonymousUser | None) -> Role | None:
    """The role whose home page a user lands on (most privileged first)."""
    roles = roles_of(user)
    for role in (Role.ADMIN, Role.COORDINATOR, Role.STATISTICIAN, Role.RATER):
        if role in roles:
            return role
    return None
