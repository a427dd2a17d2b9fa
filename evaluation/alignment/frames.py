"""Anatomical frames and frontal-plane geometry.

Every frame here is named by anatomy, never by handedness: `superior`, `anterior` and
`medial` unit vectors (patient mm), so the same code serves left and right knees. The ISB
axes follow from the side: X = anterior, Y = superior, Z = X x Y (lateral for a right knee,
medial for a left one), which is alignment.md's "X = Y x (medial->lateral)" for a right knee.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AlignmentError

Array = np.ndarray


def unit(vector: Array) -> Array:
    v = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-12:
        raise AlignmentError("cannot normalise a zero or non-finite direction")
    return v / norm


def reject(vector: Array, axis: Array) -> Array:
    """Component of `vector` orthogonal to the unit `axis`."""
    return vector - (vector @ axis) * axis


@dataclass(frozen=True)
class Frame:
    """Orthonormal anatomical frame: origin plus superior, anterior and medial unit vectors."""

    origin: Array
    superior: Array
    anterior: Array
    medial: Array
    side: str  # "right" | "left"

    @classmethod
    def from_axes(
        cls, origin: Array, superior: Array, medial_hint: Array, anterior_hint: Array, side: str
    ) -> Frame:
        """Superior is kept exactly; medial is the hint made orthogonal to it (the frontal
        plane contains superior and the mediolateral reference); anterior completes it."""
        if side not in ("right", "left"):
            raise AlignmentError(f"side must be 'right' or 'left', got {side!r}")
        sup = unit(superior)
        med = unit(reject(np.asarray(medial_hint, float), sup))
        ant = np.cross(sup, med)
        if ant @ np.asarray(anterior_hint, float) < 0:
            ant = -ant
        return cls(np.asarray(origin, float), sup, ant, med, side)

    @property
    def lateral(self) -> Array:
        return -self.medial

    def isb_axes(self) -> dict[str, list[float]]:
        """ISB axes: X anterior, Y superior, Z = X x Y."""
        z = np.cross(self.anterior, self.superior)
        return {
            "X": self.anterior.tolist(),
            "Y": self.superior.tolist(),
            "Z": z.tolist(),
        }

    def frontal(self, points: Array) -> Array:
        """(n, 2) frontal-plane coordinates (medial, superior) relative to the origin."""
        q = np.atleast_2d(np.asarray(points, float)) - self.origin
        return np.column_stack([q @ self.medial, q @ self.superior])

    def coords(self, points: Array) -> Array:
        """(n, 3) coordinates (medial, anterior, superior) relative to the origin."""
        q = np.atleast_2d(np.asarray(points, float)) - self.origin
        return np.column_stack([q @ self.medial, q @ self.anterior, q @ self.superior])

    def to_world(self, medial: float, anterior: float, superior: float) -> Array:
        return (
            self.origin + medial * self.medial + anterior * self.anterior + superior * self.superior
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin.tolist(),
            "superior": self.superior.tolist(),
            "anterior": self.anterior.tolist(),
            "medial": self.medial.tolist(),
            "side": self.side,
            "isb": self.isb_axes(),
        }


def frontal_angle(direction_2d: Array) -> float:
    """Angle (deg) of a frontal-plane direction (medial, superior) above the medial axis."""
    d = np.asarray(direction_2d, float)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def angle_between(a: Array, b: Array) -> float:
    """Unsigned angle in degrees between two directions (robust near 0 and 180)."""
    ua, ub = unit(a), unit(b)
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(ua, ub)), ua @ ub)))


def signed_angle_2d(a: Array, b: Array) -> float:
    """Signed angle (deg) from 2D vector a to b, counter-clockwise positive."""
    return float(np.degrees(np.arctan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1])))
