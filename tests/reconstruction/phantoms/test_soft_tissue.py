"""Soft-tissue variation: bulges and fat regions change the CT, never the bones."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, generate_case, sample_params
from reconstruction.phantoms.ct import Materials, TissueComposer
from reconstruction.phantoms.sdf import Offset
from reconstruction.phantoms.soft_tissue import (
    MIN_COVER_MM,
    LimbAxis,
    skin_distance,
    vary_soft_tissue,
)

SEED = 6  # its draw at strength 3: 20 mm slimmer, 3 bulges, 5 fat regions
SPACING = (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


def test_the_leg_changes_but_always_covers_the_bones(plain) -> None:
    varied = vary_soft_tissue(plain, 3.0)
    extras = varied.extras["soft_tissue"]
    assert extras["bulges"] > 0 and extras["fat_regions"] > 0 and extras["slimming_mm"] > 5
    assert varied.bones is plain.bones and varied.landmarks is plain.landmarks
    rng = np.random.default_rng(0)
    points = rng.uniform(-150, 150, (40000, 3)) + plain.landmarks["femoral_knee_centre"]
    plain_body, body = plain.body(points), varied.body(points)
    assert np.mean((body < 0) != (plain_body < 0)) > 0.01  # the outline moved
    near_bone = np.min([bone.sdf(points) for bone in plain.bones.values()], axis=0)
    covered = near_bone < MIN_COVER_MM - 0.01
    assert covered.sum() > 1000 and np.all(body[covered] < 0)
    assert np.any(varied.fat_regions(points) < 0)


def test_offset_moves_the_surface_and_prunes_exactly(plain) -> None:
    grown = Offset(plain.body, 5.0)
    points = np.random.default_rng(1).uniform(-100, 100, (2000, 3))
    np.testing.assert_allclose(grown(points), plain.body(points) - 5.0)
    assert np.all(grown.lower_bound(points) <= grown(points) + 1e-9)
    centre = np.zeros(3)
    inside = points[np.linalg.norm(points, axis=1) < 40.0]
    np.testing.assert_allclose(grown.prune(centre, 40.0)(inside), grown(inside), atol=1e-9)


def test_skin_distance_finds_the_skin_along_a_ray(plain) -> None:
    axis = LimbAxis.of(plain)
    origin = axis.point(40.0)
    direction = np.array([0.0, -1.0, 0.0])
    distance = skin_distance(plain.body, origin, direction)
    assert 30.0 < distance < 150.0
    assert abs(plain.body((origin + distance * direction)[None])[0]) < 1e-6


def test_fat_regions_are_fat_only_where_the_muscle_would_be() -> None:
    materials = Materials()
    composer = TissueComposer(materials, fat_thickness=10.0)
    depth = np.array([-30.0, -30.0, -5.0, -1.0, 5.0])  # muscle, muscle, fat, skin, air
    fat = np.array([-1.0, 1.0, -1.0, -1.0, -1.0])
    hu = composer.soft(depth, fat)
    assert hu.tolist() == [materials.fat, materials.muscle, materials.fat, materials.skin, -1000.0]
    np.testing.assert_array_equal(composer.soft(depth), composer.soft(depth, np.ones(5)))


def test_the_ct_changes_but_the_labels_do_not() -> None:
    quiet = {"spacing": SPACING, "with_meshes": False, "noise_k": 0.0}  # compare tissue, not noise
    plain = generate_case(SEED, **quiet)
    first = generate_case(SEED, soft_tissue=3.0, **quiet)
    again = generate_case(SEED, soft_tissue=3.0, **quiet)
    np.testing.assert_array_equal(first.ct.array, again.ct.array)  # seeded
    assert first.metadata["soft_tissue"] == again.metadata["soft_tissue"]
    assert "soft_tissue" not in plain.metadata
    # on the voxels both grids share (the leg's outline sets each grid's x/y extent),
    # the labels are the plain labels and the soft tissue differs
    mine, theirs = _shared_voxels(first.labels, plain.labels)
    np.testing.assert_array_equal(np.asarray(first.labels.array)[mine], plain.labels.array[theirs])
    soft = np.asarray(plain.labels.array)[theirs] == 0
    changed = np.asarray(first.ct.array)[mine][soft] != np.asarray(plain.ct.array)[theirs][soft]
    assert soft.sum() > 10000 and changed.mean() > 0.005


def _shared_voxels(first, second) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index windows of two grids with equal spacing whose voxel centres coincide."""
    offset = np.linalg.solve(first.affine, second.affine)[:3, 3]  # second's origin in first
    assert np.allclose(offset, np.round(offset), atol=1e-6)
    offset = np.round(offset).astype(int)
    lo = np.maximum(0, -offset)
    hi = np.minimum(np.shape(second.array), np.shape(first.array) - offset)
    theirs = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    mine = tuple(slice(a + o, b + o) for a, b, o in zip(lo, hi, offset, strict=True))
    return mine, theirs
