"""Role checks for views (mixin, decorator) and the API (DRF permission)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from rest_framework.permissions import BasePermission

from .roles import Role, has_any_role


class RoleRequiredMixin(AccessMixin):
    """Class-based views declare `allowed_roles`; anonymous users go to log-in, others get 403."""

    allowed_roles: Iterable[Role] = ()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not has_any_role(request.user, self.allowed_roles):
            raise PermissionDenied("Your role may not use this page.")
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


def role_required(*allowed: Role) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect(f"/accounts/login/?next={request.path}")
            if not has_any_role(request.user, allowed):
                raise PermissionDenied("Your role may not use this page.")
            return view(request, *args, **kwargs)

        wrapper.allowed_roles = frozenset(allowed)  # type: ignore[attr-defined]
        return wrapper

    return decorator


def roles_permission(*allowed: Role) -> type[BasePermission]:
    """A DRF permission class admitting authenticated users holding any of `allowed`."""

    class _HasRole(BasePermission):
        message = "Your role may not use this endpoint."
        allowed_roles = frozenset(allowed)

        def has_permission(self, request: Any, view: Any) -> bool:
            return has_any_role(request.user, self.allowed_roles)

    _HasRole.__name__ = "HasRole_" + "_".join(sorted(r.value for r in allowed))
    return _HasRole
