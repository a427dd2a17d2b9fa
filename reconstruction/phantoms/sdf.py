"""Signed-distance primitives, smooth CSG and narrow-band grid sampling (vectorised numpy).

Convention: negative inside, positive outside, millimetres. Every primitive here is
1-Lipschitz (exact distance, or an under-estimate of it), and min/max/smooth-min keep that
property. The narrow-band sampler relies on it: if |f(block centre)| exceeds the block's
half-diagonal, the block cannot contain the surface, so it is filled without evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray
SdfFunction = Callable[[Array], Array]


def smin(a: Array, b: Array, k: float) -> Array:
    """Polynomial smooth minimum; equals min(a, b) exactly wherever |a - b| >= k."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * (k * 0.25)


def smax(a: Array, b: Array, k: float) -> Array:
    return -smin(-a, -b, k)


class Shape:
    """Base class: a shape is a callable (N, 3) points -> (N,) signed distances."""

    def __call__(self, points: Array) -> Array:  # pragma: no cover - interface
        raise NotImplementedError

    def lower_bound(self, points: Array) -> Array:
        """A cheap value <= the SDF at each point (used to skip evaluations exactly)."""
        return np.full(len(points), -np.inf)

    def prune(self, centre: Array, radius: float) -> Shape:
        """An equivalent shape for points within `radius` of `centre` (parts that cannot
        influence that ball are dropped, using the 1-Lipschitz bound |f(p) - f(c)| <= r)."""
        return self


def _at(shape: Shape, centre: Array) -> float:
    return float(shape(np.asarray(centre, dtype=float)[None, :])[0])


def _sphere_bound(points: Array, centre: Array, radius: float, scale: float = 1.0) -> Array:
    return (np.linalg.norm(points - centre, axis=1) - radius) * scale


@dataclass
class Sphere(Shape):
    centre: Sequence[float]
    radius: float

    def __call__(self, points: Array) -> Array:
        return np.linalg.norm(points - np.asarray(self.centre), axis=1) - self.radius

    def lower_bound(self, points: Array) -> Array:
        return self(points)


@dataclass
class Ellipsoid(Shape):
    """Axis-aligned (in its own rotated frame) ellipsoid; exact zero set, 1-Lipschitz bound.

    `exponent` p > 2 makes it a superellipsoid |x/a|^p + |y/b|^p + |z/c|^p = 1: flatter
    faces and squarer rims. (||q/r||_p - 1) * r_min stays 1-Lipschitz for every p >= 2,
    because the gradient of a p-norm has Euclidean length <= 1 there."""

    centre: Sequence[float]
    radii: Sequence[float]
    rotation: Array | None = None  # 3x3, columns = ellipsoid axes in parent coordinates
    exponent: float = 2.0

    def __post_init__(self) -> None:
        if not self.exponent >= 2.0:
            raise ValueError(f"ellipsoid exponent must be >= 2, got {self.exponent}")

    def __call__(self, points: Array) -> Array:
        q = points - np.asarray(self.centre)
        if self.rotation is not None:
            q = q @ np.asarray(self.rotation)
        radii = np.asarray(self.radii, dtype=float)
        return (self._norm(q / radii) - 1.0) * radii.min()

    def _norm(self, scaled: Array) -> Array:
        if self.exponent == 2.0:
            return np.linalg.norm(scaled, axis=1)
        p = self.exponent
        return (np.abs(scaled) ** p).sum(axis=1) ** (1.0 / p)

    def lower_bound(self, points: Array) -> Array:
        # |q / r|_p >= c |q / r|_2 >= c |q| / r_max with c = 3^(1/p - 1/2) (1 for p = 2),
        # hence f >= (|q| - r_max / c) * c * r_min / r_max
        radii = np.asarray(self.radii, dtype=float)
        c = 3.0 ** (1.0 / self.exponent - 0.5)
        return _sphere_bound(
            points, np.asarray(self.centre), radii.max() / c, c * radii.min() / radii.max()
        )


