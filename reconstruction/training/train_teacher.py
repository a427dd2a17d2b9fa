"""Train the CT teacher (semi-supervised) and export its targets for distillation.

    python -m reconstruction.training.train_teacher --out var/runs/teacher.pt --steps 3000
    python -m reconstruction.training.train_teacher --out var/runs/teacher.pt --export \
        reconstruction/models/teacher.pt            # the shipped, float16 model
    python -m reconstruction.training.train_teacher --out var/runs/teacher.pt --targets \
        var/runs/teacher_targets.pt     # soft labels + point features on every bank point

Data (`training.teacher_data`): the training seeds of the shared split; the seeded
`labelled_fraction` of them are labelled and built in three conditions (clean, low dose,
metal plate), the others unlabelled in one condition each; every case carries the classical
segmentation, the teacher's prior input. Each step takes one labelled and one unlabelled case
and a random crop of each CT (`crop_mm` cube; the network is fully convolutional, inference
uses the whole CT):
- labelled: cross-entropy against the exact labels of the bank points inside the crop, on
  the CT with random extra noise (a dose augmentation);
- unlabelled: consistency under dose augmentation: the prediction on a lightly noised copy
  (detached) is the soft target of the prediction on a heavily noised copy.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reconstruction.networks.teacher import CTTeacher, TeacherConfig, prepare_ct
from reconstruction.phantoms.dataset import case_seeds
from reconstruction.training.checkpoints import (
    export_model,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from reconstruction.training.data import (
    DEFAULT_CACHE,
    TrainingCase,
    add_case_arguments,
    case_settings_from_args,
    labelled_subset,
    load_case,
    split_seeds,
    training_seeds,
)
from reconstruction.training.loop import TrainingLoop
from reconstruction.training.losses import consistency_loss, label_loss
from reconstruction.training.teacher_data import (
    DEFAULT_TEACHER_CACHE,
    TeacherCase,
    TeacherDataSettings,
    classical_prior,
    load_teacher_case,
    prebuild,
    training_plan,
)
from reconstruction.volume import Volume

CaseKey = tuple[int, str]  # (seed, condition)
EXTRA_SEED_START = 1000


@dataclass
class TeacherRun:
    out: str = "var/runs/teacher.pt"
    steps: int = 3000
    crop_mm: float = 96.0
    points: int = 3072
    lr: float = 2e-3
    seed: int = 0
    master_seed: int = 2026
    n_train: int = 64
    # Teacher-only phantoms from spawn index EXTRA_SEED_START on: disjoint from the shared
    # training seeds and from every held-out seed (those follow the first n_train).
    n_extra: int = 0
    labelled_fraction: float = 0.2
    consistency_weight: float = 0.5
    light_noise_hu: float = 20.0
    heavy_noise_hu: float = 60.0
    time_limit_min: float = 30.0
    checkpoint_every: int = 50
    log_every: int = 10
    threads: int = 1  # OpenMP spin-waits make 2 threads far slower on a loaded 2-core box
    cache: str = str(DEFAULT_TEACHER_CACHE)
    workers: int = 2  # processes building the training cases
    config: dict = field(default_factory=lambda: TeacherConfig().to_dict())


@dataclass
class Crop:
    hu: np.ndarray  # float32
    affine: np.ndarray
    prior: np.ndarray
    points: np.ndarray
    labels: np.ndarray


def teacher_seed_groups(run: TeacherRun) -> list[tuple[list[int], int]]:
    """(seeds, seed of the labelled choice): the shared training seeds (the same labelled
    choice as the student's) and, if asked, the teacher-only extra seeds."""
    groups = [(split_seeds(run.master_seed, run.n_train, 0)["train"], run.master_seed)]
    if run.n_extra > 0:
        spawned = case_seeds(run.master_seed, EXTRA_SEED_START + run.n_extra)
        groups.append((spawned[EXTRA_SEED_START:], run.master_seed + 1))
    return groups


def crop_case(case: TeacherCase, crop_mm: float, rng: np.random.Generator) -> Crop:
    """A random axis-aligned crop of the CT and its prior, and the bank points inside it."""
    spacing = np.linalg.norm(case.ct_affine[:3, :3], axis=0)
    size = np.minimum(np.round(crop_mm / spacing).astype(int), case.ct.shape)
    start = np.array([rng.integers(0, n - s + 1) for n, s in zip(case.ct.shape, size, strict=True)])
    box = tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))
    affine = case.ct_affine.copy()
    affine[:3, 3] = case.ct_affine[:3, :3] @ start + case.ct_affine[:3, 3]
    ijk = (case.points - case.ct_affine[:3, 3]) @ np.linalg.inv(case.ct_affine[:3, :3]).T
    inside = np.all((ijk >= start + 0.5) & (ijk <= start + size - 1.5), axis=1)
    return Crop(
        case.ct[box].astype(np.float32),
        affine,
        case.prior[box],
        case.points[inside],
        case.labels[inside],
    )


