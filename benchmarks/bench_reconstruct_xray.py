"""Benchmark: two X-rays -> four watertight bone meshes with the shipped student (target:
median <= 3 s on this 2-core machine), network evaluations versus a dense 256^3 grid
(target <= 5 %), and peak memory.

Per pair: the whole public path (read_xray_pair, normalise + encode, coarse-to-fine
occupancy 4 -> 0.5 mm, shared meshing), with the model loaded once beforehand (the Celery
worker keeps it); the first run's load time is reported separately. Also the same pair
with a dense lattice at 0.5 mm would need `dense_0.5mm` evaluations (reported, not run).

    .venv/bin/python benchmarks/bench_reconstruct_xray.py --testset var/cache/testset \
        [--pairs 5] [--threads 1] [--glibc-defaults]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from reconstruction.io import read_xray_pair  # noqa: E402
from reconstruction.reconstruct_xray import (  # noqa: E402
    DEFAULT_REFINE,
    load_student,
    reconstruct_from_xray,
)
from reconstruction.runtime import keep_freed_memory  # noqa: E402


def pair_directories(testset: Path, count: int) -> list[Path]:
    found = sorted(testset.glob("*/sep90_dose100000")) + sorted(testset.glob("*/sep60_dose100000"))
    if not found:
        raise SystemExit(f"no X-ray pairs under {testset} (build one with training.evaluate)")
    return found[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--testset", type=Path, default=Path("var/cache/testset"))
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="leave glibc's allocator settings (the product keeps freed memory for reuse)",
    )
    args = parser.parse_args(argv)
    if not args.glibc_defaults:
        keep_freed_memory()  # as reconstruct_xray's CLI and the Celery worker do
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    load_student()
    load_seconds = time.perf_counter() - start
    rows = []
    for directory in pair_directories(args.testset, args.pairs):
        start = time.perf_counter()
        meshes, summary = reconstruct_from_xray(read_xray_pair(directory))
        seconds = time.perf_counter() - start
        watertight = all(m.is_watertight for m in meshes.values()) and len(meshes) == 4
        rows.append(
            {
                "pair": f"{directory.parent.name}/{directory.name}",
                "seconds": round(seconds, 2),
                "cpu_seconds_stages": summary["timings_s"],
                "evaluations": summary["network_evaluations"],
                "fraction_of_dense_256": summary["fraction_of_dense_256"],
                "four_watertight": watertight,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "threads": args.threads,
        "allocator": "glibc defaults" if args.glibc_defaults else "keep freed memory",
        "model_load_s": round(load_seconds, 2),
        "median_seconds": statistics.median(r["seconds"] for r in rows),
        "max_seconds": max(r["seconds"] for r in rows),
        "median_evaluations": statistics.median(r["evaluations"] for r in rows),
        "median_fraction_of_dense_256": statistics.median(r["fraction_of_dense_256"] for r in rows),
        "finest_mm": DEFAULT_REFINE.fine_mm,
        "peak_rss_mb": round(peak_mb, 1),
        "all_watertight": all(r["four_watertight"] for r in rows),
        "rows": rows,
    }
    print(
        f"median {result['median_seconds']:.2f} s (max {result['max_seconds']:.2f}), "
        f"{result['median_evaluations']:.0f} evaluations = "
        f"{100 * result['median_fraction_of_dense_256']:.2f} % of 256^3, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB, watertight {result['all_watertight']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
