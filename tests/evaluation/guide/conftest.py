from __future__ import annotations

import pytest

from evaluation.alignment.pipeline import analyse_knee
from reconstruction.phantoms.generator import generate_case


@pytest.fixture(scope="session")
def knee():
    """Knee-only phantom (exact meshes) and its HTO plan (approximate hip/ankle fallback)."""
    case = generate_case(3, fov="knee", with_ct=False, mesh_spacing=1.0)
    m = case.meshes
    result = analyse_knee(m["femur"], m["tibia"], m.get("fibula"), m.get("patella"))
    assert result.plan is not None, result.plan_error
    return m["tibia"], result.plan
