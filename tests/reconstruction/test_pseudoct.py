"""Label map -> pseudo-CT tissue values, and the shared real knee end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reconstruction.drr.__main__ import main as drr_main
from reconstruction.drr.geometry import project_points
from reconstruction.errors import ModalityError
from reconstruction.io import read_volume, read_xray_pair, write_nifti
from reconstruction.pseudoct import (
    CANONICAL_BONE_LABELS,
    PseudoCTParams,
    canonical_labels_from_real_knee,
    extend_label_field,
    pseudo_ct_from_labels,
    real_knee_labels_path,
    sample_pseudo_ct_params,
)
from reconstruction.volume import Volume

REAL_KNEE = real_knee_labels_path()
SPACING_MM = 0.5


@pytest.fixture
def ball_labels() -> Volume:
    """A 10 mm-radius 'femur' ball (label 5) capped by cartilage (label 1), 0.5 mm voxels."""
    n = 96
    grid = (np.indices((n, n, n)) - (n - 1) / 2.0) * SPACING_MM
    radius = np.sqrt(np.sum(grid**2, axis=0))
    labels = np.zeros((n, n, n), np.uint8)
    labels[(radius > 10.0) & (radius <= 12.0) & (grid[2] > 0)] = 1
    labels[radius <= 10.0] = 5
    affine = np.diag([SPACING_MM] * 3 + [1.0])
    return Volume(labels, affine, modality="LABELS")


def test_tissue_values(ball_labels: Volume) -> None:
    params = PseudoCTParams(
        partial_volume_sigma_mm=0.0, noise_hu=0.0, body_margin_mm=10.0, fat_thickness_mm=4.0
    )
    ct = pseudo_ct_from_labels(ball_labels, params=params).array
    c = 47  # near the centre
    assert ct[c, c, c] == params.cancellous_hu
    # along +x from the centre: cancellous, then ~1.5 mm of cortex at the surface (r = 10 mm)
    profile = ct[c:, c, c]
    cortex = np.flatnonzero(profile == params.cortical_hu) * SPACING_MM
    assert cortex.min() == pytest.approx(8.5, abs=0.6) and cortex.max() == pytest.approx(
        10.0, abs=0.6
    )
    assert ct[c, c, c + 22] == params.cartilage_hu  # +z cap, r = 11 mm
    # The body contour is computed on a ~2 mm grid: probe well inside each layer.
    assert ct[c + 25, c, c] == params.soft_tissue_hu  # 2.75 mm outside the bone
    assert ct[c + 36, c, c] == params.fat_hu  # 8.25 mm outside: outer 4 mm of the 10 mm body
    assert ct[0, 0, 0] == params.air_hu


def test_noise_partial_volume_and_seed(ball_labels: Volume) -> None:
    first = pseudo_ct_from_labels(ball_labels, seed=1)
    again = pseudo_ct_from_labels(ball_labels, seed=1)
    other = pseudo_ct_from_labels(ball_labels, seed=2)
    assert np.array_equal(first.array, again.array) and not np.array_equal(first.array, other.array)
    assert first.modality == "PSEUDO_CT" and first.array.dtype == np.float32
    cancellous = first.array[40:56, 40:56, 40:56]  # uniform 300 HU before noise
    assert np.std(cancellous) == pytest.approx(15.0, rel=0.1)  # default noise level
    assert np.mean(cancellous) == pytest.approx(300.0, abs=2.0)
    # blurred edges: values strictly between cancellous and cortical exist
    assert np.any((first.array > 500) & (first.array < 1100))


def test_block_average_keeps_the_physical_extent(ball_labels: Volume) -> None:
    ct = pseudo_ct_from_labels(ball_labels, params=PseudoCTParams(block=(2, 2, 2), noise_hu=0.0))
    assert ct.shape == (48, 48, 48) and ct.spacing == pytest.approx((1.0, 1.0, 1.0))
    # first coarse voxel centre = centre of the first 2x2x2 block of fine voxels
    assert np.allclose(ct.origin, [0.25, 0.25, 0.25])


def test_canonical_labels(ball_labels: Volume) -> None:
    array = ball_labels.array.copy()
    array[:3, :3, :3] = 6
    array[-3:, -3:, -3:] = 8
    array[:3, -3:, :3] = 7
    canonical = canonical_labels_from_real_knee(
        Volume(array, ball_labels.affine, modality="LABELS")
    )
    assert canonical.array[48, 48, 48] == CANONICAL_BONE_LABELS["femur"]
    assert canonical.array[0, 0, 0] == CANONICAL_BONE_LABELS["tibia"]
    assert canonical.array[-1, -1, -1] == CANONICAL_BONE_LABELS["fibula"]
    assert canonical.array[0, -1, 0] == CANONICAL_BONE_LABELS["patella"]
    assert set(np.unique(canonical.array)) == {0, 1, 2, 3, 4}  # cartilage (1) dropped to 0


def test_label_map_without_bones_is_refused() -> None:
    empty = Volume(np.zeros((8, 8, 8), np.uint8), np.eye(4), modality="LABELS")
    with pytest.raises(ModalityError, match="none of the bone labels"):
        pseudo_ct_from_labels(empty)


@pytest.mark.skipif(not REAL_KNEE.exists(), reason=f"shared real knee not found at {REAL_KNEE}")
def test_real_knee_to_pseudo_ct_to_drr_pair(tmp_path: Path) -> None:
    labels = read_volume(REAL_KNEE)
    ct = pseudo_ct_from_labels(labels, seed=0)
    canonical = canonical_labels_from_real_knee(labels)
    assert ct.shape == labels.shape and np.allclose(ct.affine, labels.affine)
    assert -1100 < ct.value_range[0] and ct.value_range[1] < 1600
    write_nifti(ct, tmp_path / "pseudo_ct.nii")
    assert (
        drr_main(
            [
                "--ct",
                str(tmp_path / "pseudo_ct.nii"),
                "--separation",
                "60",
                "--size",
                "128",
                "--out",
                str(tmp_path / "drr"),
            ]
        )
        == 0
    )
    pair = read_xray_pair(tmp_path / "drr")
    bone_points = canonical.index_to_patient(np.argwhere(canonical.array > 0)[::20])
    body_points = canonical.index_to_patient(np.argwhere(ct.array > -500)[::200])
    for view in pair.views:
        # Bones, projected with the matrices, land on the attenuating part of the DRR.
        bone = _footprint(view.projection_matrix, bone_points, view.image.shape)
        body = _footprint(view.projection_matrix, body_points, view.image.shape) & ~bone
        assert bone.sum() > 500 and body.sum() > 500
        assert view.image[bone].mean() > view.image[body].mean() + 0.5


def _footprint(matrix: np.ndarray, points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    u, v = np.round(project_points(matrix, points)).astype(int).T
    inside = (u >= 0) & (u < shape[1]) & (v >= 0) & (v < shape[0])
    mask = np.zeros(shape, bool)
    mask[v[inside], u[inside]] = True
    return mask


def test_extending_the_label_field_continues_the_shaft_and_keeps_every_voxel_in_place() -> None:
    # a shaft (label 5) along patient z, cut by the top and bottom of a 20 x 20 x 30 map whose
    # array axis 1 runs along -z (as the real knee's does)
    labels = np.zeros((20, 30, 20), np.uint8)
    labels[8:12, :, 8:12] = 5
    affine = np.array([[0.5, 0, 0, -5.0], [0, 0, 0.5, -5.0], [0, -0.7, 0, 10.0], [0, 0, 0, 1.0]])
    extended, z_range = extend_label_field(
        Volume(labels, affine, "LABELS"), along_limb_mm=7.0, across_mm=2.0
    )
    assert extended.array.shape == (20 + 2 * 4, 30 + 2 * 10, 20 + 2 * 4)
    np.testing.assert_allclose(z_range, [10.0 - 0.7 * 29, 10.0])
    # every original voxel sits at the same patient position with the same label
    ijk = np.argwhere(np.ones(labels.shape, bool))
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    inverse = np.linalg.inv(extended.affine)
    moved = np.rint(world @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
    np.testing.assert_array_equal(extended.array[tuple(moved.T)], labels[tuple(ijk.T)])
    # the shaft continues beyond both cuts; nothing new appears beside it
    assert (extended.array[12:16, :, 12:16] == 5).all()
    assert extended.array.sum() == 5 * 16 * 50


def test_real_knee_path_is_beside_the_checkout_unless_configured(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("REAL_KNEE_LABELS", raising=False)
    repo_root = Path(__file__).resolve().parents[2]
    expected = repo_root.parent / "shared" / "data" / "real-knee-mri-labels.nrrd"
    assert real_knee_labels_path() == expected
    monkeypatch.setenv("REAL_KNEE_LABELS", str(tmp_path / "knee.nrrd"))
    assert real_knee_labels_path() == tmp_path / "knee.nrrd"


def test_drawn_tissue_models_vary_within_their_ranges_and_are_seeded() -> None:
    draws = [sample_pseudo_ct_params(np.random.default_rng([3, k])) for k in range(200)]
    cortex = np.array([p.cortical_thickness_mm for p in draws])
    assert cortex.min() >= 1.0 and cortex.max() <= 2.5 and cortex.std() > 0.3
    assert all(1200.0 <= p.cortical_hu <= 1500.0 for p in draws)
    assert all(200.0 <= p.cancellous_hu <= 400.0 for p in draws)
    assert all(20.0 <= p.body_margin_mm <= 40.0 for p in draws)
    again = sample_pseudo_ct_params(np.random.default_rng([3, 0]))
    assert again == draws[0]


def test_a_thicker_drawn_cortex_paints_more_cortical_voxels(ball_labels: Volume) -> None:
    thin = PseudoCTParams(cortical_thickness_mm=1.0, noise_hu=0.0, partial_volume_sigma_mm=0.0)
    thick = PseudoCTParams(cortical_thickness_mm=2.5, noise_hu=0.0, partial_volume_sigma_mm=0.0)
    counts = [
        int((pseudo_ct_from_labels(ball_labels, params=p).array == p.cortical_hu).sum())
        for p in (thin, thick)
    ]
    # shells of a 10 mm ball: 1 mm holds 1 - 0.9^3 = 27 %, 2.5 mm 1 - 0.75^3 = 58 % of it
    assert 1.8 < counts[1] / counts[0] < 2.6
