"""End-to-end CT -> four watertight bone meshes on a clinical-size knee CT.

A 0.7 mm knee phantom is placed in a 512 x 512 x 300 grid (air with noise around the
body in-plane, edge slices repeated along the limb so the bones run out of the scan as
in a real one), then `reconstruct_from_ct` runs once for warm-up on a small case and
once timed in a fresh process with the product's allocator setting
(`reconstruction.runtime.keep_freed_memory`), after a peer run with glibc's defaults. Reports
per-stage times, peak memory (peak RSS of the fresh process that runs it, and the
peak of numpy-tracked allocations during the run) and Dice against the phantom labels.

    .venv/bin/python benchmarks/bench_segment_ct.py [--seed 7] [--method classical|teacher]

Targets on this 2-core machine: classical <= 10 s, teacher (classical + network) <= 30 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from reconstruction.phantoms.generator import generate_case
from reconstruction.runtime import keep_freed_memory
from reconstruction.segment_ct import reconstruct_from_ct
from reconstruction.segmentation import BONE_LABELS, segment
from reconstruction.volume import Volume

TARGET_SHAPE = (512, 512, 300)
TARGET_S = {"classical": 10.0, "teacher": 30.0}
SPACING = 0.7


def embed(array: np.ndarray, fill: float | None, rng: np.random.Generator) -> np.ndarray:
    """Centre `array` in TARGET_SHAPE: air (with CT noise) in-plane, edge slices along k."""
    pads = []
    for n, target in zip(array.shape, TARGET_SHAPE, strict=True):
        before = max(0, (target - n) // 2)
        pads.append((before, max(0, target - n - before)))
    along_k = np.pad(array, ((0, 0), (0, 0), pads[2]), mode="edge")
    if fill is None:
        return np.pad(along_k, (pads[0], pads[1], (0, 0)), mode="constant")
    out = np.pad(along_k, (pads[0], pads[1], (0, 0)), mode="constant", constant_values=0)
    air = np.ones(array.shape[:2], dtype=bool)
    air = ~np.pad(air, (pads[0], pads[1]), mode="constant")
    noise = rng.normal(fill, 20.0, size=(int(air.sum()), TARGET_SHAPE[2]))
    out[air] = noise.astype(out.dtype)
    return out[: TARGET_SHAPE[0], : TARGET_SHAPE[1], : TARGET_SHAPE[2]]


def build_case(seed: int):
    case = generate_case(seed, fov="knee", spacing=(SPACING, SPACING, SPACING))
    rng = np.random.default_rng(seed)
    pads = [max(0, (t - n) // 2) for n, t in zip(case.ct.shape, TARGET_SHAPE, strict=True)]
    affine = case.ct.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(pads, dtype=float)
    ct = Volume(embed(case.ct.array, -1000.0, rng), affine, "CT")
    labels = Volume(embed(case.labels.array, None, rng), affine, "LABELS")
    return case, ct, labels


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_run(path: str, affine: np.ndarray, method: str, keep_memory: bool, queue) -> None:
    """In a fresh process: set the allocator as the product does (segment_ct, the Celery
    worker) or leave glibc's defaults, load the CT, run once, report."""
    if keep_memory:
        assert keep_freed_memory(), "glibc mallopt unavailable"
    ct = Volume(np.load(path), affine, "CT")
    rss_before = rss_mb()
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    meshes, summary = reconstruct_from_ct(ct, method)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    queue.put((meshes, summary, (total, cpu), peak_traced, rss_before, rss_mb(), faults))


def run_in_fresh_process(path: str, affine: np.ndarray, method: str, keep_memory: bool):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=timed_run, args=(path, affine, method, keep_memory, queue))
    worker.start()
    result = queue.get()
    worker.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--method", choices=sorted(TARGET_S), default="classical")
    args = parser.parse_args()
    case, ct, labels = build_case(args.seed)
    print(f"CT {ct.shape} at {SPACING} mm, {ct.array.nbytes / 1e6:.0f} MB {ct.array.dtype}")
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "ct.npy")
        np.save(path, ct.array)
        # Peer: the same run with glibc's default allocator settings.
        peer = run_in_fresh_process(path, ct.affine, args.method, keep_memory=False)
        product = run_in_fresh_process(path, ct.affine, args.method, keep_memory=True)
    meshes, summary, (total, cpu), peak_traced, rss_before, rss_after, faults = product

    print(f"\n{'stage':<24}{'seconds':>10}")
    for stage, seconds in summary["timings_s"].items():
        print(f"{stage:<24}{seconds:>10.2f}")
    target = TARGET_S[args.method]
    print(f"{'total':<24}{total:>10.2f}   ({args.method}; target <= {target:.0f} s on 2 cores)")
    print(f"{'total CPU (all threads)':<24}{cpu:>10.2f}   load average {os.getloadavg()[0]:.1f}")
    print(
        f"\npeak memory: numpy/python allocations {peak_traced / 1e6:.0f} MB; "
        f"process RSS peak {rss_after:.0f} MB ({rss_before:.0f} MB with the CT loaded)"
    )

    print(f"\n{'allocator':<34}{'total s':>9}{'page faults':>13}{'RSS peak MB':>13}")
    for name, run in (("glibc defaults (peer)", peer), ("keep freed memory (product)", product)):
        print(f"{name:<34}{run[2][0]:>9.2f}{run[6]:>13,}{run[5]:>13.0f}")

    segmentation = segment(ct, args.method)
    # Dice only: the bones were extended beyond the phantom's field of view, so its
    # exact (capped) meshes are shorter than ours and ASSD would measure the padding.
    print(f"\n{'bone':<9}{'faces':>8}{'watertight':>12}{'volume cm3':>12}{'Dice':>8}")
    for name, label in BONE_LABELS.items():
        info = summary["bones"][name]
        found = segmentation.labels.array == label
        truth = labels.array == label
        dice = 2 * np.count_nonzero(found & truth) / (found.sum() + truth.sum())
        print(
            f"{name:<9}{info['faces']:>8}{info['watertight']!s:>12}"
            f"{info['mesh_volume_mm3'] / 1000:>12.1f}{dice:>8.4f}"
        )


if __name__ == "__main__":
    main()
