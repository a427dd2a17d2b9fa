"""Patella variation: a squarer, thicker-cortex kneecap kept in contact with the femur."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, generate_case, sample_params
from reconstruction.phantoms.anatomy import PATELLA_GAP, ellipsoid_surface_samples
from reconstruction.phantoms.patella import (
    BASE_CORTEX_MM,
    MAX_DROP_MM,
    MAX_EXTRA_CORTEX_MM,
    MAX_EXTRA_EXPONENT,
    MAX_RISE_MM,
    vary_patella,
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
