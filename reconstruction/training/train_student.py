"""Train the X-ray student: supervised on labelled cases, distilled from the CT teacher on
the rest.

    python -m reconstruction.training.train_student --out var/runs/student.pt \
        --steps 1500 --labelled-fraction 1.0 [--teacher-cache var/runs/teacher_targets.pt]

Every step draws `batch` training cases, one of each case's cached DRR pairs (random
separation in [30, 90] degrees, random dose) and `points` query points from the case's
bank. Without a teacher only labelled cases are used (supervised baseline). With a teacher
cache (teacher soft labels + point features on every bank point, see train_teacher) all
training cases are used: loss = (1 - w) CE(labels) + w CE(teacher) + 0.1 L1(features) on
labelled cases, CE(teacher) + 0.1 L1(features) on unlabelled ones.

Checkpoints (atomic) hold the model, optimiser, step and both RNG states, so `--resume`
continues with exactly the step an uninterrupted run would have taken. `--init M` (as
train_teacher's) fine-tunes instead: the weights of student M (shipped file or training
checkpoint, same network config), a fresh optimiser and schedule.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reconstruction.networks.student import StudentConfig, XrayStudent
from reconstruction.training.checkpoints import (
    export_model,
    file_sha256,
    load_checkpoint,
)
from reconstruction.training.data import (
    DEFAULT_CACHE,
    VARIATION_OPTIONS,
    DataSettings,
    TrainingCase,
    fraction_argument,
    labelled_subset,
    load_case,
    non_negative_argument,
    training_seeds,
    with_orthogonal_pairs,
)
from reconstruction.training.loop import TrainingLoop
from reconstruction.training.losses import distillation_loss, label_loss


@dataclass
class StudentRun:
    out: str = "var/runs/student.pt"
    steps: int = 1500
    batch: int = 2
    points: int = 3072
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    master_seed: int = 2026
    n_train: int = 64
    labelled_fraction: float = 0.2
    teacher_cache: str | None = None
    distill_weight: float = 0.5
    orthogonal_only: bool = False
    time_limit_min: float = 60.0
    checkpoint_every: int = 100
    log_every: int = 20
    threads: int = 1  # OpenMP spin-waits make 2 threads far slower on a loaded 2-core box
    view_px: int = 128  # normalised view grid (pixels over the reference detector's field)
    pairs_per_case: int = 4
    isocentre_jitter_mm: float | None = None  # see DataSettings; None: volume-centred pairs
    near_orthogonal_fraction: float = 0.0  # see DataSettings
    first_angle_jitter_deg: float = 5.0
    shape_variation: float = 0.0  # see DataSettings
    soft_tissue_variation: float = 0.0  # see DataSettings
    patella_variation: float = 0.0  # see DataSettings
    femur_variation: float = 0.0  # see DataSettings
    tibia_variation: float = 0.0  # see DataSettings
    condyle_variation: float = 0.0  # see DataSettings
    trochlea_variation: float = 0.0  # see DataSettings
    patella_form_variation: float = 0.0  # see DataSettings
    patella_ridge_variation: float = 0.0  # see DataSettings
    condylar_offset_variation: float = 0.0  # see DataSettings
    tilt_variation: float = 0.0  # see DataSettings
    pseudo_ct_fraction: float = 0.0  # see DataSettings
    init: str | None = None  # fine-tune: start from this student's weights
    cache: str = str(DEFAULT_CACHE)
    config: dict = field(default_factory=lambda: StudentConfig().to_dict())


@dataclass
class Batch:
    images: torch.Tensor
    projections: torch.Tensor
    reference_depths: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    labelled: list[bool]
    teacher_probabilities: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None


class StudentData:
    """Training cases in memory plus the seeded labelled/unlabelled partition."""

    def __init__(self, run: StudentRun, settings: DataSettings | None = None) -> None:
        self.run = run
        seeds = training_seeds(run.master_seed, run.n_train)
        self.labelled = set(labelled_subset(seeds, run.labelled_fraction, run.master_seed))
        self.teacher = _load_teacher_cache(run.teacher_cache)
        self.seeds = seeds if self.teacher is not None else sorted(self.labelled)
        settings = settings or run_data_settings(run)
        self.cases: dict[int, TrainingCase] = {
            s: load_case(s, settings, Path(run.cache)) for s in self.seeds
        }
        # per case, per pair: the points a step may draw (inside that pair's field)
        self.drawable: dict[int, list[np.ndarray]] = {}
        field = settings.size_px * settings.iso_pixel_mm
        for seed, case in self.cases.items():
            if run.orthogonal_only:
                with_orthogonal_pairs(case, settings)
            self.drawable[seed] = [
                points_in_field(case, field, pair) for pair in range(len(case.separations))
            ]
            case.ct = np.empty((0, 0, 0), dtype=np.int16)  # the student never reads the CT
        self.drawable = self._restricted_to_teacher_targets(self.drawable)

    @classmethod
    def from_cases(
        cls, run: StudentRun, cases: dict[int, TrainingCase], labelled: set[int], teacher=None
    ) -> StudentData:
        """In-memory data (tests, experiments) instead of the phantom cache."""
        data = cls.__new__(cls)
        data.run, data.cases, data.labelled, data.teacher = run, cases, labelled, teacher
        data.drawable = data._restricted_to_teacher_targets(
            {s: [np.arange(len(c.points))] * len(c.separations) for s, c in cases.items()}
        )
        data.seeds = sorted(cases) if teacher is not None else sorted(labelled)
        return data

    def _restricted_to_teacher_targets(
        self, in_field: dict[int, list[np.ndarray]]
    ) -> dict[int, list[np.ndarray]]:
        """With a teacher, the drawable points of a pair are its in-field points that the
        teacher labelled, as positions into the teacher's targets (whose `index` holds their
        bank indices); without one, the in-field bank indices themselves."""
        if self.teacher is None:
            return in_field
        restricted = {}
        for seed, per_pair in in_field.items():
            if seed not in self.teacher:
                raise ValueError(f"the teacher targets have no case {seed}: rebuild them")
            targets = self.teacher[seed]["index"].numpy()
            restricted[seed] = [np.flatnonzero(np.isin(targets, inside)) for inside in per_pair]
        return restricted

    def sample(self, rng: np.random.Generator) -> Batch:
        chosen = [self.seeds[i] for i in rng.integers(0, len(self.seeds), self.run.batch)]
        parts = [self._sample_case(self.cases[s], rng) for s in chosen]
        batch = Batch(
            images=torch.from_numpy(np.stack([p[0] for p in parts])),
            projections=torch.from_numpy(np.stack([p[1] for p in parts])).float(),
            reference_depths=torch.from_numpy(np.stack([p[2] for p in parts])).float(),
            points=torch.from_numpy(np.stack([p[3] for p in parts])),
            labels=torch.from_numpy(np.stack([p[4] for p in parts])),
            labelled=[s in self.labelled for s in chosen],
        )
        if self.teacher is not None:
            targets = [self.teacher[s] for s in chosen]
            batch.teacher_probabilities = torch.stack(
                [t["probabilities"][p[5]].float() for t, p in zip(targets, parts, strict=True)]
            )
            batch.teacher_features = torch.stack(
                [t["features"][p[5]].float() for t, p in zip(targets, parts, strict=True)]
            )
        return batch

    def _sample_case(self, case: TrainingCase, rng: np.random.Generator) -> tuple:
        pair = int(rng.integers(0, len(case.separations)))
        # only points inside the views' field (the only ones inference queries); with a
        # teacher, only those it labelled, as positions into its targets
        drawable = self.drawable[case.seed][pair]
        position = drawable[np.sort(rng.choice(len(drawable), self.run.points, replace=False))]
        targets = None if self.teacher is None else self.teacher[case.seed]["index"].numpy()
        index = position if targets is None else targets[position]
        return (
            case.images[pair],
            case.projections[pair],
            case.reference_depths[pair],
            case.points[index],
            case.labels[index],
            torch.from_numpy(position),
        )


def points_in_field(case: TrainingCase, field_mm: float, pair: int = 0) -> np.ndarray:
    """Indices of the bank points inside the cube of the normalised views' field around the
    pair's isocentre (without recorded isocentres, the CT volume centre, where simulate_pair
    puts it); inference never queries outside it, so training there would only teach
    guesses from zero-padded features."""
    if case.isocentres is not None:
        centre = np.asarray(case.isocentres[pair])
    else:
        shape_centre = (np.asarray(case.ct.shape) - 1) / 2.0
        centre = case.ct_affine[:3, :3] @ shape_centre + case.ct_affine[:3, 3]
    inside = np.all(np.abs(case.points - centre) <= field_mm / 2.0, axis=1)
    return np.flatnonzero(inside)


def run_data_settings(run: StudentRun) -> DataSettings:
    return DataSettings(
        size_px=run.view_px,
        pairs_per_case=run.pairs_per_case,
        isocentre_jitter_mm=run.isocentre_jitter_mm,
        near_orthogonal_fraction=run.near_orthogonal_fraction,
        first_angle_jitter_deg=run.first_angle_jitter_deg,
        **{name: getattr(run, name) for name in VARIATION_OPTIONS},
    )


def run_network_config(run: StudentRun) -> dict:
    """The run's network config with the view grid it trains on (inference normalises to it)."""
    grid = {"view_size": run.view_px, "iso_pixel_mm": run_data_settings(run).iso_pixel_mm}
    return {**run.config, **grid}