def add_noise(hu: np.ndarray, sigma_max: float, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(0, sigma_max)
    return hu + rng.normal(0, sigma, hu.shape).astype(np.float32)


class TeacherTrainer(TrainingLoop):
    kind = "teacher-training"

    def __init__(
        self,
        run: TeacherRun,
        cases: dict[CaseKey, TeacherCase] | None = None,
        labelled: list[CaseKey] | None = None,
    ) -> None:
        """`cases` and `labelled` (keys of the labelled cases) replace the phantom data."""
        torch.set_num_threads(run.threads)
        torch.manual_seed(run.seed)
        self.run = run
        self.config = TeacherConfig.from_dict(run.config)
        self.model = CTTeacher(self.config)
        self.optimiser = torch.optim.AdamW(self.model.parameters(), lr=run.lr, weight_decay=1e-5)
        self.rng = np.random.default_rng([run.seed, 77])
        self._start()
        if cases is None:
            cases, labelled = self._phantom_cases(run)
        self.cases = cases
        self.labelled = sorted(labelled or [])
        self.unlabelled = sorted(k for k in cases if k not in set(self.labelled))

    @staticmethod
    def _phantom_cases(run: TeacherRun) -> tuple[dict[CaseKey, TeacherCase], list[CaseKey]]:
        plan = []
        for seeds, choice_seed in teacher_seed_groups(run):
            chosen = set(labelled_subset(seeds, run.labelled_fraction, choice_seed))
            plan += training_plan(sorted(chosen), [s for s in seeds if s not in chosen])
        settings, cache = TeacherDataSettings(), Path(run.cache)
        if run.workers > 1:
            prebuild(plan, settings, cache, run.workers, log=lambda t: print(t, flush=True))
        cases = {(s, c): load_teacher_case(s, c, settings, cache) for s, c, _ in plan}
        return cases, [(s, c) for s, c, is_labelled in plan if is_labelled]

    def _points(self, points: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        count = min(self.run.points, len(points))
        index = np.sort(self.rng.choice(len(points), count, replace=False))
        return torch.from_numpy(points[index]).float(), torch.from_numpy(labels[index])

    def _predict(self, crop: Crop, hu: np.ndarray, points: torch.Tensor) -> torch.Tensor:
        return self.model(prepare_ct(hu, crop.affine, self.config, crop.prior), points)[1]

    def _crop(self, keys: list[CaseKey]) -> Crop:
        key = keys[self.rng.integers(len(keys))]
        return crop_case(self.cases[key], self.run.crop_mm, self.rng)

    def train_step(self) -> float:
        warm = min(1.0, (self.step + 1) / 30)
        lr = (
            self.run.lr
            * warm
            * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * self.step / self.run.steps)))
        )
        for group in self.optimiser.param_groups:
            group["lr"] = lr
        self.model.train()
        crop = self._crop(self.labelled)
        pts, lab = self._points(crop.points, crop.labels)
        noisy = add_noise(crop.hu, self.run.heavy_noise_hu, self.rng)
        loss = label_loss(self._predict(crop, noisy, pts), lab)
        if self.unlabelled and self.run.consistency_weight > 0:
            crop = self._crop(self.unlabelled)
            pts, _ = self._points(crop.points, crop.labels)  # labels unused: unlabelled case
            with torch.no_grad():
                light = add_noise(crop.hu, self.run.light_noise_hu, self.rng)
                target = self._predict(crop, light, pts)
            heavy = self._predict(crop, add_noise(crop.hu, self.run.heavy_noise_hu, self.rng), pts)
            loss = loss + self.run.consistency_weight * consistency_loss(heavy, target)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimiser.step()
        self.step += 1
        return float(loss.detach())

    def extra_state(self) -> dict:
        return {"config": self.config.to_dict()}

    def initialise_from(self, path: str | Path) -> None:
        """Fine-tuning: the weights of a checkpoint or export; a fresh optimiser and schedule."""
        self.model.load_state_dict(load_teacher(path).float().state_dict())


