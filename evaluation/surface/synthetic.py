"""Synthetic, closed, bone-like meshes (mm, LPS) for tests, the benchmark and demo figures.

Each bone is a subdivided icosphere mapped radially onto a star-shaped surface (an
ellipsoid with condyle-like lobes), so it is watertight, consistently oriented and has a
chosen number of faces (20 * 4**subdivisions). A "reconstruction" is the same shape with
smooth random displacement and a different tessellation.
"""

from __future__ import annotations

import numpy as np
import trimesh

# name: (semi-axes x, y, z; centre; lobes as (direction, strength, width))
BONE_SHAPES = {
    "femur": (
        (38.0, 30.0, 75.0),
        (0.0, 0.0, 72.0),
        (((-0.5, 0.1, -1.0), 0.35, 0.45), ((0.5, 0.1, -1.0), 0.35, 0.45)),
    ),
    "tibia": (
        (36.0, 28.0, 70.0),
        (0.0, 2.0, -70.0),
        (((-0.6, 0.0, 1.0), 0.3, 0.5), ((0.6, 0.0, 1.0), 0.3, 0.5)),
    ),
    "fibula": ((9.0, 9.0, 60.0), (-32.0, 18.0, -75.0), (((0.0, 0.0, 1.0), 0.4, 0.3),)),
    "patella": ((22.0, 10.0, 24.0), (0.0, -42.0, 15.0), ()),
}


def bone_mesh(
    name: str = "femur",
    subdivisions: int = 6,
    noise_mm: float = 0.0,
    scale: float = 1.0,
    seed: int = 0,
) -> trimesh.Trimesh:
    """A closed bone-like mesh; ``noise_mm`` adds smooth displacement of about that amplitude."""
    axes, centre, lobes = BONE_SHAPES[name]
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    u = np.asarray(sphere.vertices)
    radius = np.ones(len(u))
    for direction, strength, width in lobes:
        d = np.asarray(direction, dtype=float)
        d /= np.linalg.norm(d)
        radius += strength * np.exp(-np.sum((u - d) ** 2, axis=1) / width**2)
    points = u * radius[:, None] * np.asarray(axes) * scale
    if noise_mm:
        rng = np.random.default_rng(seed)
        bump = np.zeros(len(u))
        for _ in range(12):
            k = rng.normal(size=3)
            k *= rng.uniform(2.0, 6.0) / np.linalg.norm(k)
            bump += np.sin(u @ k + rng.uniform(0, 2 * np.pi))
        bump *= noise_mm / np.sqrt(6.0)  # 12 unit sines: standard deviation ~ sqrt(6)
        normals = trimesh.Trimesh(points, sphere.faces, process=False).vertex_normals
        points = points + normals * bump[:, None]
    return trimesh.Trimesh(points + np.asarray(centre), sphere.faces, process=False)


def knee_case(seed: int = 0, subdivisions: int = 5, noise_mm: float = 0.8) -> tuple[dict, dict]:
    """(reference, result) dicts of the four bones; the result is smaller/noisier."""
    reference = {name: bone_mesh(name, subdivisions=subdivisions) for name in BONE_SHAPES}
    result = {
        name: bone_mesh(
            name,
            subdivisions=subdivisions - 1 if subdivisions > 3 else subdivisions,
            noise_mm=noise_mm,
            scale=0.99,
            seed=seed + i,
        )
        for i, name in enumerate(BONE_SHAPES)
    }
    return reference, result
