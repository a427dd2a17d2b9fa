"""Inside/outside by exact ray parity, and volume Dice / IoU on a shared voxel grid.

One kernel serves both: :func:`_ray_hits` finds, for query positions in the plane normal to a
coordinate axis, every triangle the axis-parallel line through the position crosses, and the
depth of the crossing. It is exact in the decisions that matter:

* the 2D edge functions are evaluated with the edge's end points in a canonical
  (lexicographic) order, so two triangles sharing an edge compute bitwise-opposite values;
* a position exactly on a projected edge or vertex is resolved by symbolic perturbation
  (the position moved by (eps, eps^2)), the "top-left" rule of rasterisers: a line through a
  shared edge or vertex is counted once, never twice or not at all.

Inside tests (:func:`inside`) count the crossings beyond the point along one axis (even-odd
rule; the axis with the smallest shadow of the mesh, for speed). With the exact tie rule a
ray through an edge or a vertex counts correctly, the classic failure of ray parity, and
self-intersections resolve by the even-odd rule; holes cannot be resolved by any ray, so
open meshes are refused before.

Volumes never become dense voxel arrays: :func:`column_events` keeps, per lattice column, the
first voxel past each crossing (sorted), and :func:`overlap_counts` adds up the stretches
between consecutive events in which both meshes (and the ROI slab) are inside. Signs of
surface points mostly come from the same events (:func:`signs_outside`).

Both need closed (watertight) meshes; the callers check that first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .errors import ParameterError

_OTHER_AXES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}
MAX_GRID_SPACING = 0.25  # mm


@dataclass(frozen=True)
class _ProjectedTriangles:
    """Triangles seen along one axis: 2D edge data for the parity kernel."""

    lo_u: np.ndarray  # (m, 3) canonical start of each edge (opposite vertex 2, 0, 1)
    lo_v: np.ndarray
    fdu: np.ndarray  # (m, 3) canonical edge vectors, negated where needed to make the
    fdv: np.ndarray  # edge functions of a counter-clockwise triangle positive inside
    tie_inside: np.ndarray  # (m, 3) bool: does a point exactly on this edge count as inside
    depth: np.ndarray  # (m, 3) vertex coordinates along the axis
    box: np.ndarray  # (m, 4) umin, umax, vmin, vmax


def _project(vertices: np.ndarray, faces: np.ndarray, axis: int) -> _ProjectedTriangles:
    iu, iv = _OTHER_AXES[axis]
    u = np.ascontiguousarray(vertices[:, iu])
    v = np.ascontiguousarray(vertices[:, iv])
    faces = np.asarray(faces, dtype=np.int64)
    # Edge k runs from vertex k+1 to vertex k+2 (the edge opposite vertex k), so the edge
    # function of edge k is the barycentric weight of vertex k.
    start = faces[:, [1, 2, 0]]
    end = faces[:, [2, 0, 1]]
    u0, v0, u1, v1 = u[start], v[start], u[end], v[end]
    swap = (u0 > u1) | ((u0 == u1) & (v0 > v1))
    lo_u = np.where(swap, u1, u0)
    lo_v = np.where(swap, v1, v0)
    du = np.abs(u1 - u0)  # = hi_u - lo_u, bitwise, since lo_u <= hi_u
    dv = v1 - v0
    np.negative(dv, out=dv, where=swap)  # = hi_v - lo_v, bitwise
    sign = np.where(swap, -1.0, 1.0)  # edge function in the original direction = sign * canonical
    # Twice the signed projected area: edge 2 (vertex 0 -> 1) evaluated at vertex 2.
    c = faces[:, 2]
    area2 = sign[:, 2] * (du[:, 2] * (v[c] - lo_v[:, 2]) - dv[:, 2] * (u[c] - lo_u[:, 2]))
    keep = area2 != 0
    flip = sign * np.sign(area2)[:, None]
    fdu, fdv = du * flip, dv * flip
    # Traversal direction of each edge in counter-clockwise order is (fdu, fdv); a point on
    # the edge is inside when the perturbed point p + (eps, eps^2) is: fdv < 0, or fdv == 0
    # and fdu > 0.
    tie_inside = (fdv < 0) | ((fdv == 0) & (fdu > 0))
    box = np.stack([u0.min(1), u0.max(1), v0.min(1), v0.max(1)], axis=1)
    projected = _ProjectedTriangles(
        lo_u=lo_u,
        lo_v=lo_v,
        fdu=fdu,
        fdv=fdv,
        tie_inside=tie_inside,
        depth=vertices[:, axis][faces],
        box=box,
    )
    if keep.all():
        return projected
    return _ProjectedTriangles(
        **{k: getattr(projected, k)[keep] for k in projected.__dataclass_fields__}
    )


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts c_i: (owner index repeated c_i times, 0..c_i-1 within each owner)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum())) - starts[owner]


def _ray_hits(
    proj: _ProjectedTriangles,
    qu: np.ndarray,
    qv: np.ndarray,
    cell: float,
    origin: tuple[float, float],
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """All (query index, crossing depth) pairs for lines through (qu, qv) along the axis.

    Queries are binned on a 2D grid (cell size ``cell``, lower corner ``origin``, ``shape``
    cells); a triangle is tested against the queries of every cell its 2D box touches.
    """
    nu, nv = shape
    qcell_u = np.clip(np.floor((qu - origin[0]) / cell).astype(np.int64), 0, nu - 1)
    qcell_v = np.clip(np.floor((qv - origin[1]) / cell).astype(np.int64), 0, nv - 1)
    qcell = qcell_u * nv + qcell_v
    order = np.argsort(qcell, kind="stable")
    cell_start = np.searchsorted(qcell[order], np.arange(nu * nv + 1))
    cell_count = np.diff(cell_start)

    box = proj.box
    cu0 = np.floor((box[:, 0] - origin[0]) / cell).astype(np.int64)
    cu1 = np.floor((box[:, 1] - origin[0]) / cell).astype(np.int64)
    cv0 = np.floor((box[:, 2] - origin[1]) / cell).astype(np.int64)
    cv1 = np.floor((box[:, 3] - origin[1]) / cell).astype(np.int64)
    cu0, cv0 = np.maximum(cu0, 0), np.maximum(cv0, 0)
    cu1, cv1 = np.minimum(cu1, nu - 1), np.minimum(cv1, nv - 1)
    # Only triangles with a query in their box: count queries per box with a summed-area
    # table, so sparse queries do not pay for every triangle of the mesh.
    table = np.zeros((nu + 1, nv + 1), dtype=np.int64)
    table[1:, 1:] = cell_count.reshape(nu, nv).cumsum(0).cumsum(1)
    ok = (cu0 <= cu1) & (cv0 <= cv1)
    a0, a1 = np.where(ok, cu0, 0), np.where(ok, cu1 + 1, 0)
    b0, b1 = np.where(ok, cv0, 0), np.where(ok, cv1 + 1, 0)
    tri = np.flatnonzero((table[a1, b1] - table[a0, b1] - table[a1, b0] + table[a0, b0]) > 0)
    cu0, cu1, cv0, cv1 = cu0[tri], cu1[tri], cv0[tri], cv1[tri]
    width = cv1 - cv0 + 1
    owner, k = _expand((cu1 - cu0 + 1) * width)
    cells = (cu0[owner] + k // width[owner]) * nv + (cv0[owner] + k % width[owner])
    owner = tri[owner]
    per_pair = cell_count[cells]
    pair, j = _expand(per_pair)
    t_idx = owner[pair]
    q_idx = order[cell_start[cells[pair]] + j]
    pu = qu[q_idx]
    pv = qv[q_idx]
    box = proj.box[t_idx]
    near = (pu >= box[:, 0]) & (pu <= box[:, 1]) & (pv >= box[:, 2]) & (pv <= box[:, 3])
    return _exact_hits(proj, t_idx[near], q_idx[near], pu[near], pv[near])


def _exact_hits(proj: _ProjectedTriangles, t_idx, q_idx, pu, pv) -> tuple[np.ndarray, np.ndarray]:
    """Keep the candidate (triangle, query) pairs whose line crosses the triangle; depths."""
    pu, pv = pu[:, None], pv[:, None]
    e = proj.fdu[t_idx] * (pv - proj.lo_v[t_idx]) - proj.fdv[t_idx] * (pu - proj.lo_u[t_idx])
    inside = np.all((e > 0) | ((e == 0) & proj.tie_inside[t_idx]), axis=1)
    e = e[inside]
    t_idx = t_idx[inside]
    depth = np.einsum("ij,ij->i", e, proj.depth[t_idx]) / e.sum(axis=1)
    return q_idx[inside], depth


def _lattice_hits(
    proj: _ProjectedTriangles, lattice: Lattice, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """(column id, depth) of every crossing of the lattice's columns along ``axis``.

    Candidates are only the columns whose centre lies in a triangle's 2D box (widened by
    1e-9 voxel against rounding), so no pair is wasted on a neighbouring cell.
    """
    iu, iv = _OTHER_AXES[axis]
    nu, nv = lattice.shape[iu], lattice.shape[iv]
    h = lattice.spacing
    ou, ov = lattice.origin[iu], lattice.origin[iv]
    box = proj.box
    cu0 = np.maximum(np.ceil((box[:, 0] - ou) / h - 0.5 - 1e-9).astype(np.int64), 0)
    cu1 = np.minimum(np.floor((box[:, 1] - ou) / h - 0.5 + 1e-9).astype(np.int64), nu - 1)
    cv0 = np.maximum(np.ceil((box[:, 2] - ov) / h - 0.5 - 1e-9).astype(np.int64), 0)
    cv1 = np.minimum(np.floor((box[:, 3] - ov) / h - 0.5 + 1e-9).astype(np.int64), nv - 1)
    width = np.maximum(cv1 - cv0 + 1, 0)
    owner, k = _expand(np.maximum(cu1 - cu0 + 1, 0) * width)
    column_u = cu0[owner] + k // width[owner]
    column_v = cv0[owner] + k % width[owner]
    return _exact_hits(
        proj,
        owner,
        column_u * nv + column_v,
        lattice.centres(iu)[column_u],
        lattice.centres(iv)[column_v],
    )


def _query_grid(points_uv: np.ndarray, proj: _ProjectedTriangles):
    """A 2D binning grid for scattered queries: cells about the size of a triangle."""
    lo = points_uv.min(axis=0)
    hi = points_uv.max(axis=0)
    size = np.median(np.maximum(proj.box[:, 1] - proj.box[:, 0], proj.box[:, 3] - proj.box[:, 2]))
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-9))
    # Cells about half a triangle (fewer candidate pairs), but no more than ~16 per query.
    spread = np.sqrt((hi[0] - lo[0]) * (hi[1] - lo[1]) / (16.0 * len(points_uv)))
    cell = max(0.5 * float(size), extent / 4096.0, float(spread), 1e-9)
    shape = (int((hi[0] - lo[0]) // cell) + 1, int((hi[1] - lo[1]) // cell) + 1)
    return cell, (float(lo[0]), float(lo[1])), shape


def ray_axis(mesh: trimesh.Trimesh) -> int:
    """The coordinate axis along which the mesh casts the smallest shadow (fewest candidates)."""
    extent = np.ptp(np.asarray(mesh.vertices), axis=0)
    return int(np.argmin([extent[u] * extent[v] for u, v in (_OTHER_AXES[k] for k in range(3))]))


def inside(
    mesh: trimesh.Trimesh,
    points: np.ndarray,
    axis: int | None = None,
    projected: _ProjectedTriangles | None = None,
) -> np.ndarray:
    """Boolean (n,): is each point inside the closed mesh (even-odd parity along ``axis``)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    axis = ray_axis(mesh) if axis is None else axis
    iu, iv = _OTHER_AXES[axis]
    proj = (
        projected
        if projected is not None
        else _project(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), axis)
    )
    uv = points[:, [iu, iv]]
    cell, origin, shape = _query_grid(uv, proj)
    q, depth = _ray_hits(proj, uv[:, 0], uv[:, 1], cell, origin, shape)
    beyond = depth > points[q, axis]
    return (np.bincount(q[beyond], minlength=len(points)) & 1).astype(bool)


