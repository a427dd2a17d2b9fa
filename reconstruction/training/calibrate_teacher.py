"""Calibrate the teacher's bone/background decision on validation phantoms.

Cross-entropy on boundary-heavy point banks leaves the teacher slightly biased towards
background at some bone surfaces (on validation phantoms it misses 3-4 times more femur
voxels than it adds). The segmentation therefore labels a voxel with its most likely bone
when that bone's logit minus the background logit plus a per-bone offset is positive. The
offsets are chosen here, on validation phantoms that neither training nor the held-out test
set uses (spawn positions after the test seeds), each maximising the median voxel Dice of
its bone over the validation cases, and are stored in the shipped model's config
(`bone_offsets`). Distillation targets ignore them.

Then, with those offsets, one gate per bone: where the network's call differs from the
classical label (the cascade's input), the classical label stays unless the network's score
reaches the gate (`segmentation.teacher.gated_labels`). Each gate is chosen by the same rule
on the same validation cases and stored as `bone_gates`.

Every validation seed is used in all three CT conditions (clean, low dose, metal); a case the
classical method refuses is skipped (the teacher refuses it too) and listed.

Run: python -m reconstruction.training.calibrate_teacher --model reconstruction/models/teacher.pt
     [--cases 6] [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reconstruction.errors import ImagingError
from reconstruction.segmentation.teacher import bone_margin, gated_labels
from reconstruction.training.checkpoints import load_checkpoint, save_checkpoint
from reconstruction.training.data import split_seeds

BONES = ("femur", "tibia", "fibula", "patella")
TEST_CASES = 6  # `evaluate teacher` uses the first 6 held-out seeds; validation follows them
OFFSETS = np.round(np.arange(-2.0, 2.01, 0.25), 2)
GATES = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0])
CONDITIONS = ("clean", "low_dose_0.1", "metal")  # training.evaluate.teacher_conditions
TOLERANCE = 1e-4  # Dice (0.01 points): smaller gains on 6 cases are noise


def validation_seeds(count: int, master_seed: int = 2026, n_train: int = 64) -> list[int]:
    """Held-out seeds after the test seeds: never trained on, never in the test table."""
    return split_seeds(master_seed, n_train, TEST_CASES + count)["test"][TEST_CASES:]


@dataclass
class Margins:
    """Per voxel of one CT: the best bone class and its logit minus the background logit,
    with the true labels and the classical labels (the cascade's input)."""

    best_bone: np.ndarray  # uint8, 1..4
    margin: np.ndarray  # float32
    truth: np.ndarray  # uint8, 0..4
    prior: np.ndarray  # uint8, 0..4

    def dice(self, offsets: np.ndarray, gates: np.ndarray | None = None) -> np.ndarray:
        """(4,) voxel Dice per bone of the segmentation's labels with per-bone offsets (and
        gates), after the largest component per bone as the segmentation does."""
        from reconstruction.segmentation.teacher import largest_component_per_class
        from reconstruction.training.evaluate import label_dice

        score = self.margin + np.asarray(offsets, dtype=np.float32)[self.best_bone - 1]
        labels = largest_component_per_class(gated_labels(self.best_bone, score, self.prior, gates))
        by_bone = label_dice(self.truth, labels)
        return np.array([by_bone[bone] for bone in BONES])


def voxel_margins(
    logits: torch.Tensor | np.ndarray, truth: np.ndarray, prior: np.ndarray | None = None
) -> Margins:
    truth = np.asarray(truth, dtype=np.uint8)
    prior = np.zeros_like(truth) if prior is None else np.asarray(prior, dtype=np.uint8)
    best, margin = bone_margin(torch.as_tensor(logits, dtype=torch.float32).reshape(-1, 5))
    best = (best.numpy() + 1).astype(np.uint8).reshape(truth.shape)
    return Margins(best, margin.numpy().reshape(truth.shape), truth, prior)


def dice_by_offset(case: Margins, offsets: np.ndarray) -> np.ndarray:
    """(offsets, 4) voxel Dice of each bone of one case when that bone gets each offset (no
    gates). The segmentation's own rule (`segmentation.teacher.gated_labels`, then the
    largest component per bone) makes each bone's Dice depend on its own offset only."""
    return np.stack([case.dice(np.full(len(BONES), offset)) for offset in offsets])


def dice_by_gate(case: Margins, offsets: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """(gates, 4) voxel Dice of each bone of one case with the given offsets when every bone
    gets each gate. A bone's Dice depends on its own gate except where bones touch."""
    return np.stack([case.dice(offsets, np.full(len(BONES), gate)) for gate in gates])


def best_offsets(tables: list[np.ndarray], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bone, the value (offset or gate) of the highest median Dice over the cases (one
    failed case does not set every case's threshold). Values within TOLERANCE of the best
    count as ties and the one nearest zero wins: a flat curve keeps the network's own
    decision. Returns the values and the (values, 4) median table."""
    median = np.median(np.stack(tables), axis=0)
    chosen = []
    for column in range(median.shape[1]):
        top = np.flatnonzero(median[:, column] >= median[:, column].max() - TOLERANCE)
        chosen.append(float(offsets[top[np.argmin(np.abs(offsets[top]))]]))
    return np.asarray(chosen), median


def case_margins(model, seed: int, condition: str, chunk: int = 65536) -> Margins:
    """Dense teacher logits at every CT voxel centre of one validation phantom."""
    from reconstruction.networks.teacher import prepare_ct
    from reconstruction.phantoms.generator import generate_case
    from reconstruction.segmentation import segment
    from reconstruction.training.evaluate import teacher_conditions

    options = teacher_conditions()[condition]
    case = generate_case(seed, spacing=(1.0, 1.0, 1.0), with_meshes=False, **options)
    volume = case.ct
    prior = np.asarray(segment(volume).labels.array)
    affine = np.asarray(volume.affine, dtype=np.float32)
    ct = prepare_ct(np.asarray(volume.array, np.float32), affine, model.config, prior)
    grid = np.indices(volume.shape, dtype=np.float32).reshape(3, -1).T
    points = torch.from_numpy(grid @ affine[:3, :3].T + affine[:3, 3])
    with torch.inference_mode():
        maps = model.encode(ct)
        logits = torch.cat([model.query(maps, ct, p)[1] for p in points.split(chunk)])
    return voxel_margins(logits, np.asarray(case.labels.array), prior)


def weights_digest(model_path: Path) -> str:
    """Content hash of a model's weights (not its config: the offsets do not change logits)."""
    state = load_checkpoint(model_path)
    weights = state["weights"] if "weights" in state else state["model"]
    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode() + weights[name].cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_margins(model, digest: str, seed: int, condition: str, cache: Path) -> Margins:
    """`case_margins`, kept per model weights, seed and condition."""
    path = cache / f"{digest}_{seed}_{condition}_v2.npz"
    if path.exists():
        with np.load(path) as stored:
            return Margins(*(stored[name] for name in ("best_bone", "margin", "truth", "prior")))
    margins = case_margins(model, seed, condition)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **vars(margins))
    os.replace(temporary, path)
    return margins


def write_offsets(
    model_path: Path, offsets: list[float], provenance: dict, gates: list[float] | None = None
) -> None:
    state = load_checkpoint(model_path)
    gates = list(gates) if gates is not None else [0.0] * len(BONES)
    state["config"] = {**state["config"], "bone_offsets": list(offsets), "bone_gates": gates}
    state.setdefault("metadata", {})["calibration"] = provenance
    save_checkpoint(model_path, state)


def validation_cases(
    model, digest: str, seeds: list[int], cache: Path
) -> tuple[list[Margins], list[tuple[int, str]], list[dict]]:
    """Every seed in every condition; the cases the classical method refuses are listed."""
    cases, used, skipped, start = [], [], [], time.perf_counter()
    for index, seed in enumerate(seeds):
        for condition in CONDITIONS:
            try:
                cases.append(cached_margins(model, digest, seed, condition, cache))
                used.append((seed, condition))
                note = ""
            except ImagingError as error:
                skipped.append({"seed": seed, "condition": condition, "error": str(error)})
                note = f" skipped: {error}"
            print(
                f"[{index + 1}/{len(seeds)}] seed {seed} {condition} "
                f"{time.perf_counter() - start:.0f} s{note}",
                flush=True,
            )
    return cases, used, skipped


def print_table(title: str, values: np.ndarray, median: np.ndarray) -> None:
    print(f"median voxel Dice % over the validation cases\n| {title} | " + " | ".join(BONES) + " |")
    print("|---" * 5 + "|")
    for row, value in enumerate(values):
        print(f"| {value:+.2f} | " + " | ".join(f"{100 * d:.3f}" for d in median[row]) + " |")


def main(argv: list[str] | None = None) -> int:
    from reconstruction.training.train_teacher import load_teacher

    parser = argparse.ArgumentParser(prog="python -m reconstruction.training.calibrate_teacher")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("var/cache/calibration"))
    parser.add_argument("--write", action="store_true", help="store offsets and gates in the model")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"no model file at {args.model}")
    torch.set_num_threads(args.threads)
    model = load_teacher(args.model)
    if any(model.config.bone_offsets) or any(model.config.bone_gates):
        print("note: the model's current offsets and gates are ignored while calibrating")
    seeds = validation_seeds(args.cases)
    cases, used, skipped = validation_cases(model, weights_digest(args.model), seeds, args.cache)
    offsets, offset_median = best_offsets([dice_by_offset(c, OFFSETS) for c in cases], OFFSETS)
    print_table("offset", OFFSETS, offset_median)
    gate_tables = [dice_by_gate(c, offsets, GATES) for c in cases]
    gates, gate_median = best_offsets(gate_tables, GATES)
    print_table("gate", GATES, gate_median)
    final = np.median([c.dice(offsets, gates) for c in cases], axis=0)
    zero = offset_median[int(np.argmin(np.abs(OFFSETS)))]  # the network's own decision
    print(
        "chosen offsets " + ", ".join(f"{b} {o:+.2f}" for b, o in zip(BONES, offsets, strict=True))
    )
    print("chosen gates " + ", ".join(f"{b} {g:.2f}" for b, g in zip(BONES, gates, strict=True)))
    print("median Dice % network alone: " + " / ".join(f"{100 * d:.3f}" for d in zero))
    print("median Dice % calibrated:    " + " / ".join(f"{100 * d:.3f}" for d in final))
    print(f"validation seeds {seeds}; {len(cases)} cases, {len(skipped)} skipped")
    if args.write:
        provenance = {
            "validation_seeds": seeds,
            "cases": [f"{seed}:{condition}" for seed, condition in used],
            "skipped": skipped,
            "median_dice_network_alone": dict(zip(BONES, zero.round(5).tolist(), strict=True)),
            "median_dice_calibrated": dict(zip(BONES, final.round(5).tolist(), strict=True)),
        }
        write_offsets(args.model, offsets.tolist(), provenance, gates.tolist())
        print(
            f"wrote bone_offsets {offsets.tolist()} and bone_gates {gates.tolist()} to {args.model}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
