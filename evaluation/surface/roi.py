"""Common region of interest (a slab around the joint line) and the alignment policy.

Both meshes are cut to the same slab, ``centre + s * axis`` for ``-below <= s <= above``,
before anything is measured, so that a longer shaft in one of them does not turn the
Hausdorff distance into a measure of shaft length. Triangles are clipped exactly at the two
planes (no whole-triangle selection), so sampled areas are exact.

Alignment: ``"none"`` (default) measures in the native frames, as delivered. ``"icp"``
rigidly moves the result onto the reference (point-to-plane ICP with exact closest
points, on the slab-cropped surfaces); it lowers every distance and must be reported, so the
transform and its residual go into the output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh

from .distances import ClosestPointIndex, sample_surface
from .errors import EmptyMeshError, ParameterError

ALIGNMENTS = ("none", "icp")


@dataclass(frozen=True)
class Slab:
    """The region ``-below <= (x - centre) . axis <= above`` (mm); axis is normalised."""

    centre: tuple[float, float, float]
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    below: float = 70.0
    above: float = 70.0

    def __post_init__(self) -> None:
        centre = np.asarray(self.centre, dtype=float)
        axis = np.asarray(self.axis, dtype=float)
        if (
            centre.shape != (3,)
            or axis.shape != (3,)
            or not np.all(np.isfinite(np.r_[centre, axis]))
        ):
            raise ParameterError("the ROI needs a finite 3D centre and a finite 3D axis")
        norm = float(np.linalg.norm(axis))
        if norm == 0:
            raise ParameterError("the ROI axis must not be the zero vector")
        if (
            not (np.isfinite(self.below) and np.isfinite(self.above))
            or self.below + self.above <= 0
        ):
            raise ParameterError(
                f"the ROI slab must have a positive thickness, got below={self.below}, above={self.above} mm"
            )
        object.__setattr__(self, "centre", tuple(float(x) for x in centre))
        object.__setattr__(self, "axis", tuple(float(x) for x in axis / norm))

    def contains(self, x, y, z) -> np.ndarray:
        """Vectorised membership test for broadcastable coordinate arrays."""
        a = self.axis
        s = a[0] * (x - self.centre[0]) + a[1] * (y - self.centre[1]) + a[2] * (z - self.centre[2])
        return (s >= -self.below) & (s <= self.above)

    def crop(self, mesh: trimesh.Trimesh, name: str = "mesh") -> trimesh.Trimesh:
        """The part of the surface inside the slab, triangles clipped at both planes (open)."""
        axis = np.asarray(self.axis)
        centre = np.asarray(self.centre)
        vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        offsets = vertices @ axis - axis @ centre
        cropped = mesh
        if offsets.min() < -self.below:
            vertices, faces, _ = trimesh.intersections.slice_faces_plane(
                vertices, faces, plane_normal=axis, plane_origin=centre - self.below * axis
            )
            cropped = None
        if len(faces) and offsets.max() > self.above:
            vertices, faces, _ = trimesh.intersections.slice_faces_plane(
                vertices, faces, plane_normal=-axis, plane_origin=centre + self.above * axis
            )
            cropped = None
        if cropped is None:
            cropped = trimesh.Trimesh(vertices, faces, process=False)
        if len(cropped.faces) == 0 or cropped.area <= 0:
            raise EmptyMeshError(
                f"nothing of the {name} lies inside the region of interest {self.describe()}"
            )
        return cropped

    def describe(self) -> str:
        c = ", ".join(f"{x:g}" for x in self.centre)
        a = ", ".join(f"{x:.3g}" for x in self.axis)
        return f"slab {self.below:g} mm below / {self.above:g} mm above ({c}) along ({a})"

    def as_dict(self) -> dict:
        return asdict(self)


def _small_motion(rotation_vector: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 rigid transform from a rotation vector (Rodrigues) and a translation."""
    angle = float(np.linalg.norm(rotation_vector))
    k = rotation_vector / angle if angle > 0 else np.zeros(3)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    transform = np.eye(4)
    transform[:3, :3] = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    transform[:3, 3] = translation
    return transform


def icp(
    moving: trimesh.Trimesh,
    fixed_index: ClosestPointIndex,
    density: float,
    seed: int,
    max_iterations: int = 100,
    tolerance: float = 1e-7,
) -> dict:
    """Rigid point-to-plane ICP of ``moving`` onto the surface behind ``fixed_index``.

    Area-weighted samples of ``moving`` (at most ~50k) are matched to their exact closest
    points on the fixed surface; each step solves the linearised point-to-plane least
    squares problem (Chen & Medioni) for a small rotation and translation, until the step
    moves no sample by more than ``tolerance`` mm or the RMS distance stops falling. Returns the 4x4 transform (moving ->
    fixed frame), the iterations and the RMS closest-point distance before and after.
    """
    if not tolerance > 0:
        raise ParameterError("ICP tolerance must be positive")
    sample = sample_surface(moving, min(density, 50_000.0 / max(float(moving.area), 1e-9)), seed)
    source = sample.points
    radius = float(np.max(np.linalg.norm(source - source.mean(axis=0), axis=1)))
    transform = np.eye(4)
    tri = fixed_index.vertices[fixed_index.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1), 1e-300)[:, None]
    rms_initial = rms_previous = None
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        moved = source @ transform[:3, :3].T + transform[:3, 3]
        distance, closest, face = fixed_index.query(moved)
        rms = float(np.sqrt(np.mean(distance**2)))
        if rms_initial is None:
            rms_initial = rms
        elif rms_previous - rms < 1e-3 * tolerance:
            break  # no more progress (e.g. a direction the shapes leave free, as on a sphere)
        rms_previous = rms
        n = normals[face]
        # centred coordinates keep the 6x6 system well conditioned; rcond drops the motions
        # that a symmetric shape leaves undetermined instead of taking noisy steps along them
        centre = moved.mean(axis=0)
        system = np.hstack([np.cross(moved - centre, n), n])
        step, *_ = np.linalg.lstsq(system, np.einsum("ij,ij->i", closest - moved, n), rcond=1e-6)
        rotation = _small_motion(step[:3], np.zeros(3))
        about_centre = np.eye(4)
        about_centre[:3, 3] = centre + step[3:] - rotation[:3, :3] @ centre
        about_centre[:3, :3] = rotation[:3, :3]
        transform = about_centre @ transform
        if np.linalg.norm(step[:3]) * radius + np.linalg.norm(step[3:]) < tolerance:
            break
    moved = source @ transform[:3, :3].T + transform[:3, 3]
    distance, _, _ = fixed_index.query(moved)
    return {
        "transform": transform,
        "iterations": iterations,
        "rms_before_mm": rms_initial,
        "rms_after_mm": float(np.sqrt(np.mean(distance**2))),
    }