@dataclass(frozen=True)
class Lattice:
    """Axis-aligned voxel lattice: voxel (i, j, k) has its centre at origin + (index + 0.5) * spacing."""

    origin: np.ndarray  # (3,) lower corner, a multiple of spacing
    spacing: float
    shape: tuple[int, int, int]

    @classmethod
    def covering(cls, lower: np.ndarray, upper: np.ndarray, spacing: float) -> Lattice:
        """The lattice anchored at 0 (corners at multiples of ``spacing``) covering a box."""
        if not 0 < spacing <= MAX_GRID_SPACING:
            raise ParameterError(
                f"voxel spacing must be in (0, {MAX_GRID_SPACING}] mm, got {spacing} mm"
            )
        start = np.floor(np.asarray(lower) / spacing)
        stop = np.ceil(np.asarray(upper) / spacing)
        shape = tuple(int(n) for n in np.maximum(stop - start, 1))
        return cls(origin=start * spacing, spacing=float(spacing), shape=shape)  # type: ignore[arg-type]

    def centres(self, axis: int) -> np.ndarray:
        return self.origin[axis] + (np.arange(self.shape[axis]) + 0.5) * self.spacing


@dataclass(frozen=True)
class ColumnEvents:
    """Where one closed mesh's inside/outside parity flips along every lattice column.

    ``keys`` (sorted) encode column * (n + 1) + k, k being the first voxel along ``axis``
    whose centre lies past a crossing; the parity of the number of keys of a column up to
    and including k says whether voxel k of that column is inside the mesh.
    """

    lattice: Lattice
    axis: int
    keys: np.ndarray
    projected: _ProjectedTriangles  # kept for the ray-parity tests of single points

    @property
    def stride(self) -> int:
        return self.lattice.shape[self.axis] + 1

    def occupancy(self, index: np.ndarray) -> np.ndarray:
        """Inside the mesh? for voxel indices (n, 3) given as (i, j, k) along x, y, z."""
        iu, iv = _OTHER_AXES[self.axis]
        nv = self.lattice.shape[iv]
        start = (index[:, iu] * nv + index[:, iv]) * self.stride
        count = np.searchsorted(self.keys, start + index[:, self.axis], side="right")
        count -= np.searchsorted(self.keys, start, side="left")
        return (count & 1).astype(bool)


