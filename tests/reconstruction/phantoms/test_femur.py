"""Femur variations: a popliteal hollow behind the metaphysis (the notch kept), squarer
condyles, a lower trochlea and a posterior condylar offset."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, generate_case, sample_params
from reconstruction.phantoms.anatomy import distal_condyles, femur_joint_pose, femur_notch
from reconstruction.phantoms.femur import (
    FLOOR_CENTRE_Y_B,
    FLOOR_LOWEST_B,
    MAX_ANTERIOR_REACH_B,
    MAX_CONDYLAR_OFFSET_B,
    MAX_EXTRA_CONDYLE_EXPONENT,
    MAX_HOLLOW_DEPTH_MM,
    build_offset_anatomy,
    draw_condylar_offset,
    posterior_surface_y,
    vary_condyles,
    vary_femur,
    vary_trochlea,
)

SEED = 11  # its draw at strength 3: share 1, hollow 11.2 mm deep at 38 mm


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


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


CONDYLE_LANDMARKS = (
    "medial_distal_condyle",
    "lateral_distal_condyle",
    "medial_posterior_condyle",
    "lateral_posterior_condyle",
)
CONDYLE_SEED = 4  # its draw at strength 3: share 1, exponent 3.35


@pytest.fixture(scope="module")
def squarer():
    plain = build_anatomy(sample_params(CONDYLE_SEED))
    return plain, vary_condyles(plain, 3.0)


def test_squarer_condyles_only_add_bone_low_on_the_femur(squarer) -> None:
    plain, varied = squarer
    drawn = varied.extras["condyles"]
    assert drawn == vary_condyles(plain, 3.0).extras["condyles"]  # seeded
    assert 2.5 < drawn["exponent"] <= 2.0 + MAX_EXTRA_CONDYLE_EXPONENT * drawn["share"]
    for name in ("tibia", "fibula", "patella"):
        assert varied.bones[name] is plain.bones[name]
    b = plain.params.bicondylar_width
    local = np.random.default_rng(2).uniform(
        (-0.7 * b, -0.7 * b, -5.0), (0.7 * b, 0.7 * b, 0.8 * b), (60000, 3)
    )
    before = plain.bones["femur"].local_shape(local)
    after = varied.bones["femur"].local_shape(local)
    assert np.all(after <= before + 1e-9)  # never shrinks
    low = local[:, 2] < 8.0  # the bottom 8 mm of the condyles
    assert np.sum(after[low] < 0) > 1.15 * np.sum(before[low] < 0)  # 15 % more bone there


def test_squarer_condyles_keep_their_landmarks_notch_and_joint_gaps(squarer) -> None:
    plain, varied = squarer
    for name in CONDYLE_LANDMARKS:
        point = plain.landmarks[name][None, :]
        assert abs(plain.bones["femur"].sdf(point)[0]) < 0.05  # on the plain surface
        assert abs(varied.bones["femur"].sdf(point)[0]) < 0.05  # and on the squarer one
    # the notch: where the generator cut it, no bone grows back
    notch = femur_notch(plain.params)
    b = plain.params.bicondylar_width
    local = np.random.default_rng(3).uniform(-0.6 * b, 0.6 * b, (60000, 3))
    deep_in_notch = local[notch(local) < -2.0]
    assert len(deep_in_notch) > 100
    assert np.all(varied.bones["femur"].local_shape(deep_in_notch) > 0)
    assert_joint_gaps_kept(plain, varied)


TROCHLEA_SEED = 61  # its draw at strength 3: share 1, reach 6.0 mm, floor 5.9 mm up


@pytest.fixture(scope="module")
def lower_trochlea():
    plain = build_anatomy(sample_params(TROCHLEA_SEED))
    return plain, vary_trochlea(plain, 3.0)


def _local(anatomy, joint_points) -> np.ndarray:
    """Joint-line frame points (distal end at z = 0, +y posterior) -> the femur's frame."""
    pose = femur_joint_pose(anatomy.params)
    return np.asarray(joint_points, dtype=float) @ pose[:3, :3].T + pose[:3, 3]


def _joint(anatomy, local_points) -> np.ndarray:
    """The femur's frame -> the joint-line frame (the inverse of `_local`)."""
    pose = femur_joint_pose(anatomy.params)
    return (np.asarray(local_points) - pose[:3, 3]) @ pose[:3, :3]


def _front_y(anatomy, x: float, z: float) -> float:
    """The most anterior bone along the joint-frame line (x, y, z), 0.05 mm steps."""
    ys = np.arange(-0.8, 0.2, 0.05 / anatomy.params.bicondylar_width) * (
        anatomy.params.bicondylar_width
    )
    line = _local(anatomy, np.stack([np.full_like(ys, x), ys, np.full_like(ys, z)], axis=1))
    inside = anatomy.bones["femur"].local_shape(line) < 0
    assert inside.any()
    return float(ys[np.argmax(inside)])


