"""DRR pair benchmark: ours vs DiffDRR (Siddon, Trilinear), same CT, same rays, same run.

    .venv/bin/python benchmarks/bench_drr.py [--size 256] [--volume 256] [--repeats 3]

The CT is a synthetic knee-like volume in HU (soft-tissue cylinder, two bone shafts with
cortex, 0.6 mm voxels). Views: AP + lateral, SID 1000 mm, SDD 2000 mm, a 294 mm detector.
DiffDRR needs `pip install --no-deps -r requirements-peers.txt`; without it only our
projector is timed. Wall times are medians over --repeats (DiffDRR: one run by default,
it is slow). NCC = normalised cross-correlation of the line-integral images vs ours.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from reconstruction.drr.geometry import ViewGeometry, make_view_pair
from reconstruction.drr.projector import TORCH_THREADS, hu_to_mu, line_integrals

VOXEL_MM = 0.6
DETECTOR_MM = 512 * 0.575


def synthetic_knee_ct(n: int) -> tuple[np.ndarray, np.ndarray]:
    """HU volume: air, a soft-tissue cylinder along z, two bone shafts with cortex."""
    axis = (np.arange(n) - (n - 1) / 2.0) * VOXEL_MM
    x, y = np.meshgrid(axis, axis, indexing="ij")
    slice_hu = np.full((n, n), -1000.0, np.float32)
    slice_hu[x**2 + y**2 < (0.45 * n * VOXEL_MM) ** 2] = 40.0
    for cx, cy, radius in ((-15.0, 5.0, 16.0), (20.0, -8.0, 7.0)):
        r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        slice_hu[r < radius] = 300.0
        slice_hu[(r < radius) & (r > radius - 2.0)] = 1300.0
    ct = np.repeat(slice_hu[:, :, None], n, axis=2)
    ct += np.random.default_rng(0).normal(0, 20, ct.shape).astype(np.float32)
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -(n - 1) / 2.0 * VOXEL_MM
    return ct, affine


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def timed(
    render_pair: Callable[[], list[np.ndarray]], repeats: int
) -> tuple[float, float, list[np.ndarray]]:
    """Median wall and CPU (all threads of this process) seconds; CPU time is the fairer
    figure when other processes share the two cores."""
    walls, cpus, images = [], [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        images = render_pair()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="detector pixels per side")
    parser.add_argument("--volume", type=int, default=256, help="CT voxels per side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-repeats", type=int, default=1)
    parser.add_argument(
        "--peer-chunk", type=int, default=0, help="DiffDRR rays per call (0: all, like DRR)"
    )
    args = parser.parse_args()
    torch.set_num_threads(TORCH_THREADS)

    ct, affine = synthetic_knee_ct(args.volume)
    mu = hu_to_mu(ct)
    views: tuple[ViewGeometry, ViewGeometry] = make_view_pair(
        90.0, detector_px=args.size, pixel_spacing_mm=DETECTOR_MM / args.size
    )
    line_integrals(mu, affine, views[0])  # warm-up (thread pool, allocator)
    rows = []
    ours_wall, ours_cpu, ours = timed(
        lambda: [line_integrals(mu, affine, v) for v in views], args.repeats
    )
    rows.append(("ours (Joseph, torch grid_sample)", ours_wall, ours_cpu, 1.0, 1.0))
    if importlib.util.find_spec("diffdrr") is None:
        print(
            "DiffDRR not installed (pip install --no-deps -r requirements-peers.txt): peers skipped"
        )
    else:
        from reconstruction.drr.peers import diffdrr_line_integrals

        chunk = args.peer_chunk or args.size**2
        for renderer in ("siddon", "trilinear"):
            peer_wall, peer_cpu, peer = timed(
                lambda r=renderer: [
                    diffdrr_line_integrals(mu, affine, v, renderer=r, rays_per_chunk=chunk)
                    for v in views
                ],
                args.peer_repeats,
            )
            similarity = min(ncc(a, b) for a, b in zip(ours, peer, strict=True))
            rows.append(
                (f"DiffDRR {renderer}", peer_wall, peer_cpu, similarity, peer_wall / ours_wall)
            )

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nDRR pair {args.size}x{args.size} from a {args.volume}^3 CT; {TORCH_THREADS} torch threads; "
        f"torch {torch.__version__}; {os.cpu_count()} CPUs, load average {load}\n"
    )
    print(
        "| projector | pair wall (s) | pair CPU (s) | NCC vs ours (worse view) | ours faster (wall) |"
    )
    print("|---|---|---|---|---|")
    for name, wall, cpu, similarity, ratio in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {similarity:.4f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