def column_events(mesh: trimesh.Trimesh, lattice: Lattice, axis: int) -> ColumnEvents:
    """Crossings of the closed mesh with every lattice column along ``axis`` (exact parity)."""
    iu, iv = _OTHER_AXES[axis]
    proj = _project(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), axis)
    nt = lattice.shape[axis]
    column, depth = _lattice_hits(proj, lattice, axis)
    # Voxel k counts a crossing when its centre lies beyond it; crossings before the lattice
    # flip the whole column (k = 0), crossings after it flip nothing.
    first = np.floor((depth - lattice.origin[axis]) / lattice.spacing - 0.5).astype(np.int64) + 1
    first = np.maximum(first, 0)
    keep = first < nt
    keys = np.sort(column[keep] * (nt + 1) + first[keep])
    return ColumnEvents(lattice=lattice, axis=axis, keys=keys, projected=proj)


def _slab_keys(lattice: Lattice, axis: int, slab) -> np.ndarray:
    """Column events of a slab (``slab.centre``, unit ``slab.axis``, ``below``, ``above``)."""
    iu, iv = _OTHER_AXES[axis]
    nu, nv, nt = lattice.shape[iu], lattice.shape[iv], lattice.shape[axis]
    a = np.asarray(slab.axis)
    rest = (
        a[iu] * np.repeat(lattice.centres(iu), nv)
        + a[iv] * np.tile(lattice.centres(iv), nu)
        - float(a @ np.asarray(slab.centre))
    )
    column = np.arange(nu * nv)
    if a[axis] == 0:
        inside_all = (rest >= -slab.below) & (rest <= slab.above)
        k_lo = np.where(inside_all, 0, nt)
        k_hi = np.full(nu * nv, nt - 1)
    else:
        # voxel k is inside when -below <= rest + a_t * t_k <= above, t_k its centre
        t_lo = (np.where(a[axis] > 0, -slab.below, slab.above) - rest) / a[axis]
        t_hi = (np.where(a[axis] > 0, slab.above, -slab.below) - rest) / a[axis]
        h, t0 = lattice.spacing, lattice.origin[axis]
        k_lo = np.maximum(np.ceil((t_lo - t0) / h - 0.5).astype(np.int64), 0)
        k_hi = np.minimum(np.floor((t_hi - t0) / h - 0.5).astype(np.int64), nt - 1)
    some = k_lo <= k_hi
    starts = column[some] * (nt + 1) + k_lo[some]
    ends = column[some] * (nt + 1) + k_hi[some] + 1
    ends = ends[k_hi[some] + 1 < nt]
    return np.sort(np.concatenate([starts, ends]))


