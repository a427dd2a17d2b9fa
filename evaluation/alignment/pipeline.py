"""One call from bone meshes to landmarks, angles, CPAK, flags and the HTO plan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trimesh

from .angles import compute_angles
from .cpak import classify
from .errors import AlignmentError
from .hto import HTOOptions, HTOPlan, geometry_from_landmarks, plan_hto
from .landmarks import KneeLandmarks, MeshData, detect_landmarks

SIGN_CONVENTION = (
    "degrees; mHKA and aHKA as deviation from 180 with negative = varus; LDFA lateral and "
    "MPTA medial angles to the mechanical axes; JLCA > 0 opens laterally; HTO correction > 0 "
    "= valgising medial opening"
)


@dataclass
class KneeAnalysis:
    landmarks: KneeLandmarks
    angles: dict[str, object]
    approximate: dict[str, str]
    missing: dict[str, str]
    plan: HTOPlan | None
    plan_error: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        values = self.angles
        cpak = None
        if isinstance(values.get("ahka"), float) and isinstance(values.get("jlo"), float):
            cpak = classify(values["ahka"], values["jlo"]).to_dict()
        return {
            "convention": SIGN_CONVENTION,
            "side": self.landmarks.side,
            "side_source": self.landmarks.side_source,
            "fov": self.landmarks.fov,
            "angles": values,
            "cpak": cpak,
            "flags": {
                "approximate": {**self.landmarks.approximate, **self.approximate},
                "missing": {**self.landmarks.missing, **self.missing},
                "warnings": list(self.landmarks.warnings),
            },
            "landmarks": self.landmarks.to_dict(),
            "hto_plan": None if self.plan is None else self.plan.to_dict(),
            "hto_plan_error": self.plan_error,
            "timings_s": self.timings_s,
        }


def analyse_knee(
    femur: trimesh.Trimesh,
    tibia: trimesh.Trimesh,
    fibula: trimesh.Trimesh | None = None,
    patella: trimesh.Trimesh | None = None,
    side: str | None = None,
    hto_options: HTOOptions | None = None,
) -> KneeAnalysis:
    """Landmarks, angles (with approximate/missing flags) and the HTO plan of one knee."""
    options = hto_options or HTOOptions()
    options.validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    femur_data = MeshData.of(femur, "femur")
    lm = detect_landmarks(femur_data, tibia, fibula, patella, side)
    timings["landmarks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = compute_angles(lm, femur_data)
    timings["angles"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan, error = None, None
    try:
        geometry = geometry_from_landmarks(lm, tibia, result["values"], options)
        plan = plan_hto(geometry, options)
    except AlignmentError as exc:
        error = str(exc)
    timings["hto"] = time.perf_counter() - t0
    return KneeAnalysis(
        landmarks=lm,
        angles=result["values"],
        approximate=result["approximate"],
        missing=result["missing"],
        plan=plan,
        plan_error=error,
        timings_s=timings,
    )
