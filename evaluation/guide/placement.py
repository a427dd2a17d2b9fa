"""Rigid placement of a guide on a bone: point-to-plane ICP of the guide's contact patch.

The contact patch is the part of the guide surface within `clearance + band` of the bone it
was designed on. Placing it on another bone minimises sum_i (n_i . (R p_i + t - q_i) - c)^2,
with q_i the exact closest bone point, n_i the bone's outward face normal there and c the
design clearance: the guide seats at its clearance, as it does on its own bone. A small
Levenberg damping keeps weakly constrained directions (sliding along the shaft) still.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .errors import GuideError
from .geometry import BoneQuery

Array = np.ndarray


@dataclass(frozen=True)
class Placement:
    transform: Array  # 4x4, guide design frame -> bone
    iterations: int
    rms_mm: float  # RMS of (distance - clearance) over the contact patch
    max_penetration_mm: float  # deepest contact point inside the bone (0 if none)

    def apply(self, points: Array) -> Array:
        p = np.atleast_2d(np.asarray(points, float))
        return p @ self.transform[:3, :3].T + self.transform[:3, 3]

    def rotate(self, vector: Array) -> Array:
        return self.transform[:3, :3] @ np.asarray(vector, float)

    def to_dict(self) -> dict[str, object]:
        return {
            "transform": self.transform.tolist(),
            "iterations": self.iterations,
            "rms_mm": self.rms_mm,
            "max_penetration_mm": self.max_penetration_mm,
        }


def contact_patch(
    guide: trimesh.Trimesh,
    design_bone: BoneQuery,
    clearance: float,
    band: float = 0.3,
    samples: int = 30000,
    seed: int = 0,
) -> Array:
    """Points of the guide surface that touch (clearance + band) its design bone."""
    points, _ = trimesh.sample.sample_surface(guide, samples, seed=seed)
    distance = design_bone.signed_distance(points)
    patch = points[(distance >= clearance - band) & (distance <= clearance + band)]
    if len(patch) < 50:
        raise GuideError("the guide has no contact face on its design bone")
    return patch


def _rotation(omega: Array) -> Array:
    angle = float(np.linalg.norm(omega))
    if angle < 1e-15:
        return np.eye(3)
    k = omega / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def fit_contact(
    patch: Array,
    bone: BoneQuery,
    clearance: float,
    initial: Array | None = None,
    max_iterations: int = 60,
    tolerance_mm: float = 1e-4,
    damping: float = 1e-3,
) -> Placement:
    """Seat the contact patch on `bone` starting from `initial` (identity: design pose)."""
    transform = np.eye(4) if initial is None else np.asarray(initial, float).copy()
    normals_all = np.asarray(bone.mesh.face_normals)
    radius = float(np.max(np.linalg.norm(patch - patch.mean(axis=0), axis=1)))
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        moved = patch @ transform[:3, :3].T + transform[:3, 3]
        distance, closest, face = bone.closest(moved)
        normals = normals_all[face]
        residual = np.einsum("ij,ij->i", moved - closest, normals) - clearance
        keep = np.abs(residual) <= max(2.0, 3.0 * float(np.median(np.abs(residual))))
        a = np.hstack([np.cross(moved, normals), normals])[keep]
        b = -residual[keep]
        centre = moved[keep].mean(axis=0)
        # solve about the patch centre for conditioning
        a[:, :3] = np.cross(moved[keep] - centre, normals[keep])
        lhs = a.T @ a
        lhs += damping * np.trace(lhs) / 6 * np.eye(6)
        step = np.linalg.solve(lhs, a.T @ b)
        rot = _rotation(step[:3])
        update = np.eye(4)
        update[:3, :3] = rot
        update[:3, 3] = centre - rot @ centre + step[3:]
        transform = update @ transform
        if np.linalg.norm(step[3:]) + radius * np.linalg.norm(step[:3]) < tolerance_mm:
            break
    moved = patch @ transform[:3, :3].T + transform[:3, 3]
    signed = bone.signed_distance(moved)
    return Placement(
        transform=transform,
        iterations=iterations,
        rms_mm=float(np.sqrt(np.mean((signed - clearance) ** 2))),
        max_penetration_mm=float(max(0.0, -signed.min())),
    )


def perturbation(seed: int, angle_deg: float = 2.0, shift_mm: float = 2.0, about=None) -> Array:
    """A random rigid start pose (a surgeon's first placement): rotation of `angle_deg` about
    a random axis through `about`, plus a random shift of `shift_mm`."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    shift = rng.normal(size=3)
    shift *= shift_mm / np.linalg.norm(shift)
    rot = _rotation(np.radians(angle_deg) * axis)
    centre = np.zeros(3) if about is None else np.asarray(about, float)
    transform = np.eye(4)
    transform[:3, :3] = rot
    transform[:3, 3] = centre - rot @ centre + shift
    return transform