@dataclass
class RoundCone(Shape):
    """Exact distance to the convex hull of two spheres (a capsule with varying radius)."""

    a: Sequence[float]
    b: Sequence[float]
    ra: float
    rb: float

    def __call__(self, points: Array) -> Array:
        a = np.asarray(self.a, dtype=float)
        ba = np.asarray(self.b, dtype=float) - a
        l2 = float(ba @ ba)
        rr = self.ra - self.rb
        a2 = l2 - rr * rr
        il2 = 1.0 / l2
        pa = points - a
        y = pa @ ba
        z = y - l2
        x2 = np.sum((pa * l2 - y[:, None] * ba) ** 2, axis=1)
        y2 = y * y * l2
        z2 = z * z * l2
        k = np.sign(rr) * rr * rr * x2
        d_b = np.sqrt(x2 + z2) * il2 - self.rb
        d_a = np.sqrt(x2 + y2) * il2 - self.ra
        d_side = (np.sqrt(np.maximum(x2 * a2 * il2, 0.0)) + y * rr) * il2 - self.ra
        return np.where(
            np.sign(z) * a2 * z2 > k, d_b, np.where(np.sign(y) * a2 * y2 < k, d_a, d_side)
        )

    def lower_bound(self, points: Array) -> Array:
        a, b = np.asarray(self.a, dtype=float), np.asarray(self.b, dtype=float)
        return _sphere_bound(points, (a + b) / 2, np.linalg.norm(b - a) / 2 + max(self.ra, self.rb))


@dataclass
class HalfSpace(Shape):
    """Points with normal . p <= offset are inside (normal is normalised on construction)."""

    normal: Sequence[float]
    offset: float

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, dtype=float)
        self.normal = n / np.linalg.norm(n)

    def __call__(self, points: Array) -> Array:
        return points @ np.asarray(self.normal) - self.offset


@dataclass
class Tube(Shape):
    """Hard union of round cones along a polyline: a smooth tube along a curved centreline."""

    points: Array  # (M, 3) centreline
    radii: Array  # (M,)

    def _segments(self) -> list[RoundCone]:
        centre = np.asarray(self.points, dtype=float)
        radii = np.asarray(self.radii, dtype=float)
        return [
            RoundCone(centre[i], centre[i + 1], radii[i], radii[i + 1])
            for i in range(len(centre) - 1)
        ]

    def __call__(self, points: Array) -> Array:
        return Union([(segment, 0.0) for segment in self._segments()])(points)

    def lower_bound(self, points: Array) -> Array:
        return np.min([s.lower_bound(points) for s in self._segments()], axis=0)

    def prune(self, centre: Array, radius: float) -> Shape:
        return Union([(segment, 0.0) for segment in self._segments()]).prune(centre, radius)


@dataclass
class Union(Shape):
    """Sequential smooth union: ((s0 U_k1 s1) U_k2 s2) ..."""

    parts: list[tuple[Shape, float]] = field(default_factory=list)
    use_bounds: bool = True  # pruned unions skip the per-point bound test

    def add(self, shape: Shape, k: float = 0.0) -> Union:
        self.parts.append((shape, k))
        return self

    def __call__(self, points: Array) -> Array:
        result = None
        for shape, k in self.parts:
            if result is None:
                result = np.array(shape(points), dtype=float)
                continue
            if not self.use_bounds:
                result = smin(result, shape(points), k)
                continue
            # exact skip: where the part's lower bound is >= result + k, smin returns result
            need = shape.lower_bound(points) < result + k
            if need.all():
                result = smin(result, shape(points), k)
            elif need.any():
                result[need] = smin(result[need], shape(points[need]), k)
        return result

    def lower_bound(self, points: Array) -> Array:
        k_max = max((k for _, k in self.parts), default=0.0)
        return np.min([s.lower_bound(points) for s, _ in self.parts], axis=0) - 0.25 * k_max

    def prune(self, centre: Array, radius: float) -> Shape:
        kept: list[tuple[Shape, float]] = []
        running = np.inf  # upper bound of the partial union at the centre
        for shape, k in self.parts:
            value = _at(shape, centre)
            # inside the ball: part >= value - r and partial union <= running + r
            if kept and value - radius >= running + radius + k:
                continue
            kept.append((shape.prune(centre, radius), k))
            running = min(running, value)
        if len(kept) == 1:
            return kept[0][0]
        return Union(kept, use_bounds=False)


@dataclass
class Subtract(Shape):
    base: Shape
    cutter: Shape
    k: float = 0.0

    def __call__(self, points: Array) -> Array:
        base = np.array(self.base(points), dtype=float)
        # the cutter matters only where -cutter > base - k, i.e. cutter < k - base
        need = self.cutter.lower_bound(points) < self.k - base
        if need.any():
            base[need] = smax(base[need], -self.cutter(points[need]), self.k)
        return base

    def lower_bound(self, points: Array) -> Array:
        return self.base.lower_bound(points)

    def prune(self, centre: Array, radius: float) -> Shape:
        # the cutter acts only where cutter < k - base
        if _at(self.cutter, centre) + _at(self.base, centre) >= self.k + 2 * radius:
            return self.base.prune(centre, radius)
        return Subtract(self.base.prune(centre, radius), self.cutter.prune(centre, radius), self.k)


