"""Patient-specific medial opening-wedge HTO cutting guide from a tibia mesh and an HTO plan.

Construction (all solids closed and manifold; booleans by manifold3d):

1. A grid in the tibial frame covers the anteromedial proximal tibia. At every node the
   exact signed distance to the bone is computed (BVH distance, even-odd inside test).
2. Two level sets are meshed by marching cubes: the *body block* (bone offset by
   clearance + body thickness, widened to a saw-capture rib along the osteotomy plane,
   limited to an anteromedial sector between the plateau margin and below the cut) and
   the *bone offset* ``{d < clearance}``.
3. guide = (block + drill sleeves) - bone offset - slot - pin holes. The slot is the
   osteotomy plane thickened to the blade width, ending at the hinge line, limited to
   the inner part of the sector so bridges hold the two halves of the guide together.

The contact face is therefore the bone surface offset by the clearance. Nothing here
measures itself: :mod:`.checks` measures the produced mesh independently of this recipe.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import manifold3d
import numpy as np
import trimesh
from scipy import ndimage
from skimage.measure import marching_cubes

from evaluation.alignment.errors import AlignmentError
from evaluation.alignment.hto import HTOPlan

from .errors import GuideError
from .geometry import BoneQuery, TibiaFrame, cylinder, oriented_box, to_manifold, to_trimesh, unit

Array = np.ndarray


@dataclass(frozen=True)
class GuideParams:
    clearance_mm: float = 0.2
    min_wall_mm: float = 3.0
    body_thickness_mm: float = 5.0
    slot_width_mm: float = 1.4  # 1.27 mm saw blade + play
    capture_mm: float = 8.0  # saw-capture rib height above the body
    sector_deg: tuple[float, float] = (-10.0, 60.0)  # 0 = medial, 90 = anterior
    bridge_deg: float = 9.0  # uncut guide at each end of the slot
    top_below_joint_mm: float = 6.0
    below_slot_mm: float = 14.0
    pin_diameter_mm: float = 2.5
    pin_offset_mm: float = 9.0  # pin axis above the osteotomy plane (parallel to it)
    pin_depth_mm: float = 30.0
    pin_angles_deg: tuple[float, float] = (8.0, 40.0)
    sleeve_length_mm: float = 10.0
    joint_margin_mm: float = 5.0
    slot_margin_mm: float = 3.0
    grid_mm: float = 0.5

    def validate(self) -> None:
        checks = {
            "clearance_mm": 0.0 <= self.clearance_mm <= 2.0,
            "min_wall_mm": 1.0 <= self.min_wall_mm <= 10.0,
            "body_thickness_mm": self.min_wall_mm <= self.body_thickness_mm <= 20.0,
            "slot_width_mm": 0.5 <= self.slot_width_mm <= 5.0,
            "pin_diameter_mm": 1.0 <= self.pin_diameter_mm <= 6.0,
            "grid_mm": 0.2 <= self.grid_mm <= 1.5,
            "pin_depth_mm": 5.0 <= self.pin_depth_mm <= 80.0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(float(value)):
                raise GuideError(f"guide parameter {name}={value} is out of range")
        lo, hi = self.sector_deg
        if not -90.0 <= lo < hi <= 150.0 or hi - lo < 2 * self.bridge_deg + 10:
            raise GuideError(f"guide sector {self.sector_deg} is too small or not anteromedial")
        if self.pin_offset_mm - self.pin_diameter_mm / 2 - self.slot_width_mm / 2 < 1.0:
            raise GuideError("pins would touch the slot: increase pin_offset_mm")


@dataclass(frozen=True)
class Pin:
    entry: Array  # on the bone surface
    direction: Array  # unit, into the bone
    depth_mm: float
    diameter_mm: float

    @property
    def tip(self) -> Array:
        return self.entry + self.depth_mm * self.direction

    def to_dict(self) -> dict[str, object]:
        return {
            "entry": self.entry.tolist(),
            "direction": self.direction.tolist(),
            "tip": self.tip.tolist(),
            "depth_mm": self.depth_mm,
            "diameter_mm": self.diameter_mm,
        }


@dataclass
class PlanGeometry:
    """What the guide needs from an HTO plan, in patient mm."""

    frame: TibiaFrame
    plane_point: Array
    plane_normal: Array  # unit, proximal
    hinge: Array
    hinge_axis: Array  # unit, in the plane
    cut_direction: Array  # unit, in the plane, from the hinge towards the medial cortex
    start: Array
    joint_height: float  # superior coordinate of the joint line in the frame
    side: str
    correction_deg: float
    gap_mm: float
    length_mm: float
    approximate: bool

    def height(self, points: Array) -> Array:
        return self.frame.coords(points)[:, 2]

    def plane_offset(self, points: Array) -> Array:
        return (np.atleast_2d(points) - self.plane_point) @ self.plane_normal


@dataclass
class GuideDesign:
    mesh: trimesh.Trimesh
    plan: PlanGeometry
    params: GuideParams
    pins: list[Pin]
    label: str
    timings_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "label": self.label,
            "params": asdict(self.params),
            "pins": [p.to_dict() for p in self.pins],
            "volume_mm3": float(self.mesh.volume),
            "triangles": len(self.mesh.faces),
            "timings_s": self.timings_s,
        }


# ------------------------------------------------------------------ inputs


def load_plan(plan: HTOPlan | dict | str) -> HTOPlan:
    try:
        if isinstance(plan, HTOPlan):
            return plan
        if isinstance(plan, dict):
            return HTOPlan.from_dict(plan)
        return HTOPlan.load(plan)
    except (AlignmentError, TypeError) as exc:
        raise GuideError(f"bad HTO plan: {exc}") from exc


def plan_geometry(plan: HTOPlan) -> PlanGeometry:
    """Frame, osteotomy plane and hinge from a plan (the plan's tibial frame when present)."""
    normal = unit(plan.osteotomy_plane_normal)
    hinge = np.asarray(plan.hinge_point, float)
    start = np.asarray(plan.osteotomy_start, float)
    axis = unit(
        np.asarray(plan.hinge_axis, float) - (np.asarray(plan.hinge_axis) @ normal) * normal
    )
    fr = plan.frame or {}
    if all(k in fr for k in ("origin", "superior", "anterior", "medial")):
        frame = TibiaFrame(
            np.asarray(fr["origin"], float),
            unit(fr["medial"]),
            unit(fr["anterior"]),
            unit(fr["superior"]),
        )
    else:  # rebuild from the plan: the hinge axis is anterior, the cut runs medially
        anterior = unit(plan.hinge_axis)
        medial = unit((start - hinge) - ((start - hinge) @ anterior) * anterior)
        superior = unit(np.cross(medial, anterior))
        superior = superior if superior @ normal > 0 else -superior
        medial = unit(np.cross(anterior, superior)) * np.sign(np.cross(anterior, superior) @ medial)
        frame = TibiaFrame(np.asarray(plan.target_point, float), medial, anterior, superior)
    cut = start - hinge
    cut_direction = unit(cut - (cut @ normal) * normal)
    if abs(normal @ frame.superior) < 0.5:
        raise GuideError("the plan's osteotomy plane is not roughly transverse")
    joint = float(frame.coords(np.asarray(plan.target_point, float))[0, 2])
    return PlanGeometry(
        frame=frame,
        plane_point=np.asarray(plan.osteotomy_plane_point, float),
        plane_normal=normal,
        hinge=hinge,
        hinge_axis=axis,
        cut_direction=cut_direction,
        start=start,
        joint_height=joint,
        side=plan.side,
        correction_deg=float(plan.correction_angle_deg),
        gap_mm=float(plan.gap_height_mm),
        length_mm=float(plan.osteotomy_length_mm),
        approximate=bool(plan.approximate),
    )


def check_tibia(tibia: trimesh.Trimesh) -> None:
    if not isinstance(tibia, trimesh.Trimesh) or len(tibia.faces) < 100:
        raise GuideError("the tibia mesh holds too few triangles")
    if not tibia.is_watertight:
        raise GuideError("the tibia mesh is not watertight (closed); repair it first")
    extent = float(np.max(tibia.extents))
    if not 40.0 <= extent <= 600.0:
        raise GuideError(f"the tibia is {extent:.1f} units long: expected millimetres")


def default_label(plan: PlanGeometry, case_code: str = "", source: str = "") -> str:
    parts = [p for p in ("HTO", case_code, source, plan.side, f"{plan.correction_deg:.1f}deg") if p]
    return "_".join(parts).replace(" ", "-")


# ------------------------------------------------------------------ level sets


@dataclass
class _Grid:
    lo: Array  # local (medial, anterior, superior) of node (0, 0, 0)
    spacing: float
    shape: tuple[int, int, int]

    def local_nodes(self) -> Array:
        axes = [self.lo[i] + self.spacing * np.arange(self.shape[i]) for i in range(3)]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)


