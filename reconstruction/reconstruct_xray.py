"""Two X-ray views -> four bone meshes (femur, tibia, fibula, patella) in patient mm.

    python -m reconstruction.reconstruct_xray PAIR_DIR --out OUTDIR [--checkpoint FILE]

PAIR_DIR is what `python -m reconstruction.drr` writes (view1.npy, view2.npy,
geometry.json). Writes femur.stl, tibia.stl, fibula.stl, patella.stl in the patient
coordinates the projection matrices refer to, and summary.json (timings, network
evaluations versus a dense 256^3 grid). Bad input exits with status 2 and one line; a bone
the network does not find is listed in summary.json "missing" and the exit status is 3.

Pipeline: both views normalised to the student's canonical pixel grid (P' = A P), encoded
once; the student is queried coarse-to-fine (inference.coarse_to_fine, arg-max over the 5
classes in one pass, 4 mm -> 0.5 mm near surfaces) inside the box both views see around the
isocentre; the 0.5 mm label lattice goes through the shared meshing (reconstruction.meshing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reconstruction.drr.geometry import check_separation
from reconstruction.errors import ImagingError, ModalityError
from reconstruction.inference import RefineResult, RefineSettings, coarse_to_fine
from reconstruction.io import XrayPair, read_xray_pair
from reconstruction.io._atomic import write_atomic
from reconstruction.networks import CLASS_NAMES
from reconstruction.runtime import inference_dtype_name, keep_freed_memory

if TYPE_CHECKING:  # torch, trimesh and the meshing stack load lazily: bad input fails fast
    import torch
    import trimesh

    from reconstruction.meshing import MeshSettings
    from reconstruction.networks.student import EncodedViews, XrayStudent

EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3  # some bones were not found; the others are written
DEFAULT_CHECKPOINT = Path(__file__).parent / "models" / "student.pt"
BONES = {name: index for index, name in enumerate(CLASS_NAMES) if index > 0}
DENSE_REFERENCE_NODES = 256**3
# No dilation of the first refinement: every knee bone is thicker than the 4 mm lattice's
# cell diagonal (6.9 mm), so none falls between coarse nodes; on the 6 held-out phantoms
# (90 deg) dilating changed no bone's Dice or ASSD and cost 3.4 % more evaluations.
# The refinements from 2 mm down (2 -> 1 -> 0.5 mm) evaluate only nodes whose spanning old
# nodes disagree (inference.RefineSettings.span_from_mm): on the 6 held-out phantoms (90 deg)
# 54 % fewer network evaluations than refining whole cells, 49-322 of 26 M lattice labels
# changed and no bone's ASSD by more than 0.003 mm. The 4 -> 2 mm step refines whole cells
# (a bone's tip between two coarse nodes), whatever the finest spacing.
DEFAULT_REFINE = RefineSettings(dilation=0, span_from_mm=2.0)
# points per network call: a block's activations (16 384 x 256 floats, 16 MB) stay near the
# caches; blocks of 65 536 ran about 25 % slower on a 2-core EPYC
POINT_BLOCK = 16384
MIN_IMAGE_PX = 32
ProgressCallback = Callable[[str, float], None]


class ReconstructionError(ImagingError):
    """The network found no usable surface for a bone (the views probably show no knee)."""


@lru_cache(maxsize=4)
def load_student(checkpoint: str | None = None) -> tuple[XrayStudent, str]:
    """The shipped (or given) student in eval mode, and the checkpoint's SHA-256 prefix."""
    from reconstruction.networks.student import StudentConfig, XrayStudent
    from reconstruction.training.checkpoints import file_sha256, load_checkpoint, load_weights

    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no student checkpoint at {path}")
    state = load_checkpoint(path)
    model = XrayStudent(StudentConfig.from_dict(state["config"]))
    load_weights(model, state["weights"])
    model.eval()
    digest = file_sha256(path)[:16]
    return model, digest