def test_the_lower_trochlea_only_adds_bone_in_front(lower_trochlea) -> None:
    plain, varied = lower_trochlea
    drawn = varied.extras["trochlea"]
    assert drawn == vary_trochlea(plain, 3.0).extras["trochlea"]  # seeded
    b = plain.params.bicondylar_width
    assert drawn["share"] == 1.0
    assert 1.0 < drawn["anterior_reach_mm"] <= MAX_ANTERIOR_REACH_B * b
    top, bottom = FLOOR_LOWEST_B
    assert bottom * b <= drawn["floor_lowest_mm"] < top * b - 1.0
    for name in ("tibia", "fibula", "patella"):
        assert varied.bones[name] is plain.bones[name]
    local = np.random.default_rng(2).uniform(
        (-0.7 * b, -0.8 * b, -5.0), (0.7 * b, 0.7 * b, 0.8 * b), (60000, 3)
    )
    before = plain.bones["femur"].local_shape(local)
    after = varied.bones["femur"].local_shape(local)
    assert np.all(after <= before + 1e-9)  # never shrinks
    grown = (after < 0) & (before >= 0)
    joint = _joint(plain, local)
    assert grown.sum() > 200
    assert np.all(joint[grown, 1] < 0.05 * b)  # all of it in front of the condyle centres


def test_the_condyles_reach_forward_and_the_floor_joins_them(lower_trochlea) -> None:
    plain, varied = lower_trochlea
    drawn = varied.extras["trochlea"]
    reach = drawn["anterior_reach_mm"]
    for condyle, _ in distal_condyles(plain.params).parts:
        x = float(condyle.centre[0])
        # 8 mm above the distal end the condyle's front moves forward by at least `reach`
        moved = _front_y(plain, x, 8.0) - _front_y(varied, x, 8.0)
        assert reach - 0.1 < moved < 2 * reach + 0.1
    # on the mid-line, 2 mm above the floor's drawn lowest point, bone joins the condyles
    # where the plain femur has the notch's open front
    b = plain.params.bicondylar_width
    point = _local(plain, [[0.0, FLOOR_CENTRE_Y_B * b, drawn["floor_lowest_mm"] + 2.0]])
    assert plain.bones["femur"].local_shape(point)[0] > 0
    assert varied.bones["femur"].local_shape(point)[0] < 0


def test_the_lower_trochlea_keeps_landmarks_the_back_of_the_notch_and_joint_gaps(
    lower_trochlea,
) -> None:
    plain, varied = lower_trochlea
    for name in CONDYLE_LANDMARKS:
        point = plain.landmarks[name][None, :]
        assert abs(varied.bones["femur"].sdf(point)[0]) < 0.05
    notch = femur_notch(plain.params)
    b = plain.params.bicondylar_width
    local = np.random.default_rng(3).uniform(-0.6 * b, 0.6 * b, (60000, 3))
    joint = _joint(plain, local)
    behind = local[(notch(local) < -2.0) & (joint[:, 1] > 0.0)]
    assert len(behind) > 100
    assert np.all(varied.bones["femur"].local_shape(behind) > 0)  # the notch stays open behind
    assert_joint_gaps_kept(plain, varied)


def assert_joint_gaps_kept(plain, varied) -> None:
    """The varied femur comes no nearer than 1.5 mm to the tibia's and patella's surfaces."""
    for name in ("tibia", "patella"):
        lo, hi = plain.bones[name].patient_bounds()
        points = np.random.default_rng(4).uniform(lo, hi, (300000, 3))
        surface = points[np.abs(plain.bones[name].sdf(points)) < 0.3]
        assert varied.bones["femur"].sdf(surface).min() > 1.5


@pytest.mark.parametrize(
    ("variation", "seed"), [("condyles", CONDYLE_SEED), ("trochlea", TROCHLEA_SEED)]
)
def test_an_adding_femur_variation_grows_only_the_femur_label(variation: str, seed: int) -> None:
    quiet = {"spacing": (2.0, 2.0, 2.0), "with_meshes": False, "noise_k": 0.0}
    plain = generate_case(seed, **quiet)
    varied = generate_case(seed, **{variation: 3.0}, **quiet)
    assert variation in varied.metadata and variation not in plain.metadata
    before, after = np.asarray(plain.labels.array), np.asarray(varied.labels.array)
    for label in (2, 3, 4):
        np.testing.assert_array_equal(before == label, after == label)
    assert np.all(after[before == 1] == 1)  # no femur voxel lost
    assert (after == 1).sum() - (before == 1).sum() > 50  # 50 voxels of 8 mm^3 added