def _sector_normals(params: GuideParams, shrink_deg: float = 0.0) -> tuple[Array, Array]:
    lo = math.radians(params.sector_deg[0] + shrink_deg)
    hi = math.radians(params.sector_deg[1] - shrink_deg)
    return np.array([-math.sin(lo), math.cos(lo)]), np.array([math.sin(hi), -math.cos(hi)])


def _grid_for(tibia: trimesh.Trimesh, pg: PlanGeometry, params: GuideParams) -> _Grid:
    local = pg.frame.coords(tibia.vertices)
    w = pg.plane_offset(tibia.vertices)
    top = pg.joint_height - params.top_below_joint_mm
    n_lo, n_hi = _sector_normals(params, -15.0)
    near = (
        (local[:, 2] <= top + 3)
        & (w >= -params.below_slot_mm - 3)
        & (local[:, :2] @ n_lo >= -5)
        & (local[:, :2] @ n_hi >= -5)
    )
    if near.sum() < 50:
        raise GuideError("the plan does not lie on this tibia (no bone in the anteromedial patch)")
    pad = params.clearance_mm + params.body_thickness_mm + params.capture_mm
    pad = max(pad, params.clearance_mm + params.body_thickness_mm + params.sleeve_length_mm) + 4
    pad = np.array([pad, pad, 6.0])
    lo = local[near].min(axis=0) - pad
    hi = local[near].max(axis=0) + pad
    h = params.grid_mm
    shape = tuple(int(math.ceil((hi[i] - lo[i]) / h)) + 1 for i in range(3))
    if int(np.prod(shape)) > 12_000_000:
        raise GuideError(f"guide grid {shape} too large: use a coarser grid_mm")
    return _Grid(lo, h, shape)  # type: ignore[arg-type]


