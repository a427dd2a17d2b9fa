"""Accuracy helpers shared by the segmentation tests."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy import ndimage

ASSD_SAMPLES = 4000


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def assd(reference: trimesh.Trimesh, result: trimesh.Trimesh) -> float:
    """Average symmetric surface distance (mm): the mean of the two directed mean distances
    from area-weighted surface samples to the exact other triangle surface.

    Uses evaluation.surface.compare_pair when that package imports (the study's definition);
    otherwise the same definition with trimesh's exact point-to-triangle distances."""
    try:
        from evaluation.surface import compare_pair
    except ImportError:
        return _assd_trimesh(reference, result)
    measured = compare_pair(
        reference,
        result,
        n_samples=ASSD_SAMPLES,
        volume=False,
        signed=False,
        convergence=False,
    )
    return float(measured.metrics["assd"])


def _assd_trimesh(reference: trimesh.Trimesh, result: trimesh.Trimesh) -> float:
    directed = []
    for seed, (source, target) in enumerate(((reference, result), (result, reference))):
        points, _ = trimesh.sample.sample_surface(source, ASSD_SAMPLES, seed=seed)
        _, distance, _ = trimesh.proximity.closest_point(target, points)
        directed.append(float(np.mean(distance)))
    return float(np.mean(directed))


def rotation_about(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def rotate_content(
    array: np.ndarray, affine: np.ndarray, rotation: np.ndarray, centre_mm: np.ndarray, order: int
) -> np.ndarray:
    """Resample `array` so that its content is rotated by `rotation` about `centre_mm`
    (patient mm), on the same grid: new(x) = old(R^T (x - c) + c).

    Outside the old grid the edge slices are extended (mode "nearest"), so a bone cut by
    the old field of view continues to the new border as in a real scan, instead of
    ending at an oblique cut face open to air inside the grid."""
    linear = affine[:3, :3]
    inverse = np.linalg.inv(linear)
    # index -> patient -> rotate back -> index of the old grid
    matrix = inverse @ rotation.T @ linear
    offset = inverse @ (rotation.T @ (affine[:3, 3] - centre_mm) + centre_mm - affine[:3, 3])
    return ndimage.affine_transform(
        array, matrix, offset=offset, order=order, mode="nearest", output=array.dtype
    )
