"""Optional findings change what they should and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import Findings, generate_case, sample_params

SPACING = (1.5, 1.5, 1.5)


@pytest.fixture(scope="module")
def params():
    return sample_params(17)


@pytest.fixture(scope="module")
def plain(params):
    return generate_case(params, spacing=SPACING, dose=1e10, mesh_spacing=1.0)


def test_parse_rejects_unknown_findings():
    assert Findings.parse("cyst, metal") == Findings(cyst=True, metal=True)
    assert Findings.parse("") == Findings()
    with pytest.raises(ValueError, match="unknown"):
        Findings.parse("tumour")


def test_osteophytes_add_bone_but_keep_the_ground_truth_angles(params, plain):
    case = generate_case(
        params, spacing=SPACING, dose=1e10, findings=Findings(osteophytes=True), mesh_spacing=1.0
    )
    for bone in ("femur", "tibia"):
        added = case.meshes[bone].volume - plain.meshes[bone].volume
        assert 20.0 < added < 600.0, bone  # four small spheres, 2-4 mm radius
        assert case.meshes[bone].is_watertight
    assert case.angles == plain.angles


def test_cyst_is_a_fluid_void_inside_the_tibia(params, plain):
    case = generate_case(
        params, spacing=SPACING, dose=1e10, findings=Findings(cyst=True), with_meshes=False
    )
    np.testing.assert_array_equal(case.labels.array, plain.labels.array)  # still tibia
    changed = case.ct.array.astype(float) - plain.ct.array.astype(float)
    darker = changed < -100
    assert darker.sum() > 5
    assert np.all(case.labels.array[darker] == 2)


def test_metal_plate_is_very_bright_and_streaks(params, plain):
    case = generate_case(
        params, spacing=SPACING, dose=1e10, findings=Findings(metal=True), with_meshes=False
    )
    ct = case.ct.array.astype(float)
    assert ct.max() > 3000
    metal_slices = np.flatnonzero((ct > 3000).any(axis=(0, 1)))
    # slices well away from the metal (partial-volume fringes excluded)
    distance = np.min(np.abs(np.arange(ct.shape[2])[:, None] - metal_slices[None, :]), axis=1)
    other = np.flatnonzero(distance > 2)
    assert len(other) > 10
    diff = np.abs(ct - plain.ct.array.astype(float))
    soft = (plain.labels.array == 0) & (ct < 3000)
    streak = np.mean(diff[:, :, metal_slices][soft[:, :, metal_slices]])
    assert streak > 5.0  # streaks perturb soft tissue in metal slices (0 without metal)
    assert diff[:, :, other].max() <= 1.0  # nothing leaks away from the metal (1 HU: rounding)
