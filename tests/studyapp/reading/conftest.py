"""A launched reader study with raters, two arms per knee and the three default questions."""

from __future__ import annotations

import pytest

from studyapp.accounts.roles import Role
from studyapp.reading import services
from tests.studyapp.factories import (
    CaseFactory,
    ItemFactory,
    ReconstructionFactory,
    UserFactory,
)


def build_study(
    *, readers: int = 2, knees: int = 3, arms=("ct", "xray"), launch: bool = True, **settings
):
    study = services.create_reader_study(
        CaseFactory().study,
        f"RS {CaseFactory._meta.model.objects.count()}",
        **{"session_size": 4, "washout_days": 0, "seed": 99, **settings},
    )
    for _ in range(knees):
        case = CaseFactory(study=study.study)
        for arm in arms:
            ItemFactory(
                reader_study=study, reconstruction=ReconstructionFactory(case=case, source=arm)
            )
    raters = [UserFactory(roles=[Role.RATER]) for _ in range(readers)]
    services.set_readers(study, raters)
    if launch:
        services.launch(study, actor=None)
    return study, raters


@pytest.fixture
def launched(db):
    return build_study()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Password hashing dominates these tests' set-up; strength is tested elsewhere."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
