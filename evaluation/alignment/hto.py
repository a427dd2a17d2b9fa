"""Medial opening-wedge high tibial osteotomy (HTO) planning.

Geometry is solved in the tibial frontal plane, coordinates (medial, superior) in mm:
* target point T at `target_fraction` (default 62.5 %, Fujisawa) of the plateau width from
  the medial margin, on the tibial joint line;
* Miniaci: rotate the ankle centre A about the hinge P (keeping |PA|) until it lies on the
  line hip centre -> T; the correction angle is the angle between A - P and A' - P;
* Dugdale (for comparison): angle at T between the line H -> T extended and T -> A;
* gap height for osteotomy length L: g = 2 L sin(theta / 2) (exact chord).
Sign: correction angles are positive when valgising (the ankle moves laterally), which is
what a medial opening wedge does; a negative value means no opening wedge is indicated.

The plan (`HTOPlan`) is a plain data object in patient mm with JSON round-trip; the
osteotomy plane contains the hinge axis, which is perpendicular to the tibial frontal plane
(a pure coronal correction that keeps the posterior slope).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import trimesh

from .errors import AlignmentError
from .frames import Array, Frame, unit
from .landmarks import KneeLandmarks, section_points

MPTA_WARNING_DEG = 95.0
JLO_WARNING_DEG = 183.0
ASSUMED_FEMUR_MM = 430.0  # only for knee-only FOV, flagged approximate
ASSUMED_TIBIA_MM = 350.0


@dataclass(frozen=True)
class HTOOptions:
    target_fraction: float = 0.625
    hinge_below_lateral_plateau_mm: float = 15.0
    hinge_from_lateral_cortex_mm: float = 10.0
    start_below_medial_plateau_mm: float = 37.5
    osteotomy_length_mm: float | None = None  # None: measured from start to hinge

    def validate(self) -> None:
        if not 0.0 < self.target_fraction < 1.0:
            raise AlignmentError(f"target_fraction must be in (0, 1), got {self.target_fraction}")
        for name in (
            "hinge_below_lateral_plateau_mm",
            "hinge_from_lateral_cortex_mm",
            "start_below_medial_plateau_mm",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.0 <= value <= 100.0:
                raise AlignmentError(f"{name} must be within 0..100 mm, got {value}")
        if self.osteotomy_length_mm is not None and not 5.0 <= self.osteotomy_length_mm <= 150:
            raise AlignmentError(
                f"osteotomy_length_mm must be within 5..150, got {self.osteotomy_length_mm}"
            )


@dataclass
class HTOPlan:
    """Medial opening-wedge plan; points and directions in patient mm."""

    side: str
    target_fraction: float
    target_point: list[float]
    hinge_point: list[float]
    hinge_axis: list[float]  # unit, anterior
    osteotomy_start: list[float]  # medial cortex entry
    osteotomy_plane_point: list[float]
    osteotomy_plane_normal: list[float]  # unit, pointing proximally
    osteotomy_length_mm: float
    correction_angle_deg: float  # Miniaci, > 0 = valgising opening
    dugdale_angle_deg: float
    gap_height_mm: float
    ankle_after: list[float]
    pre: dict[str, float]
    post: dict[str, float]
    approximate: bool = False
    warnings: list[str] = field(default_factory=list)
    frame: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HTOPlan:
        if not isinstance(data, dict):
            raise AlignmentError("an HTO plan must be a JSON object")
        names = {f.name for f in fields(cls)}
        required = names - {"approximate", "warnings", "frame"}
        missing = sorted(required - set(data))
        if missing:
            raise AlignmentError(f"HTO plan is missing fields: {missing}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise AlignmentError(f"HTO plan has unknown fields: {unknown}")
        plan = cls(**{k: data[k] for k in names if k in data})
        for name in ("target_point", "hinge_point", "hinge_axis", "osteotomy_plane_normal"):
            value = np.asarray(getattr(plan, name), dtype=float)
            if value.shape != (3,) or not np.isfinite(value).all():
                raise AlignmentError(f"HTO plan field {name} must be 3 finite numbers")
        return plan

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan as JSON atomically (temporary sibling, then rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(self.to_json())
            os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HTOPlan:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AlignmentError(f"cannot read HTO plan {path}: {exc}") from exc
        return cls.from_dict(data)


# ---------------------------------------------------------------- planar geometry


def _ccw(a: Array, b: Array) -> float:
    """Signed angle (deg) from 2D vector a to b, counter-clockwise positive."""
    return math.degrees(math.atan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1]))


def miniaci(hip: Array, ankle: Array, target: Array, hinge: Array) -> tuple[float, Array]:
    """Correction angle (deg, > 0 valgising) and the corrected ankle, in frontal 2D coords
    (medial, superior): A rotated about P onto the line H -> T, on the distal side."""
    h, a, t, p = (np.asarray(x, float) for x in (hip, ankle, target, hinge))
    radius = float(np.linalg.norm(a - p))
    w = t - h
    f = h - p
    # |f + s w|^2 = R^2
    qa, qb, qc = w @ w, 2 * (f @ w), f @ f - radius**2
    disc = qb * qb - 4 * qa * qc
    if qa < 1e-12 or disc < 0:
        raise AlignmentError("Miniaci: the hip-target line does not reach the ankle's circle")
    roots = [(-qb + sgn * math.sqrt(disc)) / (2 * qa) for sgn in (1.0, -1.0)]
    candidates = [h + s * w for s in roots]
    corrected = min(candidates, key=lambda q: float(np.linalg.norm(q - a)))
    return -_ccw(a - p, corrected - p), corrected


def dugdale(hip: Array, ankle: Array, target: Array) -> float:
    """Angle (deg, > 0 valgising needed) at T between H -> T extended and T -> A."""
    h, a, t = (np.asarray(x, float) for x in (hip, ankle, target))
    return _ccw(t - h, a - t)


def gap_height(length_mm: float, angle_deg: float) -> float:
    """Opening at the medial cortex of a wedge of `angle_deg` and leg `length_mm`."""
    return 2.0 * length_mm * math.sin(math.radians(angle_deg) / 2.0)


def rotate_about(point: Array, centre: Array, axis: Array, angle_deg: float) -> Array:
    """Rodrigues rotation of a 3D point about the line (centre, axis)."""
    k = unit(axis)
    v = np.asarray(point, float) - centre
    th = math.radians(angle_deg)
    rotated = v * math.cos(th) + np.cross(k, v) * math.sin(th) + k * (k @ v) * (1 - math.cos(th))
    return centre + rotated


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class HTOGeometry:
    """Inputs of the planner in patient mm (from meshes or constructed in tests)."""

    frame: Frame  # tibial frame (frontal plane = medial/superior)
    hip: Array
    ankle: Array
    femoral_knee: Array
    tibial_knee: Array
    medial_margin: Array
    lateral_margin: Array
    hinge: Array
    osteotomy_start: Array
    mpta: float
    ldfa: float
    mhka: float
    approximate: bool = False
    notes: tuple[str, ...] = ()


def plan_hto(geometry: HTOGeometry, options: HTOOptions | None = None) -> HTOPlan:
    """Medial opening-wedge plan (Miniaci) with Dugdale, gap height and post-op checks."""
    opts = options or HTOOptions()
    opts.validate()
    g = geometry
    fr = g.frame
    med2, lat2 = fr.frontal(g.medial_margin)[0], fr.frontal(g.lateral_margin)[0]
    target2 = med2 + opts.target_fraction * (lat2 - med2)
    target = g.medial_margin + opts.target_fraction * (g.lateral_margin - g.medial_margin)
    hip2, ankle2, hinge2 = (fr.frontal(x)[0] for x in (g.hip, g.ankle, g.hinge))
    angle, _ = miniaci(hip2, ankle2, target2, hinge2)
    dug = dugdale(hip2, ankle2, target2)

    # valgising = clockwise in (medial, superior): a negative turn about medial x superior
    ccw_axis = unit(np.cross(fr.medial, fr.superior))
    ankle_after = rotate_about(g.ankle, g.hinge, ccw_axis, -angle)
    cut = g.hinge - g.osteotomy_start
    length = (
        float(np.linalg.norm(cut))
        if opts.osteotomy_length_mm is None
        else float(opts.osteotomy_length_mm)
    )
    normal = unit(np.cross(cut, fr.anterior))
    normal = normal if normal @ fr.superior > 0 else -normal

    knee2 = fr.frontal(g.tibial_knee)[0]
    tib_before, tib_after = ankle2 - knee2, fr.frontal(ankle_after)[0] - knee2
    mhka_post = g.mhka - _ccw(tib_before, tib_after)
    mpta_post = g.mpta + angle
    jlo_post = mpta_post + g.ldfa
    warnings = list(g.notes)
    if angle <= 0:
        warnings.append(
            f"correction {angle:.1f} deg: the weight-bearing line already passes at or lateral "
            f"to {100 * opts.target_fraction:.1f}% of the plateau; no opening wedge indicated"
        )
    if mpta_post > MPTA_WARNING_DEG:
        warnings.append(
            f"predicted post-operative MPTA {mpta_post:.1f} deg exceeds {MPTA_WARNING_DEG:g}: "
            "consider a double-level (femoral + tibial) osteotomy"
        )
    if jlo_post > JLO_WARNING_DEG:
        warnings.append(
            f"predicted post-operative JLO {jlo_post:.1f} deg is apex proximal (> {JLO_WARNING_DEG:g})"
        )
    return HTOPlan(
        side=fr.side,
        target_fraction=opts.target_fraction,
        target_point=target.tolist(),
        hinge_point=np.asarray(g.hinge, float).tolist(),
        hinge_axis=fr.anterior.tolist(),
        osteotomy_start=np.asarray(g.osteotomy_start, float).tolist(),
        osteotomy_plane_point=np.asarray(g.hinge, float).tolist(),
        osteotomy_plane_normal=normal.tolist(),
        osteotomy_length_mm=length,
        correction_angle_deg=float(angle),
        dugdale_angle_deg=float(dug),
        gap_height_mm=gap_height(length, angle),
        ankle_after=ankle_after.tolist(),
        pre={"mhka": g.mhka, "mpta": g.mpta, "ldfa": g.ldfa, "jlo": g.mpta + g.ldfa},
        post={"mhka": float(mhka_post), "mpta": float(mpta_post), "jlo": float(jlo_post)},
        approximate=g.approximate,
        warnings=warnings,
        frame=fr.to_dict(),
    )


# ---------------------------------------------------------------- from meshes


def cortex_point(tibia: trimesh.Trimesh, frame: Frame, height: float, medial: bool) -> Array:
    """Outermost medial or lateral point of the tibial section at `height` (tibial frame)."""
    section = section_points(tibia, frame.to_world(0.0, 0.0, height), frame.superior)
    if len(section) < 6:
        raise AlignmentError(f"tibia: no bone section {height:.0f} mm from the plateau centre")
    c = frame.coords(section)
    i = int(np.argmax(c[:, 0])) if medial else int(np.argmin(c[:, 0]))
    ap_mid = 0.5 * (c[:, 1].min() + c[:, 1].max())
    return frame.to_world(float(c[i, 0]), ap_mid, height)


def geometry_from_landmarks(
    lm: KneeLandmarks, tibia: trimesh.Trimesh, angles: dict[str, float], options: HTOOptions
) -> HTOGeometry:
    """Planner inputs from detected landmarks; a knee-only FOV extrapolates hip and ankle
    along the approximate mechanical axes with assumed lengths and says so."""
    fr = lm.tibia_frame
    med, lat = lm.point("medial_plateau_margin"), lm.point("lateral_plateau_margin")
    h_lat = float(fr.coords(lat)[0, 2])
    h_med = float(fr.coords(med)[0, 2])
    lateral_cortex = cortex_point(tibia, fr, h_lat - options.hinge_below_lateral_plateau_mm, False)
    hinge = lateral_cortex + options.hinge_from_lateral_cortex_mm * fr.medial
    start = cortex_point(tibia, fr, h_med - options.start_below_medial_plateau_mm, True)
    notes: list[str] = []
    hip, ankle = lm.points.get("hip_centre"), lm.points.get("ankle_centre")
    knee_f, knee_t = lm.point("femoral_knee_centre"), lm.point("tibial_knee_centre")
    approximate = hip is None or ankle is None
    if hip is None:
        hip = knee_f + ASSUMED_FEMUR_MM * lm.femur_frame.superior
        notes.append(
            f"APPROXIMATE: no hip centre in the field of view; hip extrapolated "
            f"{ASSUMED_FEMUR_MM:g} mm along the estimated femoral mechanical axis"
        )
    if ankle is None:
        ankle = knee_t - ASSUMED_TIBIA_MM * fr.superior
        notes.append(
            f"APPROXIMATE: no ankle centre in the field of view; ankle extrapolated "
            f"{ASSUMED_TIBIA_MM:g} mm along the tibial shaft axis"
        )
    return HTOGeometry(
        frame=fr,
        hip=hip,
        ankle=ankle,
        femoral_knee=knee_f,
        tibial_knee=knee_t,
        medial_margin=med,
        lateral_margin=lat,
        hinge=hinge,
        osteotomy_start=start,
        mpta=float(angles["mpta"]),
        ldfa=float(angles["ldfa"]),
        mhka=float(angles["mhka"]),
        approximate=approximate,
        notes=tuple(notes),
    )