def teacher_targets(
    model: CTTeacher,
    cases: dict[int, TrainingCase],
    stride: int = 1,
    chunk: int = 32768,
    priors: dict[int, np.ndarray] | None = None,
) -> dict[int, dict[str, torch.Tensor]]:
    """Soft labels and point features of the teacher (float16) on every `stride`-th bank
    point of every (student) case; "index" holds those bank positions. The classical prior is
    computed from each CT unless given in `priors`."""
    model.eval()
    out = {}
    with torch.inference_mode():
        for seed, case in cases.items():
            prior = None
            if model.config.prior:
                prior = (priors or {}).get(seed)
                if prior is None:
                    prior = classical_prior(Volume(case.ct, case.ct_affine, "CT"))
            ct = prepare_ct(case.ct.astype(np.float32), case.ct_affine, model.config, prior)
            maps = model.encode(ct)
            index = np.arange(0, len(case.points), stride)
            points = case.points[index]
            features, probabilities = [], []
            for start in range(0, len(points), chunk):
                pts = torch.from_numpy(points[start : start + chunk]).float()
                feature, logits = model.query(maps, ct, pts)
                features.append(feature.half())
                probabilities.append(torch.softmax(logits, -1).half())
            out[int(seed)] = {
                "index": torch.from_numpy(index),
                "features": torch.cat(features),
                "probabilities": torch.cat(probabilities),
            }
    return out


def load_teacher(path: str | Path) -> CTTeacher:
    """A training checkpoint ("model") or a shipped export (float16 "weights")."""
    state = load_checkpoint(path)
    model = CTTeacher(TeacherConfig.from_dict(state["config"]))
    if "model" in state:
        model.load_state_dict(state["model"])
    else:
        load_weights(model, state["weights"])
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconstruction.training.train_teacher")
    for name, value in asdict(TeacherRun()).items():
        if name != "config":
            parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--init", type=Path, default=None, help="start from these weights (fine-tune; new schedule)"
    )
    parser.add_argument("--targets", type=Path, default=None, help="write distillation targets")
    parser.add_argument("--target-stride", type=int, default=3, help="every n-th bank point")
    parser.add_argument("--export", type=Path, default=None, help="write the shipped model")
    parser.add_argument(
        "--student-cache", default=None, help="student case cache (for --targets; default its own)"
    )
    parser.add_argument("--student-view-px", type=int, default=128, help="the student run's")
    parser.add_argument("--student-pairs", type=int, default=4, help="the student run's")
    parser.add_argument(
        "--student-isocentre-jitter-mm", type=float, default=None, help="the student run's"
    )
    add_case_arguments(parser, prefix="student-")
    args = vars(parser.parse_args(argv))
    student_data = case_settings_from_args(parser, args, prefix="student-")
    resume, targets, stride = args.pop("resume"), args.pop("targets"), args.pop("target_stride")
    init = args.pop("init")
    if init is not None and not init.is_file():
        parser.error(f"--init: no model file at {init}")
    export, student_cache = args.pop("export"), args.pop("student_cache")
    run = TeacherRun(**args)
    if export is not None:
        state = load_checkpoint(run.out)
        metadata = {"steps": state["step"], "training_wall_time_s": round(state["elapsed_s"], 1)}
        model = load_teacher(run.out)
        print(f"exported {export_model(model, state['config'], export, metadata)}")
        return 0
    if targets is not None:
        # the bank points depend on the student's data settings: label the cases it trains on
        model = load_teacher(run.out)
        seeds = training_seeds(run.master_seed, run.n_train)
        cache = Path(student_cache or DEFAULT_CACHE)
        start = time.perf_counter()
        cases = {s: load_case(s, student_data, cache) for s in seeds}
        result = teacher_targets(model, cases, stride)
        save_checkpoint(targets, result)
        print(f"teacher targets for {len(result)} cases in {time.perf_counter() - start:.0f} s")
        return 0
    trainer = TeacherTrainer(run)
    if resume and trainer.resume_if_saved():
        print(f"resumed at step {trainer.step}", flush=True)
    elif init is not None:
        trainer.initialise_from(init)
        print(f"initialised from {init}", flush=True)
    print(
        f"teacher: {sum(p.numel() for p in trainer.model.parameters()) / 1e6:.3f} M parameters, "
        f"{len(trainer.labelled)} labelled + {len(trainer.unlabelled)} unlabelled cases",
        flush=True,
    )
    trainer.fit(log=lambda text: print(text, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
