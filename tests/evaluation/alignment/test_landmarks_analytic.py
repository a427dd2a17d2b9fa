"""Landmark primitives on analytic meshes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from evaluation.alignment.frames import Frame
from evaluation.alignment.landmarks import (
    MeshData,
    distal_bitangent,
    find_hip_centre,
    lower_hull,
    plateau_plane,
)


def _sphere(centre, radius: float) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    mesh.apply_translation(centre)
    return mesh


def _femur_like(hip: np.ndarray, length: float) -> trimesh.Trimesh:
    """A head sphere on top of a long shaft cylinder (concatenated surfaces)."""
    shaft = trimesh.creation.cylinder(radius=12.0, height=length, sections=64)
    shaft.apply_translation(hip - [0.0, 0.0, 30.0 + length / 2])
    return trimesh.util.concatenate([_sphere(hip, 23.0), shaft])


def test_hip_sphere_centre() -> None:
    hip = np.array([4.0, -7.0, 420.0])
    sphere, reason = find_hip_centre(
        MeshData.of(_femur_like(hip, 380.0), "femur"), np.array([0, 0, 1.0])
    )
    assert reason == ""
    assert np.linalg.norm(sphere.centre - hip) < 0.05
    assert sphere.radius == pytest.approx(23.0, abs=0.05)


def test_short_femur_has_no_hip() -> None:
    sphere, reason = find_hip_centre(
        MeshData.of(_femur_like(np.array([0, 0, 60.0]), 40.0), "femur"), np.array([0, 0, 1.0])
    )
    assert sphere is None and "knee-only" in reason


def test_lower_hull_of_known_points() -> None:
    pts = np.array([[0, 0], [1, -1], [2, 0.5], [3, -1], [4, 0], [2, 3], [2, -0.2]], float)
    assert lower_hull(pts).tolist() == [0, 1, 3, 4]


def test_bitangent_of_two_unequal_condyles() -> None:
    """Two spheres as condyles: the frontal lower common tangent is known in closed form."""
    c_med, r_med = np.array([20.0, 0.0, 20.0]), 20.0
    c_lat, r_lat = np.array([-22.0, 0.0, 25.0]), 22.0
    femur = MeshData.of(
        trimesh.util.concatenate([_sphere(c_med, r_med), _sphere(c_lat, r_lat)]), "f"
    )
    frame = Frame.from_axes(
        np.zeros(3), np.array([0, 0, 1.0]), np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), "right"
    )
    med, lat = distal_bitangent(femur, frame, split=0.0)
    # tangent line z = a x + b below both circles: (a c_x - c_z + b) / sqrt(1 + a^2) = -r
    # subtracting the two conditions gives a; then b
    d = c_med - c_lat
    # solve a*d_x - d_z = -(r_med - r_lat) * sqrt(1 + a^2) numerically (monotone in a)
    from scipy.optimize import brentq

    a = brentq(lambda s: s * d[0] - d[2] + (r_med - r_lat) * np.sqrt(1 + s * s), -1, 1)
    b = c_med[2] - a * c_med[0] - r_med * np.sqrt(1 + a * a)
    for point in (med, lat):
        assert abs(point[2] - (a * point[0] + b)) / np.sqrt(1 + a * a) < 0.01
    measured = np.degrees(np.arctan2(med[2] - lat[2], med[0] - lat[0]))
    assert measured == pytest.approx(np.degrees(np.arctan(a)), abs=0.05)


def test_plateau_plane_ignores_spines() -> None:
    """A tilted slab with two bumps on top: the plane fit follows the slab, not the bumps."""
    normal = np.array([np.sin(np.radians(-4)), np.sin(np.radians(-8)), 1.0])
    normal /= np.linalg.norm(normal)
    box = trimesh.creation.box(extents=(76, 50, 40))
    slab = trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(box.vertices, box.faces, 1.5))
    slab.apply_translation([0, 0, -20])  # evenly tessellated like a marching-cubes surface
    bumps = [_sphere([x, 0, -3.0], 8.0) for x in (-4.0, 4.0)]
    tibia = trimesh.util.concatenate([slab, *bumps])
    rotation = trimesh.geometry.align_vectors([0, 0, 1.0], normal)
    tibia.apply_transform(rotation)
    plane, _ = plateau_plane(MeshData.of(tibia, "tibia"), np.array([0, 0, 1.0]))
    assert np.degrees(np.arccos(min(1.0, plane.normal @ normal))) < 0.01