def _signed(bone: BoneQuery, points: Array) -> Array:
    """Exact signed distance: sign from the closest face's normal where it is unambiguous,
    else from an even-odd inside test."""
    distance, closest, face = bone.closest(points)
    normals = np.asarray(bone.mesh.face_normals)[face]
    along = np.einsum("ij,ij->i", points - closest, normals)
    sign = np.where(along >= 0, 1.0, -1.0)
    unclear = np.abs(along) < 0.9 * distance
    if unclear.any():
        sign[unclear] = np.where(bone.inside(points[unclear]), -1.0, 1.0)
    return sign * distance


def _coarse_to_fine(
    bone: BoneQuery, pg: PlanGeometry, grid: _Grid, needs_exact
) -> tuple[Array, Array]:
    """Signed distances at the fine nodes, flat: (contact, smooth).

    `contact` is exact wherever `needs_exact(coarse_nearest, bound)` says the contact level
    set may pass (distance is 1-Lipschitz, so the nearest coarse node bounds it), else the
    nearest coarse value (right side of that level). `smooth` is the trilinear interpolation
    of the exact coarse grid (outer surfaces of the guide, where 0.05 mm do not matter).
    """
    factor = 3
    coarse = _Grid(grid.lo, grid.spacing * factor, tuple(s // factor + 2 for s in grid.shape))
    sd_coarse = _signed(bone, pg.frame.world(coarse.local_nodes())).reshape(coarse.shape)
    local = grid.local_nodes()
    position = (local - grid.lo) / coarse.spacing
    index = np.minimum(np.rint(position).astype(np.int64), np.array(coarse.shape) - 1)
    nearest = sd_coarse[index[:, 0], index[:, 1], index[:, 2]]
    smooth = ndimage.map_coordinates(sd_coarse, position.T, order=1, mode="nearest")
    bound = math.sqrt(3.0) * coarse.spacing / 2 + 1.2 * grid.spacing + 0.05
    exact = needs_exact(nearest, bound)
    contact = nearest.copy()
    contact[exact] = _signed(bone, pg.frame.world(local[exact]))
    return contact, smooth


def _mesh_level_set(field: Array, grid: _Grid, pg: PlanGeometry, name: str) -> trimesh.Trimesh:
    """Closed surface of {field > 0} (positive inside), closed at the grid boundary."""
    padded = np.pad(field, 1, constant_values=-1.0)
    if padded.max() <= 0:
        raise GuideError(f"{name}: empty level set (the plan and the tibia do not match)")
    verts, faces, _, _ = marching_cubes(padded, level=0.0, spacing=(grid.spacing,) * 3)
    local = verts - grid.spacing + grid.lo
    mesh = trimesh.Trimesh(pg.frame.world(local), faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


# ------------------------------------------------------------------ pins


def _pin(bone: BoneQuery, pg: PlanGeometry, params: GuideParams, angle_deg: float) -> Pin:
    fr = pg.frame
    phi = math.radians(angle_deg)
    radial = math.cos(phi) * fr.medial + math.sin(phi) * fr.anterior
    inward = -radial - (-radial @ pg.plane_normal) * pg.plane_normal
    direction = unit(inward)
    # start outside at 80 mm from the axis on the plane offset by pin_offset
    base = fr.origin + 80.0 * radial
    h = (params.pin_offset_mm - (base - pg.plane_point) @ pg.plane_normal) / (
        fr.superior @ pg.plane_normal
    )
    start = base + h * fr.superior
    steps = np.arange(0.0, 160.0, 0.05)
    points = start + steps[:, None] * direction
    inside = bone.inside(points)
    if not inside.any():
        raise GuideError(f"pin at {angle_deg:.0f} deg misses the tibia")
    entry = points[int(np.argmax(inside))]
    return Pin(entry, direction, params.pin_depth_mm, params.pin_diameter_mm)


# ------------------------------------------------------------------ the guide


def _slot(pg: PlanGeometry, params: GuideParams) -> manifold3d.Manifold:
    """Blade slab on the planned plane, from the hinge line medially, inside the sector."""
    in_plane = unit(np.cross(pg.plane_normal, pg.cut_direction))
    length, half_width = 150.0, 80.0
    slab = oriented_box(
        pg.hinge + pg.cut_direction * (length / 2),
        np.vstack([pg.cut_direction, in_plane, pg.plane_normal]),
        [length / 2, half_width, params.slot_width_mm / 2],
    )
    fr = pg.frame
    lo = math.radians(params.sector_deg[0] + params.bridge_deg)
    hi = math.radians(params.sector_deg[1] - params.bridge_deg)
    ring = [fr.origin]
    for phi in np.linspace(lo, hi, 9):
        ring.append(fr.origin + 200.0 * (math.cos(phi) * fr.medial + math.sin(phi) * fr.anterior))
    ring = np.array(ring)
    prism = np.vstack([ring - 150.0 * fr.superior, ring + 150.0 * fr.superior])
    wedge = manifold3d.Manifold.hull_points(prism.tolist())
    return slab ^ wedge


def design_guide(
    tibia: trimesh.Trimesh,
    plan: HTOPlan | dict | str,
    params: GuideParams | None = None,
    label: str | None = None,
) -> GuideDesign:
    """The guide solid (watertight, manifold) for `plan` on `tibia` (patient mm)."""
    params = params or GuideParams()
    params.validate()
    check_tibia(tibia)
    pg = plan_geometry(load_plan(plan))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    bone = BoneQuery(tibia)
    grid = _grid_for(tibia, pg, params)
    timings["grid_nodes"] = float(np.prod(grid.shape))
    pins = [_pin(bone, pg, params, a) for a in params.pin_angles_deg]
    local = grid.local_nodes()
    world = pg.frame.world(local)
    w = pg.plane_offset(world)
    n_lo, n_hi = _sector_normals(params)
    top = pg.joint_height - params.top_below_joint_mm
    sector = np.minimum.reduce(
        [top - local[:, 2], w + params.below_slot_mm, local[:, :2] @ n_lo, local[:, :2] @ n_hi]
    )
    c, t = params.clearance_mm, params.body_thickness_mm
    rib_half = params.slot_width_mm / 2 + params.min_wall_mm
    sleeve_r = params.pin_diameter_mm / 2 + params.min_wall_mm
    reach = c + t + params.sleeve_length_mm
    near_sleeve = np.zeros(len(world), dtype=bool)
    for pin in pins:
        rel = world - pin.entry
        along = rel @ pin.direction
        radial = np.linalg.norm(rel - along[:, None] * pin.direction, axis=1)
        near_sleeve |= (radial <= sleeve_r + 2.0) & (along >= -reach - 2.0) & (along <= 3.0)

    def needs_exact(nearest: Array, bound: float) -> Array:
        return ((sector > -bound - 3.0) | near_sleeve) & (np.abs(nearest - c) <= bound)

    sd_contact, sd_smooth = _coarse_to_fine(bone, pg, grid, needs_exact)
    timings["distance_field"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shell = c + t - sd_smooth
    rib = np.minimum(c + t + params.capture_mm - sd_smooth, rib_half - np.abs(w))
    body = np.minimum(np.maximum(shell, rib), sector).reshape(grid.shape)
    block = _mesh_level_set(body, grid, pg, "guide block")
    zone = np.maximum(sector + 3.0, np.where(near_sleeve, 1.0, -1.0))
    offset_field = np.minimum(c - sd_contact, zone).reshape(grid.shape)
    offset = _mesh_level_set(offset_field, grid, pg, "bone offset")
    timings["level_sets"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    solid = to_manifold(block, "guide block")
    for pin in pins:
        solid = solid + cylinder(
            pin.entry - reach * pin.direction, pin.entry + pin.direction, sleeve_r
        )
    solid = solid - to_manifold(offset, "bone offset")
    solid = solid - _slot(pg, params)
    for pin in pins:
        solid = solid - cylinder(
            pin.entry - (reach + 5.0) * pin.direction, pin.tip, params.pin_diameter_mm / 2
        )
    parts = solid.decompose()
    if not parts:
        raise GuideError("the guide came out empty")
    solid = max(parts, key=lambda p: p.volume())
    mesh = to_trimesh(solid)
    timings["booleans"] = time.perf_counter() - t0
    if not (mesh.is_watertight and mesh.is_volume):
        raise GuideError("the guide is not a closed manifold solid")
    return GuideDesign(
        mesh=mesh,
        plan=pg,
        params=params,
        pins=pins,
        label=label or default_label(pg),
        timings_s=timings,
    )


def print_tibia(tibia: trimesh.Trimesh, plan: HTOPlan | dict | str, keep_mm: float = 110.0):
    """The tibia cropped to its proximal `keep_mm` (below the joint line), closed and capped."""
    check_tibia(tibia)
    pg = plan_geometry(load_plan(plan))
    solid = to_manifold(tibia, "tibia")
    cut_height = pg.joint_height - keep_mm
    offset = float(pg.frame.origin @ pg.frame.superior + cut_height)
    cropped = solid.trim_by_plane(pg.frame.superior.tolist(), offset)
    if cropped.is_empty():
        raise GuideError("nothing of the tibia is left after cropping")
    parts = cropped.decompose()
    mesh = to_trimesh(max(parts, key=lambda p: p.volume()))
    if not (mesh.is_watertight and mesh.is_volume):
        raise GuideError("the cropped tibia is not a closed solid")
    return mesh
