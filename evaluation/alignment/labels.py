"""Bone meshes from a label volume (marching cubes with the volume's affine, patient mm)."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.ndimage import gaussian_filter
from skimage.measure import marching_cubes

from .errors import AlignmentError


def mesh_from_label(
    array: np.ndarray, affine: np.ndarray, label: int, smooth_mm: float = 0.7, step: int = 2
) -> trimesh.Trimesh:
    """Closed surface of one label. The binary mask is zero-padded (so a bone cut by the
    field of view gets a flat cap, as in a cropped CT) and Gaussian-smoothed by `smooth_mm`
    (per-axis in voxels, so anisotropic slices lose their staircase); iso-level 0.5.
    `step` > 1 marches on a coarser grid (fewer faces; the smoothed field keeps the shape)."""
    mask = np.asarray(array) == label
    if not mask.any():
        raise AlignmentError(f"label {label} is absent from the volume")
    padded = np.pad(mask.astype(np.float32), 2)
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    if smooth_mm > 0:
        padded = gaussian_filter(padded, smooth_mm / spacing)
    verts, faces, _, _ = marching_cubes(padded, 0.5, step_size=step)
    verts = verts - 2.0  # undo the padding
    world = verts @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    mesh = trimesh.Trimesh(world, faces, process=True)
    if mesh.is_watertight and mesh.volume < 0:
        mesh.invert()
    return mesh


def meshes_from_labels(
    array: np.ndarray, affine: np.ndarray, labels: dict[str, int]
) -> dict[str, trimesh.Trimesh]:
    """name -> mesh for each (name, label); the largest connected piece of each is kept."""
    meshes = {}
    for name, label in labels.items():
        mesh = mesh_from_label(array, affine, label)
        parts = mesh.split(only_watertight=False)
        meshes[name] = max(parts, key=lambda m: len(m.faces)) if len(parts) > 1 else mesh
    return meshes