def overlap_counts(a: ColumnEvents, b: ColumnEvents, slab=None) -> tuple[int, int, int]:
    """Voxel counts (|A|, |B|, |A and B|) within the optional slab, from column events.

    Works on the sorted crossings alone (a few per column), never on a dense voxel array:
    between two consecutive events of a column the three parities are constant, so each
    stretch adds its length to the counts it is inside of.
    """
    lattice, axis = a.lattice, a.axis
    nt = lattice.shape[axis]
    stride = nt + 1
    ncol = lattice.shape[_OTHER_AXES[axis][0]] * lattice.shape[_OTHER_AXES[axis][1]]
    region = np.arange(ncol) * stride if slab is None else _slab_keys(lattice, axis, slab)
    keys = np.concatenate([a.keys, b.keys, region])
    track = np.repeat(np.arange(3, dtype=np.int8), [len(a.keys), len(b.keys), len(region)])
    order = np.argsort(keys, kind="stable")
    keys, track = keys[order], track[order]
    column = keys // stride
    first_of_column = np.searchsorted(keys, column * stride, side="left")
    inside = []
    for j in range(3):
        cum = np.cumsum(track == j, dtype=np.int64)
        before = np.where(first_of_column > 0, cum[np.maximum(first_of_column - 1, 0)], 0)
        inside.append(((cum - before) & 1).astype(bool))
    end = np.where(
        np.r_[column[1:] == column[:-1], False], np.r_[keys[1:], 0], column * stride + nt
    )
    length = end - keys
    in_a, in_b, in_region = inside
    count_a = int(length[in_a & in_region].sum())
    count_b = int(length[in_b & in_region].sum())
    count_ab = int(length[in_a & in_b & in_region].sum())
    return count_a, count_b, count_ab


