"""Benchmark: two X-rays -> four watertight bone meshes with the shipped student (target:
median <= 3 s on this 2-core machine), network evaluations versus a dense 256^3 grid
(target <= 5 %), and peak memory.

Per pair: the whole public path (read_xray_pair, normalise + encode, coarse-to-fine
occupancy 4 -> 0.5 mm, shared meshing), with the model loaded once beforehand (the Celery
worker keeps it); the first run's load time is reported separately. Also the same pair
with a dense lattice at 0.5 mm would need `dense_0.5mm` evaluations (reported, not run).

    .venv/bin/python benchmarks/bench_reconstruct_xray.py --testset var/cache/testset \
        [--pairs 5] [--threads 1] [--dtypes float32,bfloat16] [--glibc-defaults]

Each pair runs with float32 point products (the peer: the same network at full precision)
and with bfloat16 (what the product uses on CPUs with native bfloat16), with the largest
bone-volume change between the two; the dense-256^3 column is the published method's
strategy (every node of a 256^3 grid) at this run's evaluation rate. Two more paths, both
float32: `query-float32`, the training-time forward, and `whole-cells-float32`, the
refinement before mixed spans (every new node of a straddling cell evaluated at every
level; `inference.RefineSettings.span_from_mm`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from reconstruction.io import read_xray_pair  # noqa: E402
from reconstruction.networks.student import EncodedViews, XrayStudent  # noqa: E402
from reconstruction.reconstruct_xray import (  # noqa: E402
    DEFAULT_REFINE,
    load_student,
    reconstruct_from_xray,
)
from reconstruction.runtime import inference_dtype_name, keep_freed_memory  # noqa: E402


def pair_directories(testset: Path, count: int) -> list[Path]:
    found = sorted(testset.glob("*/sep90_dose100000")) + sorted(testset.glob("*/sep60_dose100000"))
    if not found:
        raise SystemExit(f"no X-ray pairs under {testset} (build one with training.evaluate)")
    return found[:count]


PEER = "query-float32"
WHOLE_CELLS = "whole-cells-float32"


def query_logits(
    model: XrayStudent,
    encoded: EncodedViews,
    points: torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The peer: the training-time forward (`query`) of the first pair, logits (5, N)."""
    first = EncodedViews(
        [m[:2] for m in encoded.maps],
        encoded.projections[:1],
        encoded.reference_depths[:1],
        encoded.size,
    )
    _, logits = model.query(first, points[None])
    return logits[0].t()


def run_pairs(directories: list[Path], path: str, checkpoint: str | None = None) -> list[dict]:
    rows = []
    peer = path == PEER
    dtype_name = "float32" if path in (PEER, WHOLE_CELLS) else path
    refine = (
        dataclasses.replace(DEFAULT_REFINE, span_from_mm=None)
        if path == WHOLE_CELLS
        else DEFAULT_REFINE
    )
    for directory in directories:
        patch = (
            mock.patch.object(XrayStudent, "logits_channels_first", query_logits)
            if peer
            else nullcontext()
        )
        start = time.perf_counter()
        with patch:
            meshes, summary = reconstruct_from_xray(
                read_xray_pair(directory), checkpoint, refine=refine, dtype_name=dtype_name
            )
        seconds = time.perf_counter() - start
        watertight = all(m.is_watertight for m in meshes.values()) and len(meshes) == 4
        rows.append(
            {
                "path": path,
                "pair": f"{directory.parent.name}/{directory.name}",
                "seconds": round(seconds, 2),
                "cpu_seconds_stages": summary["timings_s"],
                "evaluations": summary["network_evaluations"],
                "fraction_of_dense_256": summary["fraction_of_dense_256"],
                "four_watertight": watertight,
                "volumes_mm3": {b: v["volume_mm3"] for b, v in summary["bones"].items()},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    occupancy = sum(r["cpu_seconds_stages"]["occupancy"] for r in rows)
    evaluations = sum(r["evaluations"] for r in rows)
    return {
        "median_seconds": statistics.median(r["seconds"] for r in rows),
        "max_seconds": max(r["seconds"] for r in rows),
        "median_evaluations": statistics.median(r["evaluations"] for r in rows),
        "median_fraction_of_dense_256": statistics.median(r["fraction_of_dense_256"] for r in rows),
        # the published method's strategy: every node of a dense 256^3 grid, at this run's rate
        "dense_256_estimate_s": round(occupancy / evaluations * 256**3, 1),
        "all_watertight": all(r["four_watertight"] for r in rows),
    }


def largest_volume_change(rows: list[dict], reference: str, other: str) -> float:
    """Largest relative bone-volume difference between two paths' meshes of the same pair."""
    by_key = {(r["path"], r["pair"]): r["volumes_mm3"] for r in rows}
    changes = [
        abs(by_key[(other, pair)][bone] / volume - 1.0)
        for (path, pair), volumes in by_key.items()
        if path == reference and (other, pair) in by_key
        for bone, volume in volumes.items()
        if bone in by_key[(other, pair)]
    ]
    return max(changes, default=float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--testset", type=Path, default=Path("var/cache/testset"))
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--dtypes",
        default="float32,bfloat16",
        help="point-product precisions to run, in this order (the product picks one per CPU)",
    )
    parser.add_argument("--checkpoint", default=None, help="a student other than the shipped")
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help=f"skip the {PEER} (training-time forward) and {WHOLE_CELLS} paths",
    )
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
    load_student(args.checkpoint)
    load_seconds = time.perf_counter() - start
    directories = pair_directories(args.testset, args.pairs)
    paths = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not args.no_peer:
        paths[1:1] = [PEER, WHOLE_CELLS]
    rows = [row for path in paths for row in run_pairs(directories, path, args.checkpoint)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "threads": args.threads,
        "allocator": "glibc defaults" if args.glibc_defaults else "keep freed memory",
        "product_dtype_here": inference_dtype_name(),
        "model_load_s": round(load_seconds, 2),
        "finest_mm": DEFAULT_REFINE.fine_mm,
        "peak_rss_mb": round(peak_mb, 1),
        "paths": {p: summarise([r for r in rows if r["path"] == p]) for p in paths},
        "rows": rows,
    }
    result["largest_bone_volume_change"] = {
        other: largest_volume_change(rows, paths[0], other) for other in paths[1:]
    }
    print(f"\n{len(directories)} pairs, {args.threads} threads, peak RSS {peak_mb:.0f} MB")
    print(
        "| path | median s | max s | evaluations | % of dense 256^3 | "
        "dense 256^3 at this rate, s | all watertight |"
    )
    print("|---|---|---|---|---|---|---|")
    for path, row in result["paths"].items():
        print(
            f"| {path} | {row['median_seconds']:.2f} | {row['max_seconds']:.2f} | "
            f"{row['median_evaluations']:.0f} | {100 * row['median_fraction_of_dense_256']:.2f} | "
            f"{row['dense_256_estimate_s']:.1f} | {row['all_watertight']} |"
        )
    for other, change in result["largest_bone_volume_change"].items():
        print(f"largest bone volume change {paths[0]} -> {other}: {100 * change:.3f} %")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
