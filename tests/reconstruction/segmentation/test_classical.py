"""Classical segmentation against held-out phantoms: accuracy, sides, orientation, spacing.

The phantom seeds here (100-111) were never used while developing the method.
"""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms.generator import PhantomCase, generate_case
from reconstruction.segment_ct import reconstruct_from_ct
from reconstruction.segmentation import BONE_LABELS, segment
from reconstruction.volume import Volume
from tests.reconstruction.segmentation.helpers import assd, dice, rotate_content, rotation_about

BONES = tuple(BONE_LABELS)


@pytest.fixture(scope="module")
def fine_case() -> PhantomCase:
    return generate_case(101, fov="knee", spacing=(0.7, 0.7, 0.7))


@pytest.fixture(scope="module")
def left_case() -> PhantomCase:
    return generate_case(102, fov="knee", spacing=(1.0, 1.0, 1.0))


def test_fine_phantom_dice_and_assd_per_bone(fine_case: PhantomCase) -> None:
    meshes, summary = reconstruct_from_ct(fine_case.ct)
    segmentation = segment(fine_case.ct)
    assert set(meshes) == set(BONES)
    assert summary["side"] == fine_case.params.side
    for name, label in BONE_LABELS.items():
        truth = fine_case.labels.array == label
        found = segmentation.labels.array == label
        assert dice(found, truth) >= 0.97, name
        assert assd(fine_case.meshes[name], meshes[name]) <= 0.3, name
        assert summary["bones"][name]["watertight"]
        assert summary["bones"][name]["mesh_volume_mm3"] > 0


@pytest.mark.parametrize("case_name", ["left_case", "right_case"])
def test_left_and_right_knees_are_named_and_sided(case_name: str, request) -> None:
    case: PhantomCase = request.getfixturevalue(case_name)
    segmentation = segment(case.ct)
    assert segmentation.side == case.params.side
    for name, label in BONE_LABELS.items():
        truth = case.labels.array == label
        assert dice(segmentation.labels.array == label, truth) >= 0.95, name


def test_rotated_and_tilted_knee(left_case: PhantomCase) -> None:
    """Content rotated 20 degrees about the limb axis and tilted 10 degrees: the anatomy is
    oblique to the voxel grid, resampled trilinearly (CT) and by nearest neighbour (truth)."""
    ct, labels = left_case.ct, left_case.labels
    rotation = rotation_about([1, 0, 0], 10.0) @ rotation_about([0, 0, 1], 20.0)
    centre = ct.index_to_patient((np.asarray(ct.shape) - 1) / 2)
    hu = rotate_content(ct.array.astype(np.float32), ct.affine, rotation, centre, order=1)
    truth = rotate_content(labels.array, labels.affine, rotation, centre, order=0)
    segmentation = segment(Volume(hu, ct.affine, "CT"))
    assert segmentation.side == left_case.params.side
    limb = np.asarray(segmentation.limb_axis)
    assert abs(limb @ rotation @ [0, 0, 1]) > 0.9  # roughly the rotated head direction
    for name, label in BONE_LABELS.items():
        assert dice(segmentation.labels.array == label, truth == label) >= 0.93, name


def test_oblique_mirrored_patient_frame_gives_the_other_side(right_case: PhantomCase) -> None:
    """Same voxels, patient frame rotated and mirrored (x -> -x): names are unchanged and
    the knee becomes a left knee, so identification does not lean on the scanner axes."""
    frame = np.eye(4)
    frame[:3, :3] = np.diag([-1.0, 1.0, 1.0]) @ rotation_about([1, 1, 0], 35.0)
    mirrored = Volume(right_case.ct.array, frame @ right_case.ct.affine, "CT")
    segmentation = segment(mirrored)
    assert segmentation.side == "L"
    for name, label in BONE_LABELS.items():
        truth = right_case.labels.array == label
        assert dice(segmentation.labels.array == label, truth) >= 0.95, name


def test_anisotropic_spacing() -> None:
    case = generate_case(104, fov="knee", spacing=(0.6, 0.8, 1.5))
    meshes, summary = reconstruct_from_ct(case.ct)
    segmentation = segment(case.ct)
    assert summary["side"] == case.params.side
    for name, label in BONE_LABELS.items():
        truth = case.labels.array == label
        assert dice(segmentation.labels.array == label, truth) >= 0.95, name
        assert assd(case.meshes[name], meshes[name]) <= 0.5, name
