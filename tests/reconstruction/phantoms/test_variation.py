"""Shape and pose variation: exact fields, consistent landmarks, seeded, off by default."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, generate_case, sample_params
from reconstruction.phantoms.anatomy import BONE_LABELS
from reconstruction.phantoms.femur import vary_condyles, vary_femur, vary_trochlea
from reconstruction.phantoms.patella import vary_patella, vary_patella_form, vary_patella_ridge
from reconstruction.phantoms.soft_tissue import vary_soft_tissue
from reconstruction.phantoms.tibia import vary_tibia
from reconstruction.phantoms.variation import (
    GRADIENT_BUDGET,
    LIMB_TILT_DEG,
    TILT_DEG,
    Warped,
    random_warp,
    vary_anatomy,
    vary_tilt,
)

SEED = 5


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


@pytest.fixture(scope="module")
def varied(plain):
    return vary_anatomy(plain, 2.0)


def test_zero_strength_is_the_plain_generator(plain) -> None:
    assert vary_anatomy(plain, 0.0) is plain
    for bad in (-1.0, 3.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 3"):
            vary_anatomy(plain, bad)


def test_warp_gradient_stays_within_its_budget_and_push_forward_inverts_pull_back() -> None:
    warp = random_warp(np.random.default_rng(0), 1.0)
    assert 0.5 * GRADIENT_BUDGET <= warp.lipschitz <= GRADIENT_BUDGET + 1e-12
    points = np.random.default_rng(1).uniform(-100, 100, (500, 3))
    np.testing.assert_allclose(warp.pull_back(warp.push_forward(points)), points, atol=1e-8)
    assert 0.1 < np.abs(warp.displacement(points)).max() <= warp.max_displacement


def test_warped_fields_stay_1_lipschitz_and_prune_exactly(varied) -> None:
    rng = np.random.default_rng(2)
    femur = varied.bones["femur"]
    assert isinstance(femur.local_shape, Warped)
    a = rng.uniform(-60, 60, (4000, 3))
    b = a + rng.normal(size=a.shape) * 3.0
    slack = np.abs(femur.sdf(a) - femur.sdf(b)) - np.linalg.norm(a - b, axis=1)
    assert slack.max() <= 1e-9
    # pruning for a ball gives the same values inside that ball
    centre, radius = np.array([0.0, 0.0, 20.0]), 15.0
    inside = centre + rng.uniform(-1, 1, (500, 3)) * radius / np.sqrt(3)
    pruned = femur.shape.prune(centre, radius)
    np.testing.assert_allclose(pruned(inside), femur.sdf(inside), atol=1e-9)


def test_bones_move_with_the_landmarks(plain, varied) -> None:
    """Points well inside a plain bone end up inside the varied bone at their mapped place."""
    extras = varied.extras["variation"]
    assert 0 < extras["strength"] <= 2.0
    assert np.all(np.abs(extras["tilt_deg"]) <= 2.0 * TILT_DEG)
    rng = np.random.default_rng(3)
    for name in ("femur", "tibia", "patella"):
        bone = plain.bones[name]
        lo, hi = bone.patient_bounds(0.0)
        points = rng.uniform(lo, hi, (20000, 3))
        deep = points[bone.sdf(points) < -3.0][:300]
        assert len(deep) > 50
        mapped = _map(plain, varied, deep)
        assert np.all(varied.bones[name].sdf(mapped) < 0), name
    # the landmarks were mapped the same way
    for name in ("hip_centre", "ankle_centre", "patella_centre"):
        np.testing.assert_allclose(
            varied.landmarks[name], _map(plain, varied, plain.landmarks[name][None])[0], atol=1e-9
        )


def _map(plain, varied, points: np.ndarray) -> np.ndarray:
    """Plain patient mm -> varied patient mm via the recorded tilt and the landmark map."""
    from reconstruction.phantoms.sdf import apply

    tilt = _limb_pose(plain, varied)
    warp = varied.bones["femur"].local_shape.warp
    return apply(tilt, warp.push_forward(points))


def _limb_pose(plain, moved) -> np.ndarray:
    """The rigid turn a variation gave the limb: its limb frame against the plain one's."""
    return moved.transforms["patient_from_limb"] @ np.linalg.inv(
        plain.transforms["patient_from_limb"]
    )


