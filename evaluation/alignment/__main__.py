"""CLI: python -m evaluation.alignment --femur F --tibia T [--fibula FI] [--patella P]
[--side left|right] [--json] [--overlay OUT.png] [--plan-out PLAN.json]

Prints landmarks, angles, flags and the HTO plan. Bad input: exit status 2 and one line on
stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import trimesh

from .errors import AlignmentError
from .hto import HTOOptions
from .pipeline import analyse_knee

MESH_SUFFIXES = (".stl", ".ply", ".obj")


def load_mesh(path: str, name: str) -> trimesh.Trimesh:
    source = Path(path)
    if source.suffix.lower() not in MESH_SUFFIXES:
        raise AlignmentError(f"{name}: {path} is not an STL/PLY/OBJ mesh")
    if not source.is_file():
        raise AlignmentError(f"{name}: no such file {path}")
    try:
        mesh = trimesh.load(source, force="mesh", process=True)
    except Exception as exc:  # the loaders raise anything from ValueError to struct.error
        raise AlignmentError(f"{name}: cannot read {path}: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise AlignmentError(f"{name}: {path} holds no triangles")
    return mesh


def _clean(value: object) -> object:
    """JSON-safe: numpy to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary(report: dict) -> str:
    a = report["angles"]
    approx = report["flags"]["approximate"]
    lines = [f"side {report['side']} ({report['side_source']}), field of view: {report['fov']}"]
    for key in ("mhka", "ldfa", "mpta", "ahka", "jlo", "jlca", "slope"):
        flag = "  (approximate)" if key in approx else ""
        lines.append(f"{key:>6s} {a[key]:8.2f} deg{flag}")
    lines.append(f"  CPAK {a['cpak']} ({a['cpak_boundary_distance']:.1f} deg from a boundary)")
    plan = report["hto_plan"]
    if plan:
        lines.append(
            f"   HTO Miniaci {plan['correction_angle_deg']:.1f} deg (Dugdale "
            f"{plan['dugdale_angle_deg']:.1f}), gap {plan['gap_height_mm']:.1f} mm over "
            f"{plan['osteotomy_length_mm']:.0f} mm"
        )
        lines += [f"  warning: {w}" for w in plan["warnings"]]
    for name, reason in report["flags"]["missing"].items():
        lines.append(f"  missing {name}: {reason}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.alignment", description=__doc__)
    parser.add_argument("--femur", required=True)
    parser.add_argument("--tibia", required=True)
    parser.add_argument("--fibula")
    parser.add_argument("--patella")
    parser.add_argument("--side", choices=("left", "right"))
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--overlay", help="write a frontal overlay PNG of the 3D models")
    parser.add_argument("--plan-out", help="write the HTO plan as JSON")
    parser.add_argument("--target-fraction", type=float, default=0.625)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        meshes = {
            name: load_mesh(path, name)
            for name, path in (
                ("femur", args.femur),
                ("tibia", args.tibia),
                ("fibula", args.fibula),
                ("patella", args.patella),
            )
            if path
        }
        result = analyse_knee(
            meshes["femur"],
            meshes["tibia"],
            meshes.get("fibula"),
            meshes.get("patella"),
            side=args.side,
            hto_options=HTOOptions(target_fraction=args.target_fraction),
        )
        report = _clean(result.to_dict())
        if args.plan_out:
            if result.plan is None:
                raise AlignmentError(f"no HTO plan to write: {result.plan_error}")
            result.plan.save(args.plan_out)
        if args.overlay:
            from .overlay import render_frontal

            render_frontal(result, meshes, args.overlay)
    except (AlignmentError, ValueError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except Exception as exc:  # geometry the landmark search cannot handle (e.g. wrong bone)
        message = f"error: analysis failed ({type(exc).__name__}: {exc})".splitlines()[0]
        print(message + " - are these the right bones, in mm?", file=sys.stderr)
        return 3
    print(json.dumps(report, indent=2) if args.json else _summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