OFFSET_SEED = 9  # its draw at strength 3: share 1, offset 16.7 mm


@pytest.fixture(scope="module")
def offset_pair():
    params = sample_params(OFFSET_SEED)
    return build_anatomy(params), build_offset_anatomy(params, 3.0)


def test_the_condylar_offset_draw_is_seeded_and_checked() -> None:
    params = sample_params(OFFSET_SEED)
    drawn = draw_condylar_offset(params, 3.0)
    assert drawn == draw_condylar_offset(params, 3.0)
    assert drawn["share"] == 1.0
    assert drawn["offset_mm"] == pytest.approx(MAX_CONDYLAR_OFFSET_B * params.bicondylar_width)
    weaker = draw_condylar_offset(params, 0.5)
    assert 0.0 < weaker["share"] <= 0.5
    assert draw_condylar_offset(params, 0.0) is None
    for bad in (-0.5, 3.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 3"):
            draw_condylar_offset(params, bad)


def test_no_condylar_offset_is_the_plain_anatomy(offset_pair) -> None:
    plain, _ = offset_pair
    same = build_offset_anatomy(plain.params, 0.0)
    points = np.random.default_rng(2).uniform(-80, 80, (5000, 3))
    np.testing.assert_array_equal(same.bones["femur"].sdf(points), plain.bones["femur"].sdf(points))
    assert "condylar_offset" not in same.extras


def test_the_offset_moves_the_shaft_and_the_metaphysis_back_forward(offset_pair) -> None:
    plain, varied = offset_pair
    offset = varied.extras["condylar_offset"]["offset_mm"]
    b = plain.params.bicondylar_width
    before, after = plain.bones["femur"].local_shape, varied.bones["femur"].local_shape
    # the distal shaft (1.1 b above the knee centre): its back moves forward by the offset
    # within a few mm (the shaft turns about its top, and the metaphysis's blend reaches it)
    shaft = posterior_surface_y(before, 1.1 * b) - posterior_surface_y(after, 1.1 * b)
    assert offset - 3.0 < shaft < offset + 1.0
    # the metaphysis, 0.7 b up: its back moves forward at least half the offset
    metaphysis = posterior_surface_y(before, 0.7 * b) - posterior_surface_y(after, 0.7 * b)
    assert metaphysis > 0.5 * offset
    # the front of the metaphysis (the trochlea's height) does not move back
    front = np.array([[0.0, -0.3 * b, 0.45 * b]])
    assert after(front)[0] <= before(front)[0] + 1e-6


def test_the_offset_keeps_the_condyles_landmarks_and_the_other_bones(offset_pair) -> None:
    plain, varied = offset_pair
    for name, point in plain.landmarks.items():
        if name not in ("neck_shaft_junction",):
            np.testing.assert_allclose(varied.landmarks[name], point, atol=1e-9)
    b = plain.params.bicondylar_width
    # the condyles' distal and posterior faces (more than 0.2 b either side of the mid-line,
    # behind 0.1 b in front of the centre, below 0.25 b) are the plain femur's: every point
    # more than 0.5 mm from its surface stays on its side of it (the notch's roof between
    # them and the trochlea's foot in front move by under 1 mm with the metaphysis)
    points = np.random.default_rng(3).uniform(
        (0.2 * b, -0.1 * b, -0.3 * b), (0.6 * b, 0.6 * b, 0.25 * b), (40000, 3)
    )
    points[::2, 0] *= -1.0
    was = plain.bones["femur"].local_shape(points)
    clear = np.abs(was) > 0.5
    now = varied.bones["femur"].local_shape(points)
    np.testing.assert_array_equal(now[clear] < 0, was[clear] < 0)
    probe = np.random.default_rng(4).uniform(-150, 150, (20000, 3))
    for name in ("tibia", "fibula", "patella"):
        np.testing.assert_array_equal(varied.bones[name].sdf(probe), plain.bones[name].sdf(probe))


def test_the_offset_case_records_its_draw_and_changes_only_the_femur_label() -> None:
    quiet = {"spacing": (2.0, 2.0, 2.0), "with_meshes": False, "noise_k": 0.0}
    plain = generate_case(OFFSET_SEED, **quiet)
    varied = generate_case(OFFSET_SEED, condylar_offset=3.0, **quiet)
    assert "condylar_offset" in varied.metadata and "condylar_offset" not in plain.metadata
    before, after = np.asarray(plain.labels.array), np.asarray(varied.labels.array)
    assert before.shape == after.shape
    for label in (2, 3, 4):
        np.testing.assert_array_equal(before == label, after == label)
    # bone leaves the back of the metaphysis and joins the front of the shaft
    assert ((before == 1) & (after != 1)).sum() > 200
    assert ((before != 1) & (after == 1)).sum() > 50
