"""Benchmark: landmarks + angles + HTO plan for one full-limb phantom (target < 2 s).

Prints per-stage times (median of repeats) and, for the two fits that dominate, the same
fit by named peers in the same run:
* femoral head sphere: ours (algebraic start + Gauss-Newton) vs scipy.optimize.least_squares
  (generic geometric fit, numerical Jacobian) vs trimesh.nsphere.fit_nsphere;
* flexion-extension axis: ours (axis that all condylar normals meet) vs our cylinder fit
  (Nelder-Mead on direction + circle fit) vs a generic 5-parameter cylinder with
  scipy.optimize.least_squares; errors against the phantom's construction axis.

    .venv/bin/python benchmarks/bench_alignment.py [--seed 3] [--mesh-spacing 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.alignment.angles import compute_angles  # noqa: E402
from evaluation.alignment.fitting import (  # noqa: E402
    fit_cylinder,
    fit_revolution_axis,
    fit_sphere,
    orthonormal_basis,
)
from evaluation.alignment.hto import HTOOptions, geometry_from_landmarks, plan_hto  # noqa: E402
from evaluation.alignment.landmarks import (  # noqa: E402
    MeshData,
    detect_landmarks,
    find_hip_centre,
)
from evaluation.alignment.pipeline import analyse_knee  # noqa: E402
from reconstruction.phantoms.generator import generate_case  # noqa: E402

TARGET_SECONDS = 2.0


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def scipy_sphere(points: np.ndarray) -> np.ndarray:
    x0 = np.append(points.mean(axis=0), np.linalg.norm(points - points.mean(axis=0), axis=1).mean())
    res = least_squares(lambda p: np.linalg.norm(points - p[:3], axis=1) - p[3], x0)
    return res.x[:3]


def scipy_cylinder(points: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Generic cylinder: direction (2 angles), axis point (2), radius; numerical Jacobian."""
    u, v = orthonormal_basis(guess)
    centre = points.mean(axis=0)
    q = points - centre

    def residuals(p: np.ndarray) -> np.ndarray:
        d = guess + p[0] * u + p[1] * v
        d = d / np.linalg.norm(d)
        off = q - (p[2] * u + p[3] * v)
        radial = off - np.outer(off @ d, d)
        return np.linalg.norm(radial, axis=1) - p[4]

    res = least_squares(residuals, np.array([0, 0, 0, 0, 20.0]))
    d = guess + res.x[0] * u + res.x[1] * v
    return d / np.linalg.norm(d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--mesh-spacing", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    case = generate_case(args.seed, fov="limb", with_ct=False, mesh_spacing=args.mesh_spacing)
    gen = time.perf_counter() - t0
    m = case.meshes
    faces = sum(len(x.faces) for x in m.values())
    print(
        f"phantom seed {args.seed}, meshes at {args.mesh_spacing} mm: {faces} faces "
        f"(generated in {gen:.1f} s, not timed below)\n"
    )

    rows: list[tuple[str, float]] = []
    t, fem = timed(lambda: MeshData.of(m["femur"], "femur"), args.repeats)
    rows.append(("mesh arrays (femur)", t))
    up = np.array([0.0, 0.0, 1.0])
    t, (head, _) = timed(lambda: find_hip_centre(fem, up), args.repeats)
    rows.append(("hip sphere (iterated)", t))
    t, lm = timed(
        lambda: detect_landmarks(m["femur"], m["tibia"], m["fibula"], m["patella"]), args.repeats
    )
    rows.append(("landmarks (all)", t))
    t, angles = timed(lambda: compute_angles(lm, fem), args.repeats)
    rows.append(("angles + CPAK", t))
    t, _ = timed(
        lambda: plan_hto(geometry_from_landmarks(lm, m["tibia"], angles["values"], HTOOptions())),
        args.repeats,
    )
    rows.append(("HTO plan", t))
    t, result = timed(
        lambda: analyse_knee(m["femur"], m["tibia"], m["fibula"], m["patella"]), args.repeats
    )
    rows.append(("TOTAL analyse_knee", t))
    print(f"{'stage':28s} {'time_s':>8s}")
    for name, seconds in rows:
        print(f"{name:28s} {seconds:8.3f}")
    total = rows[-1][1]
    print(f"target < {TARGET_SECONDS:.0f} s: {'OK' if total < TARGET_SECONDS else 'TOO SLOW'}\n")

    # ---- peers: femoral head sphere on the same inlier faces
    radial = fem.centres - head.centre
    dist = np.linalg.norm(radial, axis=1)
    facing = np.einsum("ij,ij->i", radial, fem.normals) / dist
    pts = fem.centres[(np.abs(dist - head.radius) < 1.0) & (facing > 0.95)]
    truth = np.asarray(case.landmarks["hip_centre"])
    print(f"femoral head sphere on {len(pts)} faces     time_s   |c - ours| mm  |c - truth| mm")
    ours_t, ours = timed(lambda: fit_sphere(pts).centre, args.repeats)
    peers = {
        "ours (Kasa + Gauss-Newton)": (ours_t, ours),
        "scipy least_squares (generic)": timed(lambda: scipy_sphere(pts), args.repeats),
        "trimesh.nsphere.fit_nsphere": timed(
            lambda: trimesh.nsphere.fit_nsphere(pts)[0], args.repeats
        ),
    }
    for name, (seconds, centre) in peers.items():
        print(
            f"  {name:34s} {seconds:8.4f} {np.linalg.norm(centre - ours):12.4f} "
            f"{np.linalg.norm(centre - truth):14.4f}"
        )

    # ---- peers: flexion-extension axis on the selected posterior-condylar faces
    axis = lm.flexion_axis
    off = fem.centres - axis.point
    cross = np.cross(axis.direction, fem.normals)
    gap = np.abs((off * cross).sum(axis=1)) / np.maximum(np.linalg.norm(cross, axis=1), 1e-9)
    post = (gap < 1.5) & (fem.normals @ lm.femur_frame.anterior < -0.5)
    post &= np.abs(fem.normals @ axis.direction) < 0.5
    true_dir = (
        np.asarray(case.landmarks["medial_condyle_centre"])
        - case.landmarks["lateral_condyle_centre"]
    )
    true_dir /= np.linalg.norm(true_dir)
    guess = axis.direction + np.array([0.02, -0.03, 0.02])  # same perturbed start for all
    print(f"\nflexion axis on {post.sum()} faces           time_s   direction error deg")
    fits = {
        "ours (normal-line axis)": lambda: (
            fit_revolution_axis(fem.centres[post], fem.normals[post], guess, axis.point).direction
        ),
        "ours cylinder (Nelder-Mead)": lambda: fit_cylinder(fem.centres[post], guess).direction,
        "scipy least_squares cylinder": lambda: scipy_cylinder(fem.centres[post], guess),
    }
    for name, fn in fits.items():
        seconds, d = timed(fn, args.repeats)
        err = np.degrees(np.arccos(min(1.0, abs(float(d @ true_dir)))))
        print(f"  {name:34s} {seconds:8.4f} {err:14.3f}")
    a = result.angles
    print(
        f"\nangles: mHKA {a['mhka']:.2f} (truth {case.angles['mHKA']:.2f}), LDFA {a['ldfa']:.2f} "
        f"({case.angles['LDFA']:.2f}), MPTA {a['mpta']:.2f} ({case.angles['MPTA']:.2f})"
    )


if __name__ == "__main__":
    main()
