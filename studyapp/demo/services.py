"""Builds the demo study: users for every role and phantom cases that show each capability.

Idempotent: running it again updates passwords and fills in what is missing.
Refuses to run unless the demo is enabled (never in production).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from studyapp.accounts import services as account_services
from studyapp.accounts.roles import Role
from studyapp.cases.models import Case, Study

logger = logging.getLogger(__name__)

DEMO_STUDY_NAME = "Demo knee study"
RATER_COUNT = 10


@dataclass
class DemoReport:
    password: str
    logins: list[tuple[str, str]] = field(default_factory=list)  # (username, role)
    notes: list[str] = field(default_factory=list)


Step = Callable[[Study, DemoReport], None]
# Later capabilities append their own steps (phantom cases, reconstructions, reading sessions...).
DEMO_STEPS: list[Step] = []


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD", "demo-password")


def build_demo(progress: Callable[[str], None] = logger.info) -> DemoReport:
    if not settings.DEMO_ENABLED:
        raise ImproperlyConfigured(
            "The demo is disabled (DEMO_ENABLED is off, as in production); it creates known passwords."
        )
    report = DemoReport(password=demo_password())
    _create_users(report)
    study, _ = Study.objects.get_or_create(
        name=DEMO_STUDY_NAME,
        defaults={"description": "Phantom knees reconstructed from CT and from two X-rays."},
    )
    for step in DEMO_STEPS:
        progress(f"demo: {step.__doc__.strip().splitlines()[0] if step.__doc__ else step.__name__}")
        step(study, report)
    report.notes.append(f"{Case.objects.filter(study=study).count()} cases in '{study.name}'.")
    return report


def _create_users(report: DemoReport) -> None:
    accounts = [("coordinator", Role.COORDINATOR), ("statistician", Role.STATISTICIAN)]
    accounts += [(f"rater{n}", Role.RATER) for n in range(1, RATER_COUNT + 1)]
    accounts.append(("admin", Role.ADMIN))
    for username, role in accounts:
        user = account_services.create_or_update_user(username, report.password, [role])
        if role is Role.ADMIN:
            user.is_superuser = True
            user.save(update_fields=["is_superuser"])
        account_services.api_token_for(user)
        report.logins.append((username, role.value))