@dataclass
class Intersect(Shape):
    base: Shape
    other: Shape
    k: float = 0.0

    def __call__(self, points: Array) -> Array:
        return smax(self.base(points), self.other(points), self.k)

    def lower_bound(self, points: Array) -> Array:
        return self.base.lower_bound(points)

    def prune(self, centre: Array, radius: float) -> Shape:
        # `other` acts only where other > base - k
        if _at(self.other, centre) + radius <= _at(self.base, centre) - radius - self.k:
            return self.base.prune(centre, radius)
        return Intersect(self.base.prune(centre, radius), self.other.prune(centre, radius), self.k)


@dataclass
class Transformed(Shape):
    """A shape built in a local frame, placed by an isometry world_from_local (4x4, det +-1)."""

    shape: Shape
    world_from_local: Array

    def __post_init__(self) -> None:
        m = np.asarray(self.world_from_local, dtype=float)
        rot = m[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-9):
            raise ValueError("Transformed needs an isometry (rotation or reflection)")
        self._rot = rot
        self._t = m[:3, 3]

    def __call__(self, points: Array) -> Array:
        return self.shape((points - self._t) @ self._rot)

    def lower_bound(self, points: Array) -> Array:
        return self.shape.lower_bound((points - self._t) @ self._rot)

    def prune(self, centre: Array, radius: float) -> Shape:
        local = (np.asarray(centre, dtype=float) - self._t) @ self._rot
        pruned = Transformed.__new__(Transformed)  # same isometry: skip the validation
        pruned.shape, pruned.world_from_local = (
            self.shape.prune(local, radius),
            self.world_from_local,
        )
        pruned._rot, pruned._t = self._rot, self._t
        return pruned


@dataclass
class Offset(Shape):
    """The shape grown outward by `distance` mm (shrunk for a negative one): f(p) - distance.
    A constant shift keeps a 1-Lipschitz field 1-Lipschitz."""

    shape: Shape
    distance: float

    def __call__(self, points: Array) -> Array:
        return self.shape(points) - self.distance

    def lower_bound(self, points: Array) -> Array:
        return self.shape.lower_bound(points) - self.distance

    def prune(self, centre: Array, radius: float) -> Shape:
        return Offset(self.shape.prune(centre, radius), self.distance)


@dataclass
class Box(Shape):
    """Exact SDF of an axis-aligned box [lo, hi]."""

    lo: Sequence[float]
    hi: Sequence[float]

    def __call__(self, points: Array) -> Array:
        centre = (np.asarray(self.lo) + np.asarray(self.hi)) / 2
        half = (np.asarray(self.hi) - np.asarray(self.lo)) / 2
        q = np.abs(points - centre) - half
        return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


