from django.http import HttpRequest

from .roles import primary_role, roles_of


def roles(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {
        "user_roles": sorted(r.value for r in roles_of(user)),
        "user_primary_role": (primary_role(user) or "").__str__(),
    }
