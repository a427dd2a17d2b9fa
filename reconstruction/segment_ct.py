"""CT -> four bone meshes (femur, tibia, fibula, patella) in patient mm.

    python -m reconstruction.segment_ct CT_FILE_OR_DICOM_DIR --out DIR [--method classical]

Writes femur.stl, tibia.stl, fibula.stl, patella.stl (patient LPS mm of the CT) and
summary.json. A non-CT or non-knee input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trimesh
from tqdm import tqdm

from reconstruction.errors import ImagingError
from reconstruction.io import read_volume
from reconstruction.io._atomic import write_atomic
from reconstruction.meshing import (
    DEFAULT_SETTINGS,
    MeshSettings,
    enclosed_volume,
    export_mesh,
    mesh_from_mask,
)
from reconstruction.runtime import keep_freed_memory
from reconstruction.segmentation import BONE_LABELS, segment
from reconstruction.segmentation.interface import ProgressCallback
from reconstruction.volume import Volume

EXIT_BAD_INPUT = 2
CLI_METHODS = ("classical", "teacher")
MESH_THREADS = 2


def reconstruct_from_ct(
    volume: Volume,
    method: str = "classical",
    progress: ProgressCallback | None = None,
    mesh_settings: MeshSettings = DEFAULT_SETTINGS,
) -> tuple[dict[str, trimesh.Trimesh], dict]:
    """Segment a knee CT and mesh each bone; returns (meshes by bone name, summary dict).

    Raises ImagingError subclasses for unusable input (ModalityError, NotAKneeError).
    """
    report = progress or (lambda stage, fraction: None)
    segmentation = segment(volume, method, progress=lambda s, f: report(s, 0.5 * f))
    timings = dict(segmentation.timings_s)
    labels = segmentation.labels
    names = list(segmentation.bones)
    report("mesh", 0.5)

    def mesh_one(name: str) -> tuple[trimesh.Trimesh, float]:
        start = time.perf_counter()
        mask = labels.array == segmentation.bones[name].label
        return mesh_from_mask(mask, labels.affine, mesh_settings), time.perf_counter() - start

    # Threads: the heavy numpy/scipy steps release the GIL; safe inside Celery workers.
    largest_first = sorted(names, key=lambda n: -segmentation.bones[n].voxel_count)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=MESH_THREADS) as pool:
        results = dict(zip(largest_first, pool.map(mesh_one, largest_first), strict=True))
    timings["mesh (wall, all bones)"] = time.perf_counter() - start
    meshes: dict[str, trimesh.Trimesh] = {}
    bones: dict[str, dict] = {}
    for name in names:
        mesh, seconds = results[name]
        info = segmentation.bones[name]
        timings[f"mesh {name}"] = seconds
        meshes[name] = mesh
        bones[name] = {
            "voxel_count": info.voxel_count,
            "label_volume_mm3": info.volume_mm3,
            "mesh_volume_mm3": round(enclosed_volume(mesh), 1),
            "faces": int(len(mesh.faces)),
            "watertight": bool(mesh.is_watertight),
        }
    report("done", 1.0)
    summary = {
        "method": method,
        "side": segmentation.side,
        "limb_axis": list(segmentation.limb_axis),
        "units": "mm, patient LPS coordinates of the CT",
        "ct_shape": list(volume.shape),
        "ct_spacing_mm": [round(s, 4) for s in volume.spacing],
        "bones": bones,
        "missing": [name for name in BONE_LABELS if name not in meshes],
        "notes": segmentation.notes,
        "timings_s": {stage: round(t, 3) for stage, t in timings.items()},
    }
    return meshes, summary


def write_outputs(meshes: dict[str, trimesh.Trimesh], summary: dict, out: Path) -> list[Path]:
    written = [export_mesh(mesh, out / f"{name}.stl") for name, mesh in meshes.items()]
    text = json.dumps(summary, indent=2)
    written.append(write_atomic(out / "summary.json", lambda temp: temp.write_text(text)))
    return written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconstruction.segment_ct",
        description="Segment femur, tibia, fibula and patella in a knee CT and write STL meshes.",
    )
    parser.add_argument("ct", type=Path, help="CT file (NIfTI, NRRD) or a DICOM series folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--method", choices=CLI_METHODS, default="classical")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    keep_freed_memory()
    with tqdm(total=100, desc="segment_ct", unit="%", file=sys.stderr) as bar:

        def progress(stage: str, fraction: float) -> None:
            bar.set_postfix_str(stage)
            bar.update(max(0, round(100 * fraction) - bar.n))

        try:
            start = time.perf_counter()
            volume = read_volume(args.ct, require_ct=True)
            read_time = time.perf_counter() - start
            meshes, summary = reconstruct_from_ct(volume, args.method, progress=progress)
        except ImagingError as error:
            bar.close()
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        summary["timings_s"] = {"read": round(read_time, 3), **summary["timings_s"]}
        start = time.perf_counter()
        write_outputs(meshes, summary, args.out)
    print(f"wrote {len(meshes)} meshes to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
