"""Phantom cases shared by the segmentation test modules (generated once per session)."""

from __future__ import annotations

import pytest

from reconstruction.phantoms.generator import PhantomCase, generate_case


@pytest.fixture(scope="session")
def right_case() -> PhantomCase:
    return generate_case(103, fov="knee", spacing=(1.0, 1.0, 1.0))
