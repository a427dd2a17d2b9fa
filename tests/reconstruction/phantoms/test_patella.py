"""Patella variations: a squarer, thicker-cortex kneecap, and other proportions, tilt and
seating, kept in contact with the femur."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, generate_case, sample_params
from reconstruction.phantoms.anatomy import PATELLA_GAP, ellipsoid_surface_samples
from reconstruction.phantoms.patella import (
    BASE_CORTEX_MM,
    FACET_ANGLE_DEG,
    MAX_DROP_MM,
    MAX_EXTRA_CORTEX_MM,
    MAX_EXTRA_EXPONENT,
    MAX_GAP_REDUCTION_MM,
    MAX_RIDGE_SHIFT,
    MAX_RISE_MM,
    MAX_SAGITTAL_TILT_DEG,
    NARROWER,
    TALLER,
    THINNER,
    ridged,
    surface_shell,
    vary_patella,
    vary_patella_form,
    vary_patella_ridge,
)
from reconstruction.phantoms.sdf import Ellipsoid, apply

SEED = 5  # its draw at strength 3: share 1, exponent 5.7, cortex 2.1 mm
SPACING = (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


def test_the_patella_is_squarer_and_touches_the_femur_with_the_cartilage_gap(plain) -> None:
    varied = vary_patella(plain, 3.0)
    drawn = varied.extras["patella"]
    share = drawn["share"]
    assert 2.0 < drawn["exponent"] <= 2.0 + MAX_EXTRA_EXPONENT * share
    assert BASE_CORTEX_MM < drawn["cortex_mm"] <= BASE_CORTEX_MM + MAX_EXTRA_CORTEX_MM * share
    patella = varied.bones["patella"]
    assert patella.local_shape.exponent == drawn["exponent"]
    assert float(patella.cortex(np.zeros(1))[0]) == pytest.approx(drawn["cortex_mm"])
    for name in ("femur", "tibia", "fibula"):
        assert varied.bones[name] is plain.bones[name]
    # like the plain one, the new surface lies the cartilage gap in front of the femur along
    # the patella's thickness axis: 0.5 mm less keeps it clear, 0.5 mm more reaches the femur
    for anatomy in (plain, varied):
        bone = anatomy.bones["patella"]
        local = ellipsoid_surface_samples(
            np.asarray(bone.local_shape.radii), 4000, bone.local_shape.exponent
        )
        surface = apply(bone.patient_from_local, local)
        assert np.abs(bone.sdf(surface)).max() < 1e-6
        towards_femur = bone.patient_from_local[:3, :3] @ np.array([0.0, 1.0, 0.0])
        femur = anatomy.bones["femur"].sdf
        assert femur(surface + (PATELLA_GAP - 0.5) * towards_femur).min() > 0
        assert femur(surface + (PATELLA_GAP + 0.5) * towards_femur).min() < 0
    np.testing.assert_allclose(
        varied.landmarks["patella_centre"], patella.patient_from_local[:3, 3]
    )
    # same seed, same draw
    assert vary_patella(plain, 3.0).extras["patella"] == drawn


def test_the_patella_is_raised_along_its_long_axis(plain) -> None:
    drawn = vary_patella(plain, 3.0).extras["patella"]
    assert -MAX_DROP_MM <= drawn["rise_mm"] <= MAX_RISE_MM and abs(drawn["rise_mm"]) > 1.0
    heights = []
    for seed in range(12):
        anatomy = build_anatomy(sample_params(seed))
        varied = vary_patella(anatomy, 3.0)
        before = anatomy.transforms["patient_from_patella"]
        after = varied.transforms["patient_from_patella"]
        np.testing.assert_allclose(after[:3, :3], before[:3, :3])  # translated only
        up = before[:3, :3] @ np.array([0.0, 0.0, 1.0])
        # the slide back to the femur runs along the thickness axis, across this one
        moved_up = float((after[:3, 3] - before[:3, 3]) @ up)
        assert moved_up == pytest.approx(varied.extras["patella"]["rise_mm"], abs=1e-6)
        heights.append(moved_up)
    assert min(heights) < 0 < 6 < max(heights)  # both lower and clearly higher patellae


def test_the_superellipsoid_is_a_valid_distance_bound() -> None:
    radii = np.array([20.0, 10.0, 18.0])
    plain, square = Ellipsoid((0, 0, 0), radii), Ellipsoid((0, 0, 0), radii, exponent=5.0)
    points = np.random.default_rng(0).uniform(-40, 40, (20000, 3))
    np.testing.assert_allclose(plain(points), Ellipsoid((0, 0, 0), radii, exponent=2.0)(points))
    values = square(points)
    assert np.all(square.lower_bound(points) <= values + 1e-9)
    others = points + np.random.default_rng(1).normal(0, 3, points.shape)
    steps = np.linalg.norm(others - points, axis=1)
    assert np.all(np.abs(square(others) - values) <= steps + 1e-9)  # 1-Lipschitz
    assert np.all(values <= plain(points) + 1e-9)  # it contains the ellipsoid
    corner = radii / 3 ** (1 / 5.0)  # on the surface, outside the ellipsoid
    assert square(corner[None])[0] == pytest.approx(0.0, abs=1e-9)
    assert plain(corner[None])[0] > 1.0
    with pytest.raises(ValueError, match=">= 2"):
        Ellipsoid((0, 0, 0), radii, exponent=1.5)


def test_only_the_patella_label_changes() -> None:
    quiet = {"spacing": SPACING, "with_meshes": False, "noise_k": 0.0}
    plain = generate_case(SEED, **quiet)
    varied = generate_case(SEED, patella=3.0, **quiet)
    assert varied.metadata["patella"]["exponent"] > 2.0 and "patella" not in plain.metadata
    before, after = np.asarray(plain.labels.array), np.asarray(varied.labels.array)
    assert before.shape == after.shape
    for label in (1, 2, 3):
        np.testing.assert_array_equal(before == label, after == label)
    assert (after == 4).sum() > 1.2 * (before == 4).sum()  # fuller: same outer dimensions


def _surface(bone) -> np.ndarray:
    shape = bone.local_shape
    local = ellipsoid_surface_samples(np.asarray(shape.radii), 4000, shape.exponent)
    return apply(bone.patient_from_local, local)


def _lower_pole(bone) -> np.ndarray:
    return apply(bone.patient_from_local, np.array([[0.0, 0.0, -bone.local_shape.radii[2]]]))[0]


@pytest.mark.parametrize("seed", [70, 74, 75])  # shares 1.0, 1.0, 0.88 at strength 1.5
def test_the_patella_form_changes_proportions_tilt_and_seating_within_its_bounds(
    seed: int,
) -> None:
    plain = vary_patella(build_anatomy(sample_params(seed)), 1.5)  # as training runs them
    varied = vary_patella_form(plain, 1.5)
    drawn = varied.extras["patella_form"]
    assert vary_patella_form(plain, 1.5).extras["patella_form"] == drawn  # seeded
    share = drawn["share"]
    assert share > 0.8
    width, thickness, height = drawn["size_factors"]
    assert 1 - share * NARROWER[1] <= width <= 1 - share * NARROWER[0]
    assert 1 - share * THINNER[1] <= thickness <= 1 - share * THINNER[0]
    assert 1 + share * TALLER[0] <= height <= 1 + share * TALLER[1]
    before, after = plain.bones["patella"], varied.bones["patella"]
    np.testing.assert_allclose(
        after.local_shape.radii, np.multiply(before.local_shape.radii, drawn["size_factors"])
    )
    assert after.local_shape.exponent == before.local_shape.exponent  # the squarer shape kept
    assert after.cortex is before.cortex
    lo, hi = after.local_bounds  # the CT and mesh samplers cover the taller patella
    assert np.all(hi >= np.asarray(after.local_shape.radii))
    # turned about its transverse axis by the drawn tilt
    axis_before = before.patient_from_local[:3, :3] @ (0.0, 0.0, 1.0)
    axis_after = after.patient_from_local[:3, :3] @ (0.0, 0.0, 1.0)
    turned = np.degrees(np.arccos(np.clip(axis_before @ axis_after, -1.0, 1.0)))
    assert turned == pytest.approx(abs(drawn["sagittal_tilt_deg"]), abs=1e-6)
    tilt_deg = drawn["sagittal_tilt_deg"]
    assert abs(tilt_deg) <= MAX_SAGITTAL_TILT_DEG * share
    # a negative tilt turns the top towards the femur (the old thickness axis, local +y)
    towards_femur_before = before.patient_from_local[:3, :3] @ (0.0, 1.0, 0.0)
    lean = axis_after @ towards_femur_before
    assert lean == pytest.approx(-np.sin(np.radians(tilt_deg)), abs=1e-9)
    # seated at the drawn gap, which is at most the generator's: 0.5 mm less stays clear
    gap = drawn["gap_mm"]
    assert PATELLA_GAP - MAX_GAP_REDUCTION_MM * share <= gap <= PATELLA_GAP
    surface = _surface(after)
    towards_femur = after.patient_from_local[:3, :3] @ np.array([0.0, 1.0, 0.0])
    femur = varied.bones["femur"].sdf
    assert femur(surface + (gap - 0.5) * towards_femur).min() > 0
    assert femur(surface + (gap + 0.5) * towards_femur).min() < 0
    # the lower pole stays at its height along the old long axis (the slide runs across it)
    rise = (_lower_pole(after) - _lower_pole(before)) @ axis_before
    half_height = after.local_shape.radii[2]
    tilt = np.radians(drawn["sagittal_tilt_deg"])
    assert abs(rise) <= half_height * (1 - np.cos(tilt)) + gap * abs(np.sin(tilt)) + 3.0
    np.testing.assert_allclose(varied.landmarks["patella_centre"], after.patient_from_local[:3, 3])
    for name in ("femur", "tibia", "fibula"):
        assert varied.bones[name] is plain.bones[name]


def test_the_patella_form_spans_taller_and_slimmer_kneecaps_than_the_generator() -> None:
    ratios = []
    for seed in range(70, 94):
        anatomy = vary_patella_form(build_anatomy(sample_params(seed)), 1.5)
        width, _, height = anatomy.bones["patella"].local_shape.radii[[0, 1, 2]]
        ratios.append(height / width)
    plain_ratio = 34.0 / 45.0  # the generator scales one shape: every plain ratio is this
    assert min(ratios) < plain_ratio + 0.02 and max(ratios) > 0.9  # the real knee: 0.93


def test_only_the_patella_label_changes_with_its_form() -> None:
    quiet = {"spacing": SPACING, "with_meshes": False, "noise_k": 0.0}
    plain = generate_case(70, **quiet)
    varied = generate_case(70, patella_form=1.5, **quiet)
    assert "patella_form" in varied.metadata and "patella_form" not in plain.metadata
    before, after = np.asarray(plain.labels.array), np.asarray(varied.labels.array)
    assert before.shape == after.shape
    for label in (1, 2, 3):
        np.testing.assert_array_equal(before == label, after == label)
    assert np.any((before == 4) != (after == 4))


def test_the_ridge_cuts_two_facets_through_the_posterior_pole() -> None:
    patella = Ellipsoid((0.0, 0.0, 0.0), (20.0, 10.0, 18.0), exponent=4.0)
    cut = ridged(patella, (30.0, 15.0), 3.0)
    # the ridge line keeps the pole; each facet falls away at its own angle
    assert cut(np.array([[3.0, 10.0, 0.0]]))[0] == pytest.approx(0.0, abs=0.01)
    for x, angle in ((13.0, 30.0), (-7.0, 15.0)):  # 10 mm either side of the ridge
        on_facet = 10.0 - 10.0 * np.tan(np.radians(angle))
        assert cut(np.array([[x, on_facet - 0.2, 0.0]]))[0] < 0
        assert cut(np.array([[x, on_facet + 0.2, 0.0]]))[0] > 0
        assert patella(np.array([[x, on_facet + 0.2, 0.0]]))[0] < 0  # cut off, not outside
    points = np.random.default_rng(0).uniform(-25, 25, (20000, 3))
    assert np.all(cut(points) >= patella(points) - 1e-9)  # only removes
    flat = ridged(patella, (0.0, 0.0), 0.0)
    np.testing.assert_array_equal(flat(points) <= 0, patella(points) <= 0)
    shell = surface_shell(cut, np.zeros(3), np.array([20.0, 10.0, 18.0]))
    assert 1000 <= len(shell) <= 3500 and np.abs(cut(shell)).max() < 1e-3


@pytest.mark.parametrize("seed", [73, 74])  # ridges well off zero at strength 1.5
def test_the_ridge_variation_sinks_the_patella_into_the_groove_at_its_gap(seed: int) -> None:
    shaped = build_anatomy(sample_params(seed))
    shaped = vary_patella_form(vary_patella(shaped, 1.5), 1.5)  # as training runs them
    varied = vary_patella_ridge(shaped, 1.5)
    drawn = varied.extras["patella_ridge"]
    assert vary_patella_ridge(shaped, 1.5).extras["patella_ridge"] == drawn  # seeded
    share = drawn["share"]
    low, high = FACET_ANGLE_DEG
    assert all(low * share <= a <= high * share for a in drawn["facet_angles_deg"])
    width = 2.0 * shaped.bones["patella"].local_shape.radii[0]
    assert abs(drawn["ridge_shift_mm"]) <= MAX_RIDGE_SHIFT * share * width
    assert drawn["gap_mm"] == shaped.extras["patella_form"]["gap_mm"]  # the gap it had
    before, after = shaped.bones["patella"], varied.bones["patella"]
    np.testing.assert_allclose(after.patient_from_local[:3, :3], before.patient_from_local[:3, :3])
    assert drawn["sunk_mm"] > 1.0  # towards the femur: the ridge reaches into the groove
    radii = np.asarray(before.local_shape.radii)
    surface = apply(after.patient_from_local, surface_shell(after.local_shape, np.zeros(3), radii))
    towards_femur = after.patient_from_local[:3, :3] @ np.array([0.0, 1.0, 0.0])
    femur = varied.bones["femur"].sdf
    assert femur(surface + (drawn["gap_mm"] - 0.5) * towards_femur).min() > 0
    assert femur(surface + (drawn["gap_mm"] + 0.5) * towards_femur).min() < 0
    np.testing.assert_allclose(varied.landmarks["patella_centre"], after.patient_from_local[:3, 3])
    for name in ("femur", "tibia", "fibula"):
        assert varied.bones[name] is shaped.bones[name]
    with pytest.raises(TypeError, match="ellipsoid"):
        vary_patella_ridge(vary_patella_ridge(shaped, 1.5), 1.5)  # it runs last, once


def test_the_ridged_patella_sits_deeper_in_the_measured_groove() -> None:
    from reconstruction.training.sections import patella_seating

    options = {"fov": "knee", "spacing": (1.0, 1.0, 1.0), "with_meshes": False, "noise_k": 0.0}
    family = {"patella": 1.5, "femur": 1.5, "trochlea": 1.0, "patella_form": 1.5}
    plain = generate_case(73, **options, **family)
    ridged_case = generate_case(73, **options, **family, patella_ridge=1.5)
    before, after = (patella_seating(c.labels) for c in (plain, ridged_case))
    assert after["seat_mm"] >= before["seat_mm"] + 2.0
    assert after["volume_cm3"] < before["volume_cm3"]
    for label in (1, 2, 3):
        np.testing.assert_array_equal(
            np.asarray(plain.labels.array) == label, np.asarray(ridged_case.labels.array) == label
        )


def test_the_ridge_and_the_shape_warps_are_refused_together() -> None:
    from reconstruction.phantoms.params import PhantomParameterError

    with pytest.raises(PhantomParameterError, match="ridge"):
        generate_case(73, with_ct=False, with_meshes=False, patella_ridge=1.0, variation=1.0)
