"""Femur variation: a popliteal hollow behind the metaphysis, the notch kept."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, generate_case, sample_params
from reconstruction.phantoms.femur import (
    MAX_HOLLOW_DEPTH_MM,
    posterior_surface_y,
    vary_femur,
)

SEED = 11  # its draw at strength 3: share 1, hollow 11.2 mm deep at 38 mm
SPACING = (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


def test_zero_strength_is_the_plain_anatomy_and_bad_strengths_are_refused(plain) -> None:
    assert vary_femur(plain, 0.0) is plain
    for bad in (-0.5, 3.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 3"):
            vary_femur(plain, bad)


def test_bone_is_only_removed_and_the_rest_of_the_knee_is_kept(plain) -> None:
    varied = vary_femur(plain, 3.0)
    assert varied.extras["femur"] == vary_femur(plain, 3.0).extras["femur"]  # seeded
    for name in ("tibia", "fibula", "patella"):
        assert varied.bones[name] is plain.bones[name]
    for name, point in plain.landmarks.items():
        np.testing.assert_array_equal(varied.landmarks[name], point)
    lo, hi = plain.bones["femur"].patient_bounds()
    hi = np.minimum(hi, lo + 150.0)  # the distal femur
    points = np.random.default_rng(0).uniform(lo, hi, (40000, 3))
    before, after = plain.bones["femur"].sdf(points), varied.bones["femur"].sdf(points)
    assert np.all(after >= before - 1e-9)  # never grows
    assert np.mean((before < 0) & (after > 0)) > 0.001  # but does lose bone


def test_the_hollow_reaches_its_depth_into_the_posterior_midline(plain) -> None:
    varied = vary_femur(plain, 3.0)
    drawn = varied.extras["femur"]
    assert 1.0 < drawn["hollow_depth_mm"] <= MAX_HOLLOW_DEPTH_MM * drawn["share"]
    height = drawn["hollow_height_mm"]
    before = posterior_surface_y(plain.bones["femur"].local_shape, height)
    after = posterior_surface_y(varied.bones["femur"].local_shape, height)
    # the cut is at least as deep as drawn, and no deeper than the drawn depth plus the
    # blend's reach
    assert drawn["hollow_depth_mm"] - 0.05 <= before - after <= drawn["hollow_depth_mm"] + 3.0
    # 32 mm above or below the hollow's centre, beyond its reach and blend, nothing moved
    for outside in (height - 32.0, height + 32.0):
        if outside < 20.0:
            continue  # the mid-line there runs through the notch: no bone to meet
        assert posterior_surface_y(varied.bones["femur"].local_shape, outside) == pytest.approx(
            posterior_surface_y(plain.bones["femur"].local_shape, outside)
        )


def test_the_notch_and_condyles_are_kept(plain) -> None:
    # version 1 also enlarged the notch, and its student shrank real condyles: below the
    # hollow's reach and blend (under 0.1 bicondylar widths above the knee centre) the femur is as it was
    varied = vary_femur(plain, 3.0)
    b = plain.params.bicondylar_width
    points = np.random.default_rng(1).uniform(
        (-0.6 * b, -0.6 * b, -0.5 * b), (0.6 * b, 0.6 * b, 0.1 * b), (20000, 3)
    )
    np.testing.assert_array_equal(
        varied.bones["femur"].local_shape(points), plain.bones["femur"].local_shape(points)
    )


def test_only_the_femur_label_shrinks() -> None:
    quiet = {"spacing": SPACING, "with_meshes": False, "noise_k": 0.0}
    plain = generate_case(SEED, **quiet)
    varied = generate_case(SEED, femur=3.0, **quiet)
    assert "femur" in varied.metadata and "femur" not in plain.metadata
    before, after = np.asarray(plain.labels.array), np.asarray(varied.labels.array)
    for label in (2, 3, 4):
        np.testing.assert_array_equal(before == label, after == label)
    assert not np.any((after == 1) & (before != 1))  # no new femur voxel
    assert (before == 1).sum() - (after == 1).sum() > 50  # 50 voxels of 8 mm^3 removed
