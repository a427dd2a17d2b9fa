"""Log-in, log-out and the per-role home pages."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from studyapp.cases import selectors as case_selectors
from studyapp.jobs import selectors as job_selectors

from .permissions import role_required
from .roles import Role, primary_role


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    http_method_names = ["post", "options"]


HOME_URL_FOR_ROLE = {
    Role.ADMIN: "accounts:coordinator-home",
    Role.COORDINATOR: "accounts:coordinator-home",
    Role.STATISTICIAN: "accounts:statistician-home",
    Role.RATER: "accounts:rater-home",
}


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    role = primary_role(request.user)
    if role is None:
        return render(request, "accounts/no_role.html", status=403)
    return redirect(HOME_URL_FOR_ROLE[role])


@role_required(Role.COORDINATOR, Role.ADMIN)
@require_GET
def coordinator_home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/coordinator_home.html",
        {
            "studies": case_selectors.studies_with_counts(),
            "recent_jobs": job_selectors.recent_jobs(limit=10),
        },
    )


@role_required(Role.STATISTICIAN, Role.ADMIN)
@require_GET
def statistician_home(request: HttpRequest) -> HttpResponse:
    from studyapp.analysis import selectors as analysis_selectors

    return render(
        request,
        "accounts/statistician_home.html",
        {
            "studies": case_selectors.studies_with_counts(),
            "latest_report": analysis_selectors.latest_report(),
            "exports": analysis_selectors.latest_exports(limit=5),
        },
    )


@role_required(Role.RATER)
@require_GET
def rater_home(request: HttpRequest) -> HttpResponse:
    # Raters see only their own blinded work: sessions scoped by the reading selectors.
    from studyapp.reading import selectors as reading_selectors

    sessions = reading_selectors.sessions_of_reader(request.user)
    return render(request, "accounts/rater_home.html", {"sessions": sessions})
