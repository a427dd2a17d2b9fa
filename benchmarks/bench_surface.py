"""Surface-metric benchmark: ours (all metrics) vs point-cloud-utils, pymeshlab, trimesh.

One run, the same inputs for every tool: two closed femur-like meshes (327,680 and 81,920
faces, smooth 1 mm displacement between them), 100k area-weighted samples a side plus
every vertex. Each tool runs in its own fresh process, so its peak resident memory
(ru_maxrss) is its own; "baseline" is that process's peak after imports and loading.

    python benchmarks/bench_surface.py [--skip-trimesh] [--samples 100000]

* ours: evaluation.surface.compare_pair, every metric (distances both ways, ASSD/MASD/RMS/
  HD/HD95/NSD/Chamfer, signed distance by ray parity, volume Dice/IoU on a 0.25 mm lattice);
  the double-density convergence check is timed separately (it is a second measurement);
* pcu: point_cloud_utils.closest_points_on_mesh (libigl AABB, exact) on our exact sample
  points and vertices, both directions; the distances are compared with ours (max |diff|);
* pymeshlab: get_hausdorff_distance both ways (face samples + vertices, maxdist 100 %);
* trimesh: trimesh.proximity.closest_point on the same samples (slow; --skip-trimesh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_inputs(path: Path, samples: int) -> dict:
    from evaluation.surface.distances import sample_surface
    from evaluation.surface.synthetic import bone_mesh

    reference = bone_mesh("femur", subdivisions=7)
    result = bone_mesh("femur", subdivisions=6, noise_mm=1.0, scale=0.98, seed=1)
    # the very samples compare_pair draws (seeds 0 and 1, density = samples / area)
    sample_a = sample_surface(reference, samples / reference.area, 0)
    sample_b = sample_surface(result, samples / result.area, 1)
    np.savez(
        path,
        va=reference.vertices,
        fa=reference.faces,
        vb=result.vertices,
        fb=result.faces,
        sa=sample_a.points,
        sb=sample_b.points,
    )
    return {
        "faces": [len(reference.faces), len(result.faces)],
        "samples": [len(sample_a.points), len(sample_b.points)],
    }


def worker(tool: str, path: Path, samples: int) -> dict:
    import trimesh

    data = np.load(path)
    reference = trimesh.Trimesh(data["va"], data["fa"], process=False)
    result = trimesh.Trimesh(data["vb"], data["fb"], process=False)
    qa = np.vstack([data["sa"], data["va"]])  # reference samples + vertices -> result
    qb = np.vstack([data["sb"], data["vb"]])
    out: dict = {}
    if tool == "ours":
        from evaluation.surface import compare_pair
        from evaluation.surface.distances import ClosestPointIndex

        ClosestPointIndex(trimesh.creation.icosphere(subdivisions=1))  # load the extension
        baseline = peak_mb()
        cpu, t = cpu_seconds(), time.perf_counter()
        pair = compare_pair(reference, result, n_samples=samples, convergence=False)
        out["seconds"] = time.perf_counter() - t
        out["cpu_seconds"] = cpu_seconds() - cpu
        out["peak_mb"] = peak_mb()
        out["baseline_mb"] = baseline
        out["stages"] = pair.profile
        out["metrics"] = pair.metrics
        conv = compare_pair(reference, result, n_samples=samples, volume=False, signed=False)
        out["convergence_seconds"] = conv.profile["convergence"]["seconds"]
        out["convergence"] = conv.parameters["convergence"]
        # our distances on exactly the points handed to pcu, for the exactness check
        da, _, _ = ClosestPointIndex(result).query(qa)
        db, _, _ = ClosestPointIndex(reference).query(qb)
        np.save(path.with_name("ours.npy"), np.concatenate([da, db]))
    elif tool == "pcu":
        import point_cloud_utils as pcu

        baseline = peak_mb()
        cpu, t = cpu_seconds(), time.perf_counter()
        da, _, _ = pcu.closest_points_on_mesh(qa, data["vb"], data["fb"])
        db, _, _ = pcu.closest_points_on_mesh(qb, data["va"], data["fa"])
        out["seconds"] = time.perf_counter() - t
        out["cpu_seconds"] = cpu_seconds() - cpu
        out["peak_mb"], out["baseline_mb"] = peak_mb(), baseline
        np.save(path.with_name("pcu.npy"), np.concatenate([da, db]))
        na = len(data["sa"])
        nb = len(data["sb"])
        out["assd"] = float(
            (reference.area * da[:na].mean() + result.area * db[:nb].mean())
            / (reference.area + result.area)
        )
        out["hd"] = float(max(da.max(), db.max()))
    elif tool == "pymeshlab":
        import pymeshlab

        baseline = peak_mb()
        cpu, t = cpu_seconds(), time.perf_counter()
        ms = pymeshlab.MeshSet()
        ms.add_mesh(pymeshlab.Mesh(data["va"], data["fa"]))
        ms.add_mesh(pymeshlab.Mesh(data["vb"], data["fb"]))
        kw = {
            "samplevert": True,
            "sampleface": True,
            "samplenum": samples,
            "maxdist": pymeshlab.PercentageValue(100),
        }
        ab = ms.get_hausdorff_distance(sampledmesh=0, targetmesh=1, **kw)
        ba = ms.get_hausdorff_distance(sampledmesh=1, targetmesh=0, **kw)
        out["seconds"] = time.perf_counter() - t
        out["cpu_seconds"] = cpu_seconds() - cpu
        out["peak_mb"], out["baseline_mb"] = peak_mb(), baseline
        out["hd"] = max(ab["max"], ba["max"])
        out["masd"] = 0.5 * (ab["mean"] + ba["mean"])
    elif tool == "trimesh":
        baseline = peak_mb()
        cpu, t = cpu_seconds(), time.perf_counter()
        _, da, _ = trimesh.proximity.closest_point(result, data["sa"])
        _, db, _ = trimesh.proximity.closest_point(reference, data["sb"])
        out["seconds"] = time.perf_counter() - t
        out["cpu_seconds"] = cpu_seconds() - cpu
        out["peak_mb"], out["baseline_mb"] = peak_mb(), baseline
        out["masd"] = 0.5 * (da.mean() + db.mean())
        out["note"] = "samples only (no vertices)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000, help="samples per surface")
    parser.add_argument(
        "--skip-trimesh", action="store_true", help="skip trimesh.proximity (~25 s)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of ours/pcu/pymeshlab, interleaved; medians reported (default 3)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.inputs), args.samples)))
        return

    load_before = tuple(round(x, 1) for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        info = make_inputs(inputs, args.samples)
        print(
            f"meshes: {info['faces'][0]:,} and {info['faces'][1]:,} faces; samples {info['samples']}; "
            f"queries incl. vertices: {info['samples'][0] + info['faces'][0] // 2 + 2:,} and "
            f"{info['samples'][1] + info['faces'][1] // 2 + 2:,}"
        )
        # Rounds interleave the tools so that a busy machine slows them alike; the slow
        # trimesh baseline runs once.
        rounds = [["ours", "pcu", "pymeshlab"]] * max(args.repeat, 1)
        if not args.skip_trimesh:
            rounds = [*rounds[:-1], [*rounds[-1], "trimesh"]]
        runs: dict[str, list[dict]] = {}
        for tools in rounds:
            for tool in tools:
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        tool,
                        "--inputs",
                        str(inputs),
                        "--samples",
                        str(args.samples),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    cwd=ROOT,
                )
                if done.returncode != 0:
                    runs.setdefault(tool, []).append(
                        {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
                    )
                else:
                    runs.setdefault(tool, []).append(
                        json.loads(done.stdout.strip().splitlines()[-1])
                    )
        results = {}
        for tool, trials in runs.items():
            good = [t for t in trials if "error" not in t]
            if not good:
                results[tool] = trials[0]
                continue
            median = sorted(good, key=lambda t: t["seconds"])[len(good) // 2]
            results[tool] = {**median, "all_seconds": [round(t["seconds"], 2) for t in good]}
        diff = float(
            np.max(np.abs(np.load(Path(tmp) / "ours.npy") - np.load(Path(tmp) / "pcu.npy")))
        )

    print(
        f"\nload average before/after: {load_before} / {tuple(round(x, 1) for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(
        f"\n{'tool':<12}{'what':<52}{'wall s':>8}{'CPU s':>7}{'peak MB':>9}{'+MB':>6}  wall, all runs"
    )
    what = {
        "ours": "ALL metrics (dist., signed, Dice/IoU 0.25 mm grid)",
        "pcu": "exact distances both ways (same points)",
        "pymeshlab": "Hausdorff filter both ways",
        "trimesh": "proximity.closest_point both ways (samples)",
    }
    for tool, r in results.items():
        if "error" in r:
            print(f"{tool:<12}{'failed: ' + r['error']}")
            continue
        print(
            f"{tool:<12}{what[tool]:<52}{r['seconds']:8.2f}{r['cpu_seconds']:7.2f}{r['peak_mb']:9.0f}"
            f"{r['peak_mb'] - r['baseline_mb']:6.0f}  {r['all_seconds']}"
        )
    ours = results.get("ours", {})
    if "stages" in ours:
        print("\nours by stage, median run (seconds, process peak RSS MB after the stage):")
        for stage, s in ours["stages"].items():
            print(f"  {stage:<18}{s['seconds']:7.2f}{s['peak_rss_mb']:9.0f}")
        print(
            f"  {'convergence x2':<18}{ours['convergence_seconds']:7.2f}   (optional: a second, double-density sampling)"
        )
        print("\nmetrics: " + ", ".join(f"{k} {v:.4f}" for k, v in ours["metrics"].items()))
        print(f"convergence: {ours['convergence']}")
    print(
        f"\nexactness: max |ours - pcu| over all {info['samples'][0] + info['samples'][1]:,}+vertex queries = {diff:.2e} mm"
    )
    if "pcu" in results and "ours" in results:
        print(
            f"pcu ASSD {results['pcu']['assd']:.5f} vs ours {ours['metrics']['assd']:.5f}; "
            f"HD {results['pcu']['hd']:.5f} vs {ours['metrics']['hd']:.5f}"
        )
    if "pymeshlab" in results and "hd" in results["pymeshlab"]:
        print(
            f"pymeshlab HD {results['pymeshlab']['hd']:.4f}, MASD {results['pymeshlab']['masd']:.4f} "
            f"(ours {ours['metrics']['masd']:.4f}; vertices weigh like samples there)"
        )


if __name__ == "__main__":
    main()