def _load_teacher_cache(path: str | None) -> dict | None:
    if not path:
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def batch_loss(model: XrayStudent, batch: Batch, run: StudentRun) -> torch.Tensor:
    features, logits = model(batch.images, batch.projections, batch.reference_depths, batch.points)
    if batch.teacher_probabilities is None:
        return label_loss(logits, batch.labels)
    losses = []
    for i, labelled in enumerate(batch.labelled):
        losses.append(
            distillation_loss(
                logits[i],
                features[i],
                batch.labels[i] if labelled else None,
                batch.teacher_probabilities[i],
                batch.teacher_features[i],
                run.distill_weight,
            )
        )
    return torch.stack(losses).mean()


def learning_rate(run: StudentRun, step: int) -> float:
    """Linear warm-up (50 steps, or a tenth of a short run), then cosine decay to 2%."""
    warm = min(1.0, (step + 1) / min(50, max(1, run.steps // 10)))
    progress = min(1.0, step / max(1, run.steps))
    return run.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


class StudentTrainer(TrainingLoop):
    kind = "student-training"

    def __init__(self, run: StudentRun, data: StudentData | None = None) -> None:
        torch.set_num_threads(run.threads)
        torch.manual_seed(run.seed)
        self.run = run
        run.config = run_network_config(run)
        self.model = XrayStudent(StudentConfig.from_dict(run.config))
        self.init_sha256 = None
        if run.init:
            self.model.load_state_dict(student_weights(run.init, self.model.config))
            # the file may be replaced later (a shipped model fine-tuned into its successor)
            self.init_sha256 = file_sha256(run.init)
        self.optimiser = torch.optim.AdamW(
            self.model.parameters(), lr=run.lr, weight_decay=run.weight_decay
        )
        self.rng = np.random.default_rng([run.seed, 99])
        self._start()
        self.data = data or StudentData(run)

    def extra_state(self) -> dict:
        return {"init_sha256": self.init_sha256} if self.init_sha256 else {}

    def restore_extra_state(self, state: dict) -> None:
        # the start's digest as it was when the run began, not of whatever file is there now
        self.init_sha256 = state.get("init_sha256")

    def train_step(self) -> float:
        for group in self.optimiser.param_groups:
            group["lr"] = learning_rate(self.run, self.step)
        batch = self.data.sample(self.rng)
        self.model.train()
        loss = batch_loss(self.model, batch, self.run)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimiser.step()
        self.step += 1
        return float(loss.detach())


OPTIONAL_TYPES = {"isocentre_jitter_mm": float}
# options whose values have a range (the same checks as `python -m reconstruction.training.data`)
CHECKED_TYPES = {
    "near_orthogonal_fraction": fraction_argument,
    "first_angle_jitter_deg": non_negative_argument,
    **{name: check for name, (check, _) in VARIATION_OPTIONS.items()},
}


def parse_args(argv: list[str] | None) -> tuple[StudentRun, bool]:
    defaults = StudentRun()
    parser = argparse.ArgumentParser(prog="python -m reconstruction.training.train_student")
    for name, value in asdict(defaults).items():
        if name == "config":
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", default=value)
        else:
            kind = type(value) if value is not None else OPTIONAL_TYPES.get(name, str)
            kind = CHECKED_TYPES.get(name, kind)
            parser.add_argument(flag, type=kind, default=value)
    parser.add_argument("--config", type=json.loads, default=None, help="StudentConfig JSON")
    parser.add_argument("--resume", action="store_true", help="continue from --out if present")
    parser.add_argument("--export", default=None, help="write the shipped model from --out")
    args = vars(parser.parse_args(argv))
    resume = args.pop("resume")
    run_export = args.pop("export")
    config = args.pop("config")
    run = StudentRun(**args)
    if config:
        run.config = {**run.config, **config}
    try:
        run_data_settings(run)
    except ValueError as exc:
        parser.error(str(exc))
    if run.init:  # refused before the training data is loaded
        try:
            student_weights(run.init, StudentConfig.from_dict(run_network_config(run)))
        except (OSError, ValueError) as exc:
            parser.error(f"--init: {exc}")
    return run, resume, run_export


def student_state(path: str | Path) -> tuple[StudentConfig, dict[str, torch.Tensor], dict]:
    """Network config, float32 weights and metadata of a shipped student file or a student
    training checkpoint (whose metadata is empty)."""
    try:
        state = load_checkpoint(path)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable model file ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} is neither a shipped student nor a student checkpoint")
    if "weights" in state:  # shipped file
        config, weights = state["config"], state["weights"]
    elif state.get("kind") == StudentTrainer.kind:
        config, weights = state["run"]["config"], state["model"]
    else:
        raise ValueError(f"{path} is neither a shipped student nor a student checkpoint")
    floats = {name: tensor.float() for name, tensor in weights.items()}
    return StudentConfig.from_dict(config), floats, state.get("metadata", {})


def require_network(path: str | Path, found: StudentConfig, expected: StudentConfig) -> None:
    """Weights of another shape or view grid would load into the wrong layers or mean
    another thing."""
    if found != expected:
        raise ValueError(f"{path} holds another network: {found} is not {expected}")


def student_weights(path: str | Path, config: StudentConfig | None = None) -> dict:
    """float32 weights of a student file (student_state); with `config`, refused unless the
    file's network is that one."""
    found, weights, _ = student_state(path)
    if config is not None:
        require_network(path, found, config)
    return weights


def export_student(training_checkpoint: str | Path, target: str | Path) -> Path:
    """Shipped file (float16 weights, config, provenance) from a training checkpoint."""
    state = load_checkpoint(training_checkpoint)
    run = state["run"]
    model = XrayStudent(StudentConfig.from_dict(run["config"]))
    model.load_state_dict(state["model"])
    metadata = {
        "steps": state["step"],
        "training_wall_time_s": round(state["elapsed_s"], 1),
        "run": {k: v for k, v in run.items() if k != "config"},
        "final_loss": state["history"][-1]["loss"] if state["history"] else None,
    }
    if state.get("init_sha256"):
        metadata["init_sha256"] = state["init_sha256"]
    return export_model(model, run["config"], target, metadata)


def main(argv: list[str] | None = None) -> int:
    run, resume, run_export = parse_args(argv)
    if run_export:
        print(f"exported {export_student(run.out, run_export)}")
        return 0
    trainer = StudentTrainer(run)
    if resume and trainer.resume_if_saved():
        print(f"resumed at step {trainer.step}", flush=True)
    print(
        f"student: {sum(p.numel() for p in trainer.model.parameters()) / 1e6:.2f} M parameters, "
        f"{len(trainer.data.seeds)} training cases ({len(trainer.data.labelled)} labelled)",
        flush=True,
    )
    trainer.fit(log=lambda text: print(text, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
