"""Shared meshes for the surface-metric tests (mm)."""

import numpy as np
import trimesh


def sphere(radius: float, subdivisions: int = 5, centre=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.apply_translation(centre)
    return mesh


def cube(side: float = 20.0, offset=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=(side, side, side))
    mesh.apply_translation(offset)
    return mesh


def random_rigid(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation and translation (mm) as a 4x4 matrix."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    transform = trimesh.transformations.quaternion_matrix(q)
    transform[:3, 3] = rng.uniform(-200, 200, size=3)
    return transform
