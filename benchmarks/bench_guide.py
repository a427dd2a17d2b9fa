"""Benchmark of HTO guide design and the virtual trial on phantom knees.

python benchmarks/bench_guide.py [--knees 2] [--grid 0.5]
Per knee: design time, slot error vs plan (measured on the mesh), min clearance, and the
virtual-trial CT-vs-simulated-X-ray differences; then mean/SD/max over knees.
"""

from __future__ import annotations

import argparse
import json
import time

from evaluation.alignment.pipeline import analyse_knee
from evaluation.guide.bundle import guide_report
from evaluation.guide.design import GuideParams, design_guide
from evaluation.guide.virtual_trial import KneeInput, run_knee, simulated_xray_model, summarise
from reconstruction.phantoms.generator import generate_case


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--knees", type=int, default=2)
    parser.add_argument("--grid", type=float, default=0.5)
    args = parser.parse_args()
    params = GuideParams(grid_mm=args.grid)
    rows = []
    for seed in range(1, args.knees + 1):
        case = generate_case(seed, fov="limb", with_ct=False, mesh_spacing=1.0)
        m = case.meshes
        plan = analyse_knee(m["femur"], m["tibia"], m.get("fibula"), m.get("patella")).plan
        t0 = time.perf_counter()
        design = design_guide(m["tibia"], plan, params)
        seconds = time.perf_counter() - t0
        report = guide_report(design, m["tibia"], plan)
        xray = simulated_xray_model(m["tibia"], seed)
        row = run_knee(KneeInput(f"seed{seed}", m["tibia"], xray, plan), params, start_seed=seed)
        row.pop("designs")
        rows.append(row)
        print(
            json.dumps(
                {
                    "seed": seed,
                    "design_s": round(seconds, 2),
                    "slot_angle_deg": report["slot_angle_deg"],
                    "slot_offset_mm": report["slot_offset_mm"],
                    "min_clearance_mm": report["min_clearance_mm"],
                    "ok": report["ok"],
                    "virtual_angle_deg": row["angle_deg"],
                    "virtual_offset_mm": row["offset_mm"],
                    "ct_self_angle_deg": row["ct_guide_angle_vs_plan_deg"],
                }
            )
        )
    print(json.dumps(summarise(rows), indent=2))


if __name__ == "__main__":
    main()
