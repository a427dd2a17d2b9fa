"""CLI: python -m evaluation.guide --tibia TIBIA_MESH --plan PLAN.json --out DIR
[--label TEXT] [--clearance MM]

Writes guide.stl, guide.3mf, tibia_print.stl and report.json (slot-plane angle and offset vs
the plan measured on the produced mesh, minimum clearance to the bone, pin positions).
Bad input: exit status 2 and one line on stderr. Failed geometric checks: exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from .bundle import build_guide, load_tibia
from .design import GuideParams
from .errors import GuideError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.guide", description=__doc__)
    parser.add_argument("--tibia", required=True, help="tibia mesh (STL/PLY/OBJ), patient mm")
    parser.add_argument("--plan", required=True, help="HTO plan JSON (evaluation.alignment)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--label", help="label in file headers (default: HTO_side_angle)")
    parser.add_argument("--clearance", type=float, default=0.2, help="contact clearance, mm")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tibia = load_tibia(args.tibia)
        report = build_guide(
            tibia, args.plan, args.out, args.label, GuideParams(clearance_mm=args.clearance)
        )
    except (GuideError, ValueError, OSError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    print(
        f"{report['label']}: slot {report['slot_angle_deg']:.3f} deg / "
        f"{report['slot_offset_mm']:.3f} mm from the plan, min clearance "
        f"{report['min_clearance_mm']:.3f} mm, checks {'passed' if report['ok'] else 'FAILED'}"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
