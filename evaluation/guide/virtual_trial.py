"""Virtual (printer-free) guide trial: per knee, design a guide on the CT tibia and one on the
X-ray tibia, seat both on the CT (reference) bone by rigid fit of their contact faces, and
compare the osteotomy planes they produce.

Quantities per knee (X-ray guide vs CT guide, both placed on the CT bone):
* ``angle_deg``: angle between the two achieved slot planes;
* ``offset_mm``: distance from the CT-placed slot plane to the X-ray-placed one at the CT
  plan's hinge point (signed along the proximal normal; summaries use |value|);
* ``hinge_shift_mm``: displacement of the X-ray guide's hinge point after placement relative
  to the CT plan's hinge;
* ``correction_error_deg``: achieved coronal correction (the X-ray plan's angle opened about
  the placed hinge axis, projected on the CT frame's anterior axis) minus the CT plan's;
* ``slope_change_deg``: the same opening's component about the CT frame's medial axis.
The slot planes are measured on the produced meshes (see :mod:`.checks`).

When no X-ray reconstruction exists, :func:`simulated_xray_model` gives a stand-in: the CT
model with a smooth random surface displacement. Label results made with it as simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh

from .checks import measure_slot
from .design import GuideParams, design_guide, load_plan, plan_geometry
from .geometry import BoneQuery
from .placement import contact_patch, fit_contact, perturbation

Array = np.ndarray
SIMULATED_XRAY_LABEL = "simulated X-ray model (CT model + smooth random surface error)"


@dataclass
class KneeInput:
    code: str
    ct_tibia: trimesh.Trimesh
    xray_tibia: trimesh.Trimesh
    ct_plan: object  # HTOPlan | dict | path
    xray_plan: object | None = None  # None: the CT plan is used for both guides
    xray_label: str = "X-ray reconstruction"


def simulated_xray_model(
    tibia: trimesh.Trimesh, seed: int, amplitude_mm: float = 0.8, wavelength_mm: float = 40.0
) -> trimesh.Trimesh:
    """CT model displaced along vertex normals by a smooth random field (RMS ~ amplitude/2).

    Same topology, so it stays watertight for displacements well below the feature size."""
    rng = np.random.default_rng(seed)
    v = np.asarray(tibia.vertices, float)
    field = np.zeros(len(v))
    for _ in range(6):
        k = rng.normal(size=3)
        k *= 2 * math.pi / wavelength_mm / np.linalg.norm(k)
        field += np.sin(v @ k + rng.uniform(0, 2 * math.pi))
    field *= amplitude_mm / math.sqrt(6) * math.sqrt(2) / 2
    moved = v + field[:, None] * np.asarray(tibia.vertex_normals)
    return trimesh.Trimesh(moved, np.asarray(tibia.faces), process=False)


def _placed_plane(mesh: trimesh.Trimesh, placement) -> tuple[Array, Array]:
    slot = measure_slot(mesh)
    return placement.apply(slot.point)[0], placement.rotate(slot.normal)


def run_knee(
    knee: KneeInput,
    params: GuideParams | None = None,
    start_seed: int | None = None,
    start_angle_deg: float = 2.0,
    start_shift_mm: float = 2.0,
) -> dict[str, object]:
    """Design both guides, seat both on the CT bone, compare the planes (see module doc).

    `start_seed`: None starts both fits at the design pose; else both start from the same
    random misplacement (a surgeon's first contact) and must find the seat themselves."""
    params = params or GuideParams()
    ct_plan = load_plan(knee.ct_plan)
    xray_plan = load_plan(knee.xray_plan) if knee.xray_plan is not None else ct_plan
    ct_pg = plan_geometry(ct_plan)
    ct_bone = BoneQuery(knee.ct_tibia)
    xray_bone = BoneQuery(knee.xray_tibia)
    guides = {
        "ct": design_guide(knee.ct_tibia, ct_plan, params, f"{knee.code}_ct"),
        "xray": design_guide(knee.xray_tibia, xray_plan, params, f"{knee.code}_xray"),
    }
    bones = {"ct": ct_bone, "xray": xray_bone}
    placed = {}
    for source, guide in guides.items():
        patch = contact_patch(guide.mesh, bones[source], params.clearance_mm)
        initial = None
        if start_seed is not None:
            initial = perturbation(start_seed, start_angle_deg, start_shift_mm, patch.mean(axis=0))
        fit = fit_contact(patch, ct_bone, params.clearance_mm, initial)
        point, normal = _placed_plane(guide.mesh, fit)
        normal = normal if normal @ ct_pg.plane_normal >= 0 else -normal
        hinge = fit.apply(guide.plan.hinge)[0]
        axis = fit.rotate(guide.plan.hinge_axis)
        placed[source] = {
            "fit": fit,
            "point": point,
            "normal": normal,
            "hinge": hinge,
            "axis": axis,
        }
    ct, xr = placed["ct"], placed["xray"]
    cosine = float(np.clip(ct["normal"] @ xr["normal"], -1, 1))
    theta_x = float(xray_plan.correction_angle_deg)
    frame = ct_pg.frame
    achieved = theta_x * float(xr["axis"] @ frame.anterior)
    return {
        "knee": knee.code,
        "xray_model": knee.xray_label,
        "plans": "separate" if knee.xray_plan is not None else "CT plan used for both guides",
        "angle_deg": math.degrees(math.acos(cosine)),
        "offset_mm": float((ct_pg.hinge - xr["point"]) @ xr["normal"])
        - float((ct_pg.hinge - ct["point"]) @ ct["normal"]),
        "hinge_shift_mm": float(np.linalg.norm(xr["hinge"] - ct_pg.hinge)),
        "ct_guide_angle_vs_plan_deg": math.degrees(
            math.acos(float(np.clip(ct["normal"] @ ct_pg.plane_normal, -1, 1)))
        ),
        "ct_guide_offset_vs_plan_mm": float((ct["point"] - ct_pg.plane_point) @ ct_pg.plane_normal),
        "planned_correction_deg": float(ct_plan.correction_angle_deg),
        "xray_planned_correction_deg": theta_x,
        "achieved_correction_deg": achieved,
        "correction_error_deg": achieved - float(ct_plan.correction_angle_deg),
        "slope_change_deg": theta_x * float(xr["axis"] @ frame.medial),
        "fit": {s: placed[s]["fit"].to_dict() for s in placed},
        "designs": guides,  # GuideDesign per source (not JSON: pop before serialising)
    }


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean, SD (n-1), max of |angle| and |offset| (and the other differences) over knees."""
    out: dict[str, dict[str, float]] = {}
    for key in ("angle_deg", "offset_mm", "hinge_shift_mm", "correction_error_deg"):
        values = np.abs(np.array([float(r[key]) for r in rows], dtype=float))
        if len(values) == 0:
            continue
        out[key] = {
            "n": int(len(values)),
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "max": float(values.max()),
        }
    return out


def run_trial(knees: list[KneeInput], params: GuideParams | None = None, **kwargs) -> dict:
    rows = [run_knee(k, params, **kwargs) for k in knees]
    for row in rows:
        row.pop("designs")
    return {"knees": rows, "summary": summarise(rows)}
