"""Checks of a produced guide, measured on the mesh (not on how it was built).

* slot: the two largest planar facets of the mesh that face each other across a gap
  narrower than 3 mm are the blade slot's walls; their mid-plane is compared with the plan
  (angle between normals; offset of the plan's plane at the slot centre and at the hinge);
* clearance: minimum signed distance (positive outside the bone) from the guide surface
  (all vertices plus area samples) to the bone it was designed on;
* pins: the whole pin (axis +- radius) stays below the joint line by a margin and clear of
  the osteotomy plane by a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh

from .design import GuideDesign, Pin, PlanGeometry
from .errors import GuideError
from .geometry import BoneQuery

Array = np.ndarray
SLOT_ANGLE_TOL_DEG = 0.5
SLOT_OFFSET_TOL_MM = 0.5
CLEARANCE_TOL_MM = 0.05


@dataclass(frozen=True)
class MeasuredSlot:
    point: Array  # centre of the slot's mid-plane patch
    normal: Array  # unit, proximal
    width_mm: float
    wall_area_mm2: float


def _plane_fit(points: Array) -> tuple[Array, Array]:
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    return centre, vt[2]


def measure_slot(mesh: trimesh.Trimesh, max_gap_mm: float = 3.0) -> MeasuredSlot:
    """Mid-plane of the widest pair of facing planar walls less than `max_gap_mm` apart."""
    facets = mesh.facets
    if len(facets) == 0:
        raise GuideError("the guide has no planar faces: no slot found")
    areas = np.asarray(mesh.facets_area)
    order = np.argsort(areas)[::-1][:40]
    walls = []
    for i in order:
        vertices = mesh.vertices[np.unique(mesh.faces[facets[i]])]
        centre, normal = _plane_fit(vertices)
        if normal @ mesh.facets_normal[i] < 0:
            normal = -normal  # outward, as the facet faces
        walls.append((i, centre, normal, vertices))
    best = None
    for a in range(len(walls)):
        for b in range(a + 1, len(walls)):
            ia, ca, na, va = walls[a]
            ib, cb, nb, vb = walls[b]
            if na @ nb > -0.999:
                continue
            gap = (cb - ca) @ na  # b lies in front of a's outward normal
            if not 0.05 < gap < max_gap_mm or (ca - cb) @ nb <= 0:
                continue
            score = min(areas[ia], areas[ib])
            if best is None or score > best[0]:
                best = (score, va, na, vb, nb, gap)
    if best is None:
        raise GuideError("no pair of facing slot walls found on the guide")
    _, va, na, vb, nb, gap = best
    normal = na - nb
    normal /= np.linalg.norm(normal)
    centre = 0.5 * (va.mean(axis=0) + vb.mean(axis=0))
    return MeasuredSlot(point=centre, normal=normal, width_mm=float(gap), wall_area_mm2=best[0])


def slot_vs_plan(slot: MeasuredSlot, pg: PlanGeometry) -> dict[str, float]:
    normal = slot.normal if slot.normal @ pg.plane_normal >= 0 else -slot.normal
    cosine = float(np.clip(normal @ pg.plane_normal, -1.0, 1.0))
    angle = math.degrees(math.acos(cosine))
    offset_centre = float((slot.point - pg.plane_point) @ pg.plane_normal)
    offset_hinge = float((pg.hinge - slot.point) @ normal)
    return {
        "slot_angle_deg": angle,
        "slot_offset_mm": abs(offset_centre),
        "slot_offset_at_hinge_mm": abs(offset_hinge),
        "slot_width_mm": slot.width_mm,
        "slot_wall_area_mm2": slot.wall_area_mm2,
        "slot_centre": slot.point.tolist(),
        "slot_normal": normal.tolist(),
    }


def min_clearance(mesh: trimesh.Trimesh, bone: BoneQuery, samples: int = 20000) -> float:
    points, _ = trimesh.sample.sample_surface(mesh, samples, seed=0)
    points = np.vstack([mesh.vertices, points])
    return float(bone.signed_distance(points).min())


def pin_checks(pin: Pin, pg: PlanGeometry, slot_width_mm: float) -> dict[str, object]:
    r = pin.diameter_mm / 2
    ends = np.vstack([pin.entry, pin.tip])
    heights = pg.height(ends)
    offsets = pg.plane_offset(ends)
    return {
        **pin.to_dict(),
        "below_joint_mm": float(pg.joint_height - heights.max() - r),
        "clear_of_slot_mm": float(np.abs(offsets).min() - r - slot_width_mm / 2)
        if np.all(np.sign(offsets) == np.sign(offsets[0]))
        else -1.0,
    }


def check_guide(design: GuideDesign, bone_mesh: trimesh.Trimesh) -> dict[str, object]:
    """Measured checks and pass/fail flags for a designed guide on its design bone."""
    mesh = design.mesh
    params = design.params
    slot = slot_vs_plan(measure_slot(mesh), design.plan)
    clearance = min_clearance(mesh, BoneQuery(bone_mesh))
    pins = [pin_checks(p, design.plan, params.slot_width_mm) for p in design.pins]
    passed = {
        "watertight": bool(mesh.is_watertight and mesh.is_volume),
        "slot_angle": slot["slot_angle_deg"] <= SLOT_ANGLE_TOL_DEG,
        "slot_offset": max(slot["slot_offset_mm"], slot["slot_offset_at_hinge_mm"])
        <= SLOT_OFFSET_TOL_MM,
        "clearance": clearance >= params.clearance_mm - CLEARANCE_TOL_MM,
        "pins_below_joint": all(p["below_joint_mm"] >= params.joint_margin_mm for p in pins),
        "pins_clear_of_slot": all(p["clear_of_slot_mm"] >= params.slot_margin_mm for p in pins),
    }
    return {
        **slot,
        "min_clearance_mm": clearance,
        "clearance_target_mm": params.clearance_mm,
        "pins": pins,
        "checks": passed,
        "ok": all(passed.values()),
    }
