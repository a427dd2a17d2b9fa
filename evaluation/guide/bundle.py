"""Design, check and write one guide: guide.stl, guide.3mf, tibia_print.stl, report.json."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import trimesh

from evaluation.alignment.hto import HTOPlan

from .checks import check_guide
from .design import GuideDesign, GuideParams, design_guide, load_plan, print_tibia
from .errors import GuideError
from .export import atomic_write, write_3mf, write_stl

MESH_SUFFIXES = (".stl", ".ply", ".obj", ".off")


def load_tibia(path: str | os.PathLike[str]) -> trimesh.Trimesh:
    source = Path(path)
    if source.suffix.lower() not in MESH_SUFFIXES:
        raise GuideError(f"tibia: {path} is not an STL/PLY/OBJ/OFF mesh")
    if not source.is_file():
        raise GuideError(f"tibia: no such file {path}")
    try:
        mesh = trimesh.load(source, force="mesh", process=True)
    except Exception as exc:  # loaders raise anything from ValueError to struct.error
        raise GuideError(f"tibia: cannot read {path}: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise GuideError(f"tibia: {path} holds no triangles")
    return mesh


def clean(value: object) -> object:
    """JSON-safe: numpy to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        return clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def guide_report(design: GuideDesign, tibia: trimesh.Trimesh, plan: HTOPlan) -> dict:
    t0 = time.perf_counter()
    checks = check_guide(design, tibia)
    timings = {**design.timings_s, "checks": time.perf_counter() - t0}
    return clean(
        {
            "label": design.label,
            "plan": {
                "side": plan.side,
                "correction_angle_deg": plan.correction_angle_deg,
                "gap_height_mm": plan.gap_height_mm,
                "osteotomy_length_mm": plan.osteotomy_length_mm,
                "approximate": plan.approximate,
                "warnings": plan.warnings,
            },
            **checks,
            "guide": {
                "volume_mm3": float(design.mesh.volume),
                "triangles": len(design.mesh.faces),
                "watertight": bool(design.mesh.is_watertight),
                "bounds_mm": design.mesh.bounds.tolist(),
            },
            "params": design.summary()["params"],
            "timings_s": timings,
        }
    )


def build_guide(
    tibia: trimesh.Trimesh,
    plan: HTOPlan | dict | str,
    out_dir: str | os.PathLike[str],
    label: str | None = None,
    params: GuideParams | None = None,
) -> dict:
    """Write the guide bundle into `out_dir` and return the report (also report.json)."""
    plan_obj = load_plan(plan)
    design = design_guide(tibia, plan_obj, params, label)
    out = Path(out_dir)
    write_stl(design.mesh, out / "guide.stl", design.label)
    write_3mf(design.mesh, out / "guide.3mf", design.label)
    write_stl(print_tibia(tibia, plan_obj), out / "tibia_print.stl", f"tibia {design.label}")
    report = guide_report(design, tibia, plan_obj)
    report["files"] = ["guide.stl", "guide.3mf", "tibia_print.stl", "report.json"]
    atomic_write(out / "report.json", json.dumps(report, indent=2).encode())
    return report
