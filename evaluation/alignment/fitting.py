"""Least-squares primitives: sphere, circle, plane, line and cylinder fits.

Sphere and circle: algebraic (Kasa) start, then geometric Gauss-Newton on the true
distances |p - c| - r, which removes the algebraic fit's bias on partial caps.
Cylinder: for a fixed axis direction the problem is a circle fit in the orthogonal plane,
so only the two direction angles are searched (Nelder-Mead on the circle-fit residual).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .errors import FitError

Array = np.ndarray


@dataclass(frozen=True)
class Sphere:
    centre: Array
    radius: float
    rms: float


@dataclass(frozen=True)
class Circle:
    centre: Array  # 2D
    radius: float
    rms: float


@dataclass(frozen=True)
class Plane:
    point: Array
    normal: Array
    rms: float


@dataclass(frozen=True)
class Line:
    point: Array
    direction: Array


@dataclass(frozen=True)
class Cylinder:
    point: Array  # a point on the axis
    direction: Array  # unit axis direction
    radius: float
    rms: float


def _points(points: Array, dim: int, minimum: int, what: str) -> Array:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != dim:
        raise FitError(f"{what} fit needs an (n, {dim}) array, got shape {pts.shape}")
    if len(pts) < minimum:
        raise FitError(f"{what} fit needs at least {minimum} points, got {len(pts)}")
    if not np.all(np.isfinite(pts)):
        raise FitError(f"{what} fit: points contain NaN or infinity")
    return pts


def _algebraic_ball(pts: Array) -> tuple[Array, float]:
    """Kasa fit in any dimension: |p|^2 = 2 c.p + (r^2 - |c|^2), linear in c and k."""
    mean = pts.mean(axis=0)
    q = pts - mean  # centring keeps the normal equations well conditioned
    design = np.hstack([2.0 * q, np.ones((len(q), 1))])
    rhs = np.einsum("ij,ij->i", q, q)
    sol, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    centre = sol[:-1]
    radius_sq = sol[-1] + centre @ centre
    if not np.isfinite(radius_sq) or radius_sq <= 0:
        raise FitError("sphere/circle fit is degenerate (points are coplanar/collinear)")
    return centre + mean, float(np.sqrt(radius_sq))


def _geometric_ball(
    pts: Array, centre: Array, radius: float, iterations: int = 30
) -> tuple[Array, float, float]:
    """Gauss-Newton on r_i = |p_i - c| - R; Jacobian rows are (-(p_i - c)/|p_i - c|, -1)."""
    c, r = centre.copy(), radius
    for _ in range(iterations):
        diff = pts - c
        dist = np.linalg.norm(diff, axis=1)
        dist = np.where(dist > 1e-12, dist, 1e-12)
        resid = dist - r
        jac = np.hstack([-diff / dist[:, None], -np.ones((len(pts), 1))])
        step, *_ = np.linalg.lstsq(jac, -resid, rcond=None)
        c = c + step[:-1]
        r = r + step[-1]
        if np.linalg.norm(step) < 1e-10 * max(1.0, r):
            break
    rms = float(np.sqrt(np.mean((np.linalg.norm(pts - c, axis=1) - r) ** 2)))
    return c, float(r), rms


def fit_sphere(points: Array) -> Sphere:
    """Geometric least-squares sphere through (n, 3) points."""
    pts = _points(points, 3, 4, "sphere")
    centre, radius = _algebraic_ball(pts)
    centre, radius, rms = _geometric_ball(pts, centre, radius)
    return Sphere(centre, radius, rms)


def fit_circle(points: Array) -> Circle:
    """Geometric least-squares circle through (n, 2) points."""
    pts = _points(points, 2, 3, "circle")
    centre, radius = _algebraic_ball(pts)
    centre, radius, rms = _geometric_ball(pts, centre, radius)
    return Circle(centre, radius, rms)


def fit_plane(points: Array, weights: Array | None = None) -> Plane:
    """Total least-squares plane (smallest principal direction is the normal)."""
    pts = _points(points, 3, 3, "plane")
    w = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=float)
    centre = (w[:, None] * pts).sum(axis=0) / w.sum()
    q = (pts - centre) * np.sqrt(w)[:, None]
    _, s, vt = np.linalg.svd(q, full_matrices=False)
    if s[1] < 1e-9 * max(s[0], 1e-12):
        raise FitError("plane fit is degenerate (points are collinear)")
    normal = vt[2]
    rms = float(np.sqrt(np.mean(((pts - centre) @ normal) ** 2)))
    return Plane(centre, normal, rms)


def fit_line(points: Array) -> Line:
    """Total least-squares line (largest principal direction)."""
    pts = _points(points, points.shape[1] if np.ndim(points) == 2 else 3, 2, "line")
    centre = pts.mean(axis=0)
    _, s, vt = np.linalg.svd(pts - centre, full_matrices=False)
    if s[0] < 1e-12:
        raise FitError("line fit is degenerate (all points coincide)")
    return Line(centre, vt[0])


def orthonormal_basis(direction: Array) -> tuple[Array, Array]:
    """Two unit vectors completing `direction` to a right-handed orthonormal frame."""
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _direction(base: Array, u: Array, v: Array, angles: Array) -> Array:
    d = base + np.tan(angles[0]) * u + np.tan(angles[1]) * v
    return d / np.linalg.norm(d)


def _cylinder_for_direction(pts: Array, direction: Array) -> Cylinder:
    u, v = orthonormal_basis(direction)
    flat = np.column_stack([pts @ u, pts @ v])
    circle = fit_circle(flat)
    point = circle.centre[0] * u + circle.centre[1] * v
    # place the axis point at the middle of the data along the axis
    point = point + direction * float(np.mean(pts @ direction))
    return Cylinder(point, direction, circle.radius, circle.rms)


def fit_cylinder(points: Array, direction_guess: Array) -> Cylinder:
    """Least-squares cylinder: search the axis direction near `direction_guess`."""
    pts = _points(points, 3, 6, "cylinder")
    base = np.asarray(direction_guess, dtype=float)
    if base.shape != (3,) or not np.isfinite(base).all() or np.linalg.norm(base) < 1e-12:
        raise FitError("cylinder fit needs a finite, non-zero 3-vector as direction guess")
    base = base / np.linalg.norm(base)
    u, v = orthonormal_basis(base)
    centre = pts.mean(axis=0)
    local = pts - centre

    def cost(angles: Array) -> float:
        return _cylinder_for_direction(local, _direction(base, u, v, angles)).rms

    result = minimize(
        cost,
        np.zeros(2),
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-12, "initial_simplex": 0.05 * np.eye(3, 2, -1)},
    )
    best = _cylinder_for_direction(local, _direction(base, u, v, result.x))
    return Cylinder(best.point + centre, best.direction, best.radius, best.rms)


def _axis_residuals(params: Array, base: Array, u: Array, v: Array, pts: Array, nrm: Array):
    direction = _direction(base, u, v, params[:2])
    point = params[2] * u + params[3] * v
    cross = np.cross(direction, nrm)
    length = np.linalg.norm(cross, axis=1)
    return ((pts - point) * cross).sum(axis=1) / np.maximum(length, 1e-9)


def fit_revolution_axis(
    points: Array, normals: Array, direction_guess: Array, point_guess: Array
) -> Line:
    """Axis of a surface of revolution: the line that the surface normals all meet.

    Minimises the distances between each normal line (p_i, n_i) and the axis. Unlike a
    cylinder, it tolerates a radius that changes along the axis (condyles are not equal
    cylinders), so the fitted direction is not tilted by unequal condyle radii.
    """
    from scipy.optimize import least_squares

    pts = _points(points, 3, 6, "revolution-axis")
    nrm = _points(normals, 3, 6, "revolution-axis normals")
    if len(nrm) != len(pts):
        raise FitError("revolution-axis fit: points and normals differ in length")
    base = np.asarray(direction_guess, float)
    base = base / np.linalg.norm(base)
    u, v = orthonormal_basis(base)
    centre = pts.mean(axis=0)
    local = pts - centre
    start = np.asarray(point_guess, float) - centre
    x0 = np.array([0.0, 0.0, start @ u, start @ v])
    result = least_squares(_axis_residuals, x0, args=(base, u, v, local, nrm), method="lm")
    direction = _direction(base, u, v, result.x[:2])
    point = result.x[2] * u + result.x[3] * v + centre
    return Line(point, direction)
