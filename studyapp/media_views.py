"""Stored files are served only to study staff, never by a public static route."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from studyapp.accounts.permissions import role_required
from studyapp.accounts.roles import Role


@role_required(Role.COORDINATOR, Role.ADMIN, Role.STATISTICIAN)
@require_GET
def protected_media(request: HttpRequest, relative_path: str) -> FileResponse:
    root = Path(settings.MEDIA_ROOT).resolve()
    target = (root / relative_path).resolve()
    if root not in target.parents or not target.is_file() or target.name.startswith("."):
        raise Http404("No such file.")
    if target.relative_to(root).parts[0] == ".staging":
        raise Http404("No such file.")
    return FileResponse(open(target, "rb"), as_attachment=target.suffix not in {".png", ".jpg"})