def signs_outside(
    mesh: trimesh.Trimesh, events: ColumnEvents, points: np.ndarray, distance: np.ndarray
) -> np.ndarray:
    """+1 outside / -1 inside the closed mesh for points whose distance to it is known.

    Exact and cheap: the centre c of the voxel holding p is at most sqrt(3)/2 voxel from p;
    when |p - c| < distance(p) the segment p-c cannot cross the surface, so p shares c's
    occupancy, read from the column events. The other points (closer to the surface than
    to their voxel centre) get their own ray-parity test.
    """
    lattice = events.lattice
    index = np.floor((points - lattice.origin) / lattice.spacing).astype(np.int64)
    index = np.clip(index, 0, np.asarray(lattice.shape) - 1)
    centre = lattice.origin + (index + 0.5) * lattice.spacing
    near = np.linalg.norm(points - centre, axis=1) >= distance
    result = events.occupancy(index)
    if np.any(near):
        result[near] = inside(mesh, points[near], axis=events.axis, projected=events.projected)
    return np.where(result, -1.0, 1.0)


def voxelise(mesh: trimesh.Trimesh, lattice: Lattice, axis: int = 2) -> np.ndarray:
    """Dense boolean occupancy (indexed [i, j, k] along x, y, z) of the lattice's voxel centres."""
    iu, iv = _OTHER_AXES[axis]
    events = column_events(mesh, lattice, axis)
    nt = lattice.shape[axis]
    toggles = np.zeros((lattice.shape[iu] * lattice.shape[iv], nt), dtype=np.uint8)
    np.add.at(toggles, (events.keys // (nt + 1), events.keys % (nt + 1)), 1)
    np.cumsum(toggles, axis=1, dtype=np.uint8, out=toggles)  # uint8 wraps: parity kept
    filled = (toggles & 1).view(bool).reshape(lattice.shape[iu], lattice.shape[iv], nt)
    return np.moveaxis(filled, (0, 1, 2), (iu, iv, axis))