def line_integrals(pair: XrayPair) -> list[np.ndarray]:
    """The images as line integrals -log(I/I0), validated (2D, finite, big enough)."""
    images = []
    for index, view in enumerate(pair.views):
        image = np.asarray(view.image, dtype=np.float32)
        if image.ndim != 2 or min(image.shape) < MIN_IMAGE_PX:
            raise ModalityError(f"view{index + 1}: expected a 2D image of >= {MIN_IMAGE_PX} px")
        if not np.all(np.isfinite(image)):
            raise ModalityError(f"view{index + 1}: the image contains NaN or infinite values")
        if pair.image_kind == "intensity":
            image = -np.log(np.clip(image, 1e-6, None))
        images.append(image)
    return images


def field_box(pair: XrayPair, field_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Box around the isocentre that the normalised views cover (`field_mm` wide)."""
    half = 0.5 * field_mm
    centre = np.asarray(pair.views[0].geometry.isocentre_mm, dtype=float)
    return centre - half, centre + half


class ViewClassifier:
    """points (N, 3) mm -> arg-max class. A point outside either view is background without
    running the network (no view shows it); `network_evaluations` counts the points that
    did run it."""

    def __init__(
        self, model: XrayStudent, encoded: EncodedViews, size: int, dtype_name: str = "float32"
    ) -> None:
        import torch

        self.model, self.encoded, self.size = model, encoded, size
        self.dtype = getattr(torch, dtype_name)
        self.network_evaluations = 0

    def seen(self, points: torch.Tensor) -> torch.Tensor:
        from reconstruction.networks.geometry import project

        uv, _ = project(self.encoded.projections[:1], points[None])
        return ((uv[0] >= -0.5) & (uv[0] <= self.size - 0.5)).all(-1).all(0)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        import torch

        tensor = torch.from_numpy(np.asarray(points, dtype=np.float32))
        classes = np.zeros(len(tensor), dtype=np.uint8)
        with torch.inference_mode():
            seen = self.seen(tensor)
            visible = tensor[seen]
            found = np.empty(len(visible), dtype=np.uint8)
            for start in range(0, len(visible), POINT_BLOCK):
                block = visible[start : start + POINT_BLOCK]
                logits = self.model.logits_channels_first(self.encoded, block, self.dtype)
                # max(0).indices: the same classes as argmax(0) (first on ties), ~20x faster
                # on the CPU for this (5, N) layout
                found[start : start + len(block)] = logits.max(0).indices.numpy()
            classes[seen.numpy()] = found
        self.network_evaluations += len(visible)
        return classes


def predict_labels(
    pair: XrayPair,
    checkpoint: str | Path | None = None,
    refine: RefineSettings = DEFAULT_REFINE,
    report: ProgressCallback | None = None,
    dtype_name: str | None = None,
) -> tuple[RefineResult, dict[str, float], str]:
    """Class lattice of the pair (coarse-to-fine), the stage timings and the model digest.
    `dtype_name` of the point products: default runtime.inference_dtype_name()."""
    import torch

    from reconstruction.networks.geometry import normalise_view

    report = report or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    check_separation(pair.separation_deg)
    images = line_integrals(pair)
    model, digest = load_student(str(checkpoint) if checkpoint else None)
    timings["load"] = time.perf_counter() - start
    report("encode views", 0.05)
    start = time.perf_counter()
    config = model.config
    size = config.view_size
    views = [
        normalise_view(image, view.geometry, size, config.iso_pixel_mm)
        for image, view in zip(images, pair.views, strict=True)
    ]
    with torch.inference_mode():
        encoded = model.encode(
            torch.from_numpy(np.stack([v.image for v in views]))[None],
            torch.from_numpy(np.stack([v.projection for v in views])).float()[None],
            torch.tensor([[v.reference_depth_mm for v in views]], dtype=torch.float32),
        )
    timings["encode"] = time.perf_counter() - start
    report("coarse-to-fine occupancy", 0.15)
    start = time.perf_counter()
    lo, hi = field_box(pair, config.field_mm)
    classify = ViewClassifier(model, encoded, size, dtype_name or inference_dtype_name())
    result = coarse_to_fine(classify, lo, hi, refine)
    result.network_evaluations = classify.network_evaluations
    timings["occupancy"] = time.perf_counter() - start
    return result, timings, digest


def reconstruct_from_xray(
    pair: XrayPair,
    checkpoint: str | Path | None = None,
    progress: ProgressCallback | None = None,
    refine: RefineSettings = DEFAULT_REFINE,
    mesh_settings: MeshSettings | None = None,
    dtype_name: str | None = None,
) -> tuple[dict[str, trimesh.Trimesh], dict]:
    """Reconstruct the four knee bones from a biplanar pair; returns (meshes, summary)."""
    from reconstruction.meshing import DEFAULT_SETTINGS, enclosed_volume, meshes_from_labels

    mesh_settings = mesh_settings or DEFAULT_SETTINGS
    report = progress or (lambda stage, fraction: None)
    dtype_name = dtype_name or inference_dtype_name()
    result, timings, digest = predict_labels(pair, checkpoint, refine, report, dtype_name)
    model, _ = load_student(str(checkpoint) if checkpoint else None)
    lo, hi = field_box(pair, model.config.field_mm)
    report("meshing", 0.7)
    start = time.perf_counter()
    meshes = meshes_from_labels(result.labels, BONES, mesh_settings)
    timings["meshing"] = time.perf_counter() - start
    missing = [name for name in BONES if name not in meshes]
    if len(missing) == len(BONES):
        raise ReconstructionError("no bone found in the X-ray pair (does it show a knee?)")
    report("done", 1.0)
    summary = {
        "method": "xray-student",
        "checkpoint_sha256": digest,
        "units": "mm, patient LPS coordinates of the projection matrices",
        "separation_deg": round(pair.separation_deg, 3),
        "network_evaluations": result.network_evaluations,
        "lattice_nodes_classified": result.evaluations,
        "nodes_per_level": result.evaluations_per_level,
        "dense_256_cubed_evaluations": DENSE_REFERENCE_NODES,
        "fraction_of_dense_256": round(result.fraction_of_dense(DENSE_REFERENCE_NODES), 5),
        "point_products_dtype": dtype_name,
        "finest_spacing_mm": refine.fine_mm,
        "coarse_spacing_mm": refine.coarse_mm,
        "refinements_by_mixed_spans": refine.span_levels,
        "box_mm": [lo.tolist(), hi.tolist()],
        "missing": missing,
        "bones": {
            name: {
                "volume_mm3": round(enclosed_volume(mesh), 1),
                "faces": int(len(mesh.faces)),
                "watertight": bool(mesh.is_watertight),
            }
            for name, mesh in meshes.items()
        },
        "timings_s": {stage: round(t, 3) for stage, t in timings.items()},
    }
    summary["timings_s"]["total"] = round(sum(timings.values()), 3)
    return meshes, summary


def write_outputs(meshes: dict[str, trimesh.Trimesh], summary: dict, out: Path) -> list[Path]:
    from reconstruction.meshing import export_mesh

    out.mkdir(parents=True, exist_ok=True)
    written = [export_mesh(mesh, out / f"{name}.stl") for name, mesh in meshes.items()]
    text = json.dumps(summary, indent=2)
    written.append(write_atomic(out / "summary.json", lambda temp: temp.write_text(text)))
    return written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconstruction.reconstruct_xray",
        description="Reconstruct femur, tibia, fibula and patella meshes from two X-ray views.",
    )
    parser.add_argument("pair", type=Path, help="X-ray pair folder (view1, view2, geometry.json)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="student checkpoint")
    parser.add_argument(
        "--finest-mm",
        type=float,
        choices=(0.5, 1.0, 2.0),
        default=DEFAULT_REFINE.fine_mm,
        help="finest lattice spacing near surfaces (coarse lattice 4 mm)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    keep_freed_memory()
    try:
        start = time.perf_counter()
        pair = read_xray_pair(args.pair)
        read_time = time.perf_counter() - start
        import torch

        torch.set_num_threads(max(1, args.threads))
        levels = int(round(np.log2(DEFAULT_REFINE.coarse_mm / args.finest_mm)))
        refine = dataclasses.replace(DEFAULT_REFINE, levels=levels)
        meshes, summary = reconstruct_from_xray(pair, args.checkpoint, refine=refine)
    except (ImagingError, FileNotFoundError) as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    summary["timings_s"] = {"read": round(read_time, 3), **summary["timings_s"]}
    write_outputs(meshes, summary, args.out)
    if summary["missing"]:
        print(f"error: no {', '.join(summary['missing'])} found; wrote the others", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(f"wrote {len(meshes)} meshes and summary.json to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