@dataclass(frozen=True)
class Grid:
    """An axis-aligned sampling grid in patient mm: node (i,j,k) at origin + (i,j,k) * spacing."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    @classmethod
    def covering(cls, lo: Array, hi: Array, spacing: Sequence[float]) -> Grid:
        spacing_arr = np.asarray(spacing, dtype=float)
        lo = np.asarray(lo, dtype=float)
        n = np.ceil((np.asarray(hi, dtype=float) - lo) / spacing_arr).astype(int) + 1
        return cls(tuple(lo.tolist()), tuple(spacing_arr.tolist()), tuple(int(v) for v in n))

    @property
    def affine(self) -> Array:
        a = np.diag([*self.spacing, 1.0])
        a[:3, 3] = self.origin
        return a

    def points(self, i: Array, j: Array, k: Array) -> Array:
        """Patient coordinates of index arrays (broadcast, flattened to (N, 3))."""
        idx = np.stack(np.broadcast_arrays(i, j, k), axis=-1).reshape(-1, 3)
        return np.asarray(self.origin) + idx * np.asarray(self.spacing)


def sample_dense(sdf: SdfFunction, grid: Grid, chunk: int = 2_000_000) -> Array:
    """Naive reference: evaluate at every node (used by the benchmark as the peer)."""
    ii, jj, kk = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    flat = grid.points(ii, jj, kk)
    out = np.empty(len(flat), dtype=np.float32)
    for start in range(0, len(flat), chunk):
        out[start : start + chunk] = sdf(flat[start : start + chunk])
    return out.reshape(grid.shape)


SUPER_BLOCK = 4  # blocks per super-block edge for pruning


def sample_narrow_band(
    sdf: SdfFunction,
    grid: Grid,
    band_inside: float = 0.0,
    band_outside: float = 0.0,
    block: int = 6,
) -> Array:
    """Evaluate `sdf` exactly wherever -band_inside - r < f < band_outside + r may hold.

    The grid is cut into block^3 cells; the SDF is evaluated once at each cell centre and the
    whole cell is filled with that value when (1-Lipschitz) it cannot reach the band. Values
    outside the band therefore keep the correct sign and a magnitude beyond the band.
    """
    shape = np.asarray(grid.shape)
    spacing = np.asarray(grid.spacing)
    if isinstance(sdf, Shape):  # drop parts that cannot reach the grid at all (exact)
        extent = (shape - 1) * spacing
        sdf = sdf.prune(
            np.asarray(grid.origin) + extent / 2, float(np.linalg.norm(extent)) / 2 + 1e-6
        )
    n_blocks = -(-shape // block)
    bi, bj, bk = np.meshgrid(*[np.arange(n) for n in n_blocks], indexing="ij")
    lo = np.stack([bi, bj, bk], axis=-1).reshape(-1, 3) * block
    hi = np.minimum(lo + block, shape) - 1
    centres = np.asarray(grid.origin) + (lo + hi) * 0.5 * spacing
    half_diag = np.linalg.norm((hi - lo) * 0.5 * spacing, axis=1)
    centre_values = sdf(centres)
    in_band = (centre_values > -band_inside - half_diag) & (
        centre_values < band_outside + half_diag
    )

    # fill every block with its centre value (one broadcast pass), then overwrite band blocks
    padded = np.empty(tuple(n_blocks * block), dtype=np.float32)
    view = padded.reshape(n_blocks[0], block, n_blocks[1], block, n_blocks[2], block)
    view[...] = centre_values.reshape(n_blocks[0], 1, n_blocks[1], 1, n_blocks[2], 1)
    out = padded[: shape[0], : shape[1], : shape[2]]
    band_lo = lo[in_band]
    if len(band_lo) == 0:
        return out
    offs = np.stack(np.meshgrid(*[np.arange(block)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = (band_lo[:, None, :] + offs[None, :, :]).reshape(-1, 3)
    idx = idx[np.all(idx < shape, axis=1)]
    origin = np.asarray(grid.origin)
    if not isinstance(sdf, Shape):
        out[idx[:, 0], idx[:, 1], idx[:, 2]] = sdf(origin + idx * spacing)
        return out
    # group band voxels into super-blocks and evaluate each with a pruned shape
    super_id = idx // (block * SUPER_BLOCK)
    keys = np.ravel_multi_index(super_id.T, tuple(super_id.max(axis=0) + 1))
    order = np.argsort(keys, kind="stable")
    idx, keys = idx[order], keys[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for part in np.split(idx, bounds):
        lo_i, hi_i = part.min(axis=0), part.max(axis=0)
        centre = origin + (lo_i + hi_i) * 0.5 * spacing
        radius = float(np.linalg.norm((hi_i - lo_i) * 0.5 * spacing)) + 1e-6
        values = sdf.prune(centre, radius)(origin + part * spacing)
        out[part[:, 0], part[:, 1], part[:, 2]] = values
    return out


def rotation_about_axis(axis: Sequence[float], angle_deg: float) -> Array:
    """Right-handed rotation matrix (Rodrigues)."""
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    t = np.radians(angle_deg)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def rigid(rotation: Array | None = None, translation: Sequence[float] | None = None) -> Array:
    m = np.eye(4)
    if rotation is not None:
        m[:3, :3] = rotation
    if translation is not None:
        m[:3, 3] = translation
    return m


def rotation_about_point(axis: Sequence[float], angle_deg: float, point: Sequence[float]) -> Array:
    """4x4 rotation about an axis through `point`."""
    r = rotation_about_axis(axis, angle_deg)
    p = np.asarray(point, dtype=float)
    return rigid(r, p - r @ p)


def apply(matrix: Array, points: Array) -> Array:
    pts = np.asarray(points, dtype=float)
    return pts @ matrix[:3, :3].T + matrix[:3, 3]