def test_variation_is_seeded_and_changes_the_knee() -> None:
    first = generate_case(SEED, spacing=(2.0, 2.0, 2.0), with_meshes=False, variation=1.0)
    again = generate_case(SEED, spacing=(2.0, 2.0, 2.0), with_meshes=False, variation=1.0)
    base = generate_case(SEED, spacing=(2.0, 2.0, 2.0), with_meshes=False)
    np.testing.assert_array_equal(first.labels.array, again.labels.array)
    np.testing.assert_array_equal(first.ct.array, again.ct.array)
    assert first.metadata["variation"] == again.metadata["variation"]
    assert "variation" not in base.metadata
    moved = np.subtract(first.landmarks["patella_centre"], base.landmarks["patella_centre"])
    assert np.linalg.norm(moved) > 0.5
    assert not np.array_equal(first.labels.array.shape, base.labels.array.shape) or np.any(
        np.asarray(first.labels.array) != np.asarray(base.labels.array)
    )
    # all four bones are still there
    assert set(np.unique(first.labels.array)) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    "vary",
    [
        vary_soft_tissue,
        vary_patella,
        vary_femur,
        vary_tibia,
        vary_condyles,
        vary_trochlea,
        vary_patella_form,
        vary_patella_ridge,
        vary_tilt,
    ],
    ids=[
        "soft_tissue",
        "patella",
        "femur",
        "tibia",
        "condyles",
        "trochlea",
        "patella_form",
        "patella_ridge",
        "tilt",
    ],
)
def test_a_seeded_share_variation_at_zero_is_the_plain_anatomy_and_refuses_bad_strengths(
    vary, plain
) -> None:
    assert vary(plain, 0.0) is plain
    for bad in (-0.5, 3.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 3"):
            vary(plain, bad)


# the bone-removing variations: (function, bone, seed with a real cut at strength 3, where
# the bone's end of interest lies: the distal femur, the proximal tibia)
REMOVING = [(vary_femur, "femur", 11, "distal"), (vary_tibia, "tibia", 10, "proximal")]


@pytest.mark.parametrize(("vary", "bone", "seed", "end"), REMOVING, ids=["femur", "tibia"])
def test_a_removing_variation_only_removes_its_bone_and_keeps_the_rest(
    vary, bone: str, seed: int, end: str
) -> None:
    plain = build_anatomy(sample_params(seed))
    varied = vary(plain, 3.0)
    assert varied.extras[bone] == vary(plain, 3.0).extras[bone]  # seeded
    for name in {"femur", "tibia", "fibula", "patella"} - {bone}:
        assert varied.bones[name] is plain.bones[name]
    for name, point in plain.landmarks.items():
        np.testing.assert_array_equal(varied.landmarks[name], point)
    lo, hi = plain.bones[bone].patient_bounds()
    if end == "distal":
        hi = np.minimum(hi, lo + 150.0)
    else:
        lo = np.maximum(lo, hi - 100.0)
    points = np.random.default_rng(0).uniform(lo, hi, (40000, 3))
    before, after = plain.bones[bone].sdf(points), varied.bones[bone].sdf(points)
    assert np.all(after >= before - 1e-9)  # never grows
    assert np.mean((before < 0) & (after > 0)) > 0.001  # but does lose bone


@pytest.mark.parametrize(("vary", "bone", "seed", "end"), REMOVING, ids=["femur", "tibia"])
def test_a_removing_variation_shrinks_only_its_bone_label(
    vary, bone: str, seed: int, end: str
) -> None:
    quiet = {"spacing": (2.0, 2.0, 2.0), "with_meshes": False, "noise_k": 0.0}
    plain = generate_case(seed, **quiet)
    varied = generate_case(seed, **{bone: 3.0}, **quiet)
    assert bone in varied.metadata and bone not in plain.metadata
    before, after = np.asarray(plain.labels.array), np.asarray(varied.labels.array)
    label = BONE_LABELS[bone]
    for other in set(BONE_LABELS.values()) - {label}:
        np.testing.assert_array_equal(before == other, after == other)
    assert not np.any((after == label) & (before != label))  # no new voxel of the bone
    assert (before == label).sum() - (after == label).sum() > 50  # 50 voxels of 8 mm^3 gone


def test_the_tilt_turns_the_whole_limb_rigidly_about_the_knee(plain) -> None:
    from reconstruction.phantoms.sdf import apply

    turned = vary_tilt(plain, 3.0)
    drawn = turned.extras["tilt"]
    assert turned.extras["tilt"] == vary_tilt(plain, 3.0).extras["tilt"]  # seeded
    angles = np.array([drawn["about_x_deg"], drawn["about_y_deg"]])
    assert 0 < drawn["share"] <= 1 and np.all(np.abs(angles) <= LIMB_TILT_DEG * drawn["share"])
    assert np.abs(angles).max() > 1.0  # this seed's draw turns the limb visibly
    pose = _limb_pose(plain, turned)
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
    knee = plain.landmarks["femoral_knee_centre"]
    np.testing.assert_allclose(turned.landmarks["femoral_knee_centre"], knee, atol=1e-9)
    # the mechanical axis leans by the drawn turn: its angle to z grows from the plain one's
    axis = turned.landmarks["hip_centre"] - turned.landmarks["femoral_knee_centre"]
    plain_axis = plain.landmarks["hip_centre"] - knee
    turn = np.degrees(np.arccos(axis @ plain_axis / np.linalg.norm(axis) ** 2))
    assert turn == pytest.approx(np.degrees(np.arccos(np.cos(np.radians(angles)).prod())), abs=0.01)
    # every bone and the skin are the plain ones moved: same distances at the moved points
    points = np.random.default_rng(4).uniform(-80, 80, (3000, 3)) + knee
    for name, bone in plain.bones.items():
        np.testing.assert_allclose(turned.bones[name].sdf(apply(pose, points)), bone.sdf(points))
    np.testing.assert_allclose(turned.body(apply(pose, points)), plain.body(points), atol=1e-9)
    for name in ("hip_centre", "ankle_centre", "patella_centre"):
        np.testing.assert_allclose(
            turned.landmarks[name], apply(pose, plain.landmarks[name][None])[0], atol=1e-9
        )


def test_a_tilted_phantom_records_its_draw_and_its_labels_turn(plain) -> None:
    from reconstruction.phantoms.sdf import apply

    tilted = generate_case(SEED, spacing=(2.0, 2.0, 2.0), with_meshes=False, tilt=3.0)
    base = generate_case(SEED, spacing=(2.0, 2.0, 2.0), with_meshes=False)
    turned = vary_tilt(plain, 3.0)
    assert tilted.metadata["tilt"] == turned.extras["tilt"]
    assert "tilt" not in base.metadata
    assert set(np.unique(tilted.labels.array)) == {0, 1, 2, 3, 4}
    # the femur's voxels are the plain femur turned: inside it once turned back, not before
    pose = _limb_pose(plain, turned)
    ijk = np.argwhere(np.asarray(tilted.labels.array) == BONE_LABELS["femur"])
    voxels = tilted.labels.index_to_patient(ijk.astype(float))
    femur = plain.bones["femur"]
    turned_back = femur.sdf(apply(np.linalg.inv(pose), voxels))
    assert np.mean(turned_back < 1.0) > 0.99
    assert np.mean(femur.sdf(voxels) < 1.0) < np.mean(turned_back < 1.0) - 0.02
