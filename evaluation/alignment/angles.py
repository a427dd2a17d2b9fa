"""Alignment angles from landmarks. Degrees; negative mHKA/aHKA = varus.

Definitions (all with directed vectors, so values above 90 stay above 90):
* LDFA: lateral angle between the femoral mechanical axis (knee -> hip) and the distal
  femoral joint line (bitangent), in the femoral frontal plane.
* MPTA: medial angle between the tibial mechanical axis (knee -> ankle) and the tibial
  joint line (plateau plane within the tibial frontal plane).
* mHKA: varus/valgus between the femoral and tibial mechanical axes about the femoral
  flexion-extension axis k (Grood-Suntay joint coordinate system): each axis's angle to the
  plane perpendicular to k, femur minus tibia. It equals the frontal-plane angle in
  extension and does not change when the knee flexes about k.
* aHKA = MPTA - LDFA; JLO = MPTA + LDFA; JLCA = tibial minus femoral joint-line angle in
  the femoral frontal plane (> 0 opens laterally), so mHKA ~ aHKA - JLCA.
* Posterior tibial slope: plateau plane against the plane perpendicular to the tibial
  mechanical axis, in the tibial sagittal plane (> 0 = posterior lower).
* Femoral anatomic-mechanical angle: shaft axis against the mechanical axis in the femoral
  frontal plane (> 0 = shaft top lateral, i.e. valgus).
"""

from __future__ import annotations

import numpy as np

from .cpak import classify
from .frames import Array, unit
from .landmarks import KneeLandmarks, LandmarkError, MeshData, shaft_axis

DEPENDS_ON_HIP = ("mhka", "ldfa", "ahka", "jlo", "cpak", "cpak_boundary_distance")
DEPENDS_ON_ANKLE = ("mhka", "mpta", "ahka", "jlo", "cpak", "cpak_boundary_distance", "slope")


def _deg_asin(x: float) -> float:
    return float(np.degrees(np.arcsin(np.clip(x, -1.0, 1.0))))


def mechanical_axes(lm: KneeLandmarks) -> tuple[Array, Array]:
    """Distal-pointing femoral and tibial mechanical axes (fallback: frame superior axes)."""
    hip, ankle = lm.points.get("hip_centre"), lm.points.get("ankle_centre")
    knee_f, knee_t = lm.point("femoral_knee_centre"), lm.point("tibial_knee_centre")
    d_f = unit(knee_f - hip) if hip is not None else -lm.femur_frame.superior
    d_t = unit(ankle - knee_t) if ankle is not None else -lm.tibia_frame.superior
    return d_f, d_t


def mhka_about_axis(d_femur: Array, d_tibia: Array, medial_axis: Array) -> float:
    """Grood-Suntay varus/valgus: femur minus tibia angle to the plane normal to the axis."""
    k = unit(medial_axis)
    return _deg_asin(float(d_femur @ k)) - _deg_asin(float(d_tibia @ k))


def ldfa(lm: KneeLandmarks) -> float:
    frame = lm.femur_frame
    med, lat = (
        frame.frontal(lm.point("medial_distal_condyle"))[0],
        frame.frontal(lm.point("lateral_distal_condyle"))[0],
    )
    t = lat - med  # towards lateral, (medial, superior) coordinates
    return float(np.degrees(np.arctan2(abs(t[0]), t[1])))


def tibial_joint_line(lm: KneeLandmarks) -> Array:
    """Medially pointing direction of the plateau plane within the tibial frontal plane."""
    d = unit(np.cross(lm.plateau.normal, lm.tibia_frame.anterior))
    return d if d @ lm.tibia_frame.medial > 0 else -d


def mpta(lm: KneeLandmarks) -> float:
    frame = lm.tibia_frame
    d = tibial_joint_line(lm)
    return float(np.degrees(np.arctan2(abs(d @ frame.medial), -(d @ frame.superior))))


def jlca(lm: KneeLandmarks) -> float:
    frame = lm.femur_frame
    fem = lm.point("medial_distal_condyle") - lm.point("lateral_distal_condyle")
    tib = tibial_joint_line(lm)
    a_f = np.degrees(np.arctan2(fem @ frame.superior, fem @ frame.medial))
    a_t = np.degrees(np.arctan2(tib @ frame.superior, tib @ frame.medial))
    return float(a_t - a_f)


def posterior_slope(lm: KneeLandmarks) -> float:
    frame = lm.tibia_frame
    d = unit(np.cross(lm.plateau.normal, frame.medial))
    d = d if d @ frame.anterior < 0 else -d  # posterior-pointing
    return -_deg_asin(float(d @ frame.superior))


def femoral_anatomic_mechanical(lm: KneeLandmarks, femur: MeshData) -> float | None:
    """Shaft axis between 25% and 70% of the femoral length, against the mechanical axis."""
    hip = lm.points.get("hip_centre")
    if hip is None:
        return None
    frame = lm.femur_frame
    knee = lm.point("femoral_knee_centre")
    length = float((hip - knee) @ frame.superior)
    base = float(knee @ frame.superior)
    try:
        a = shaft_axis(femur, frame.superior, base + 0.25 * length, base + 0.70 * length, 10.0)
    except LandmarkError:
        return None
    return float(np.degrees(np.arctan2(-(a @ frame.medial), a @ frame.superior)))


def compute_angles(lm: KneeLandmarks, femur: MeshData | None = None) -> dict[str, object]:
    """All angles, the CPAK class and the flags (approximate / missing) for one knee."""
    d_f, d_t = mechanical_axes(lm)
    values: dict[str, object] = {}
    values["mhka"] = mhka_about_axis(d_f, d_t, lm.flexion_axis.direction)
    values["ldfa"] = ldfa(lm)
    values["mpta"] = mpta(lm)
    values["ahka"] = values["mpta"] - values["ldfa"]
    values["jlo"] = values["mpta"] + values["ldfa"]
    values["jlca"] = jlca(lm)
    cpak = classify(values["ahka"], values["jlo"])
    values["cpak"] = cpak.type
    values["cpak_boundary_distance"] = cpak.boundary_distance_deg
    values["cpak_nearest_boundary"] = cpak.nearest_boundary
    values["slope"] = posterior_slope(lm)
    values["femoral_anatomic_mechanical"] = (
        femoral_anatomic_mechanical(lm, femur) if femur is not None else None
    )
    values["hka_closure_residual"] = values["mhka"] - (values["ahka"] - values["jlca"])
    if "patella_tilt_deg" in lm.extras:
        values["patella_tilt"] = lm.extras["patella_tilt_deg"]

    approximate: dict[str, str] = {}
    missing: dict[str, str] = {}
    if lm.points.get("hip_centre") is None:
        for key in DEPENDS_ON_HIP:
            approximate[key] = "no hip centre: femoral mechanical axis estimated from the shaft"
        missing["femoral_anatomic_mechanical"] = "needs the hip centre"
    if lm.points.get("ankle_centre") is None:
        for key in DEPENDS_ON_ANKLE:
            approximate[key] = (
                approximate.get(key, "") + ("; " if key in approximate else "")
            ) + "no ankle centre: tibial mechanical axis taken as the shaft axis"
    if femur is None and "femoral_anatomic_mechanical" not in missing:
        missing["femoral_anatomic_mechanical"] = "femur mesh data not supplied"
    return {"values": values, "approximate": approximate, "missing": missing}
