"""Shared phantom cases: built once per session, coarse where the check allows it."""

from __future__ import annotations

import pytest

from reconstruction.phantoms import generate_case, sample_params


@pytest.fixture(scope="session")
def limb_cases():
    """Two full-limb mesh-only cases: a sampled one and a left knee at extreme angles."""
    sampled = sample_params(2)
    extreme = sample_params(11).replace(
        side="L",
        ldfa=93.5,
        mpta=82.5,
        jlca=2.5,
        flexion=20.0,
        posterior_slope=12.0,
        axial_rotation=-9.0,
    )
    return [
        generate_case(params, fov="limb", with_ct=False, mesh_spacing=0.9)
        for params in (sampled, extreme)
    ]


@pytest.fixture(scope="session")
def knee_case():
    """One knee-only case with CT, labels and meshes at 1.5 mm (the coarse workhorse)."""
    return generate_case(sample_params(3), fov="knee", spacing=(1.5, 1.5, 1.5), mesh_spacing=1.0)
