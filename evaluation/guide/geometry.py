"""Shared geometry of guide design: the tibial frame of a plan, exact bone distances,
inside tests, and conversions between trimesh and manifold3d."""

from __future__ import annotations

from dataclasses import dataclass

import manifold3d
import numpy as np
import trimesh

from .errors import GuideError

Array = np.ndarray


def unit(vector: Array) -> Array:
    v = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-12:
        raise GuideError("cannot normalise a zero or non-finite direction")
    return v / norm


@dataclass(frozen=True)
class TibiaFrame:
    """Origin plus medial, anterior and superior unit vectors (patient mm)."""

    origin: Array
    medial: Array
    anterior: Array
    superior: Array

    @property
    def axes(self) -> Array:
        """Rows: medial, anterior, superior."""
        return np.vstack([self.medial, self.anterior, self.superior])

    def coords(self, points: Array) -> Array:
        """(n, 3) local (medial, anterior, superior) coordinates of world points."""
        return (np.atleast_2d(np.asarray(points, float)) - self.origin) @ self.axes.T

    def world(self, local: Array) -> Array:
        return np.atleast_2d(np.asarray(local, float)) @ self.axes + self.origin

    @property
    def handedness(self) -> float:
        return float(np.sign(np.linalg.det(self.axes)))


class BoneQuery:
    """Exact unsigned distances and even-odd inside tests against one closed bone mesh.

    Uses the BVH of ``evaluation.surface`` (exact float64 point-triangle distances) when it
    is importable, else trimesh's proximity query.
    """

    def __init__(self, mesh: trimesh.Trimesh):
        self.mesh = mesh
        try:
            from evaluation.surface.distances import ClosestPointIndex

            self._index = ClosestPointIndex(mesh)
        except ImportError:  # pragma: no cover - fallback when the surface package is absent
            self._index = None
        self._proximity = None

    def closest(self, points: Array) -> tuple[Array, Array, Array]:
        """Distances, closest points and face indices for (n, 3) points."""
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        if self._index is not None:
            return self._index.query(points)
        if self._proximity is None:  # pragma: no cover
            self._proximity = trimesh.proximity.ProximityQuery(self.mesh)
        closest, distance, face = self._proximity.on_surface(points)  # pragma: no cover
        return distance, closest, face  # pragma: no cover

    def inside(self, points: Array) -> Array:
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        try:
            from evaluation.surface.volume import inside

            return inside(self.mesh, points)
        except ImportError:  # pragma: no cover
            return self.mesh.contains(points)

    def signed_distance(self, points: Array) -> Array:
        """Positive outside the bone, negative inside (mm)."""
        distance, _, _ = self.closest(points)
        return np.where(self.inside(points), -distance, distance)


def to_manifold(mesh: trimesh.Trimesh, name: str) -> manifold3d.Manifold:
    """A manifold3d solid from a closed triangle mesh, or a GuideError naming the mesh."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.uint64)
    solid = manifold3d.Manifold(manifold3d.Mesh64(vert_properties=vertices, tri_verts=faces))
    if solid.status() != manifold3d.Error.NoError:
        merged = mesh.copy()
        merged.merge_vertices()
        solid = manifold3d.Manifold(
            manifold3d.Mesh64(
                vert_properties=np.asarray(merged.vertices, dtype=np.float64),
                tri_verts=np.asarray(merged.faces, dtype=np.uint64),
            )
        )
    if solid.status() != manifold3d.Error.NoError or solid.is_empty():
        raise GuideError(f"{name} is not a closed manifold solid ({solid.status().name})")
    return solid


def to_trimesh(solid: manifold3d.Manifold) -> trimesh.Trimesh:
    out = solid.to_mesh64()
    vertices = np.asarray(out.vert_properties, dtype=np.float64)[:, :3]
    return trimesh.Trimesh(vertices, np.asarray(out.tri_verts, dtype=np.int64), process=False)


def pose(rotation_rows: Array, origin: Array) -> list[list[float]]:
    """3x4 affine (manifold3d convention) mapping local x, y, z onto the given rows."""
    matrix = np.zeros((3, 4))
    matrix[:, :3] = np.asarray(rotation_rows, float).T
    matrix[:, 3] = np.asarray(origin, float)
    return matrix.tolist()


def cylinder(start: Array, end: Array, radius: float, segments: int = 48) -> manifold3d.Manifold:
    """Solid cylinder between two points."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    axis = end - start
    length = float(np.linalg.norm(axis))
    z = unit(axis)
    helper = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = unit(np.cross(helper, z))
    y = np.cross(z, x)
    solid = manifold3d.Manifold.cylinder(length, radius, radius, segments)
    return solid.transform(pose(np.vstack([x, y, z]), start))


def oriented_box(centre: Array, axes: Array, half_sizes: Array) -> manifold3d.Manifold:
    """Box with rows of `axes` as its (orthonormal) edge directions."""
    half = np.asarray(half_sizes, float)
    solid = manifold3d.Manifold.cube(list(2 * half), True)
    rows = np.asarray(axes, float)
    if np.linalg.det(rows) < 0:
        rows = rows.copy()
        rows[2] = -rows[2]
    return solid.transform(pose(rows, centre))
