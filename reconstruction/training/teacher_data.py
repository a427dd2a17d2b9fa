"""Training cases of the CT teacher: phantom CTs under three acquisition conditions, each with
the classical segmentation (the teacher's prior input) and a bank of exactly labelled points.

Conditions (seeded per case): "clean" (the generator's default dose), "low_dose" (relative
dose log-uniform in [0.05, 0.5], a noisier CT) and "metal" (the generator's HTO plate with
screws and its streak artefacts). Labelled training cases are built in all three conditions;
each unlabelled case in one condition (cycling by its index), so the semi-supervised term sees
every condition too. Seeds are the training seeds of `training.data.split_seeds`, so the held-
out phantoms of the evaluation are never used. Point placement uses only the CT (as in
`training.data`), labels come from the phantom's exact bone SDFs; the labels of unlabelled
cases are stored (for checks) but never read by the trainer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reconstruction.phantoms.findings import Findings
from reconstruction.phantoms.generator import generate_case
from reconstruction.training.data import DataSettings, exact_labels, sample_query_points

CONDITIONS = ("clean", "low_dose", "metal")
DEFAULT_TEACHER_CACHE = Path(os.environ.get("KNEE_TEACHER_CACHE", "var/cache/teacher"))
CACHE_VERSION = 1


@dataclass(frozen=True)
class TeacherDataSettings:
    ct_spacing_mm: float = 1.0
    points_per_case: int = 60_000
    low_dose: tuple[float, float] = (0.05, 0.5)

    def key(self) -> str:
        text = json.dumps({"v": CACHE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class TeacherCase:
    seed: int
    condition: str
    ct: np.ndarray  # (I, J, K) int16 HU
    ct_affine: np.ndarray  # (4, 4)
    prior: np.ndarray  # (I, J, K) uint8 classical labels (zeros if the method refused)
    points: np.ndarray  # (N, 3) float32 patient mm
    labels: np.ndarray  # (N,) uint8 exact labels


def condition_options(seed: int, condition: str, settings: TeacherDataSettings) -> dict:
    """generate_case keyword arguments of one condition (the low dose is drawn by seed)."""
    if condition == "clean":
        return {}
    if condition == "low_dose":
        rng = np.random.default_rng([seed, 31])
        return {"dose": float(np.exp(rng.uniform(*np.log(settings.low_dose))))}
    if condition == "metal":
        return {"findings": Findings(metal=True)}
    raise ValueError(f"unknown condition {condition!r}; known: {CONDITIONS}")


def classical_prior(ct, refuse_to_zeros: bool = False) -> np.ndarray:
    """The classical labels of a CT Volume; a refused CT gives zeros only if asked."""
    from reconstruction.errors import ImagingError
    from reconstruction.segmentation import segment

    try:
        return np.asarray(segment(ct).labels.array, dtype=np.uint8)
    except ImagingError:
        if not refuse_to_zeros:
            raise
        return np.zeros(ct.shape, dtype=np.uint8)


def build_teacher_case(seed: int, condition: str, settings: TeacherDataSettings) -> TeacherCase:
    case = generate_case(
        seed,
        fov="knee",
        spacing=(settings.ct_spacing_mm,) * 3,
        with_meshes=False,
        **condition_options(seed, condition, settings),
    )
    rng = np.random.default_rng([seed, CONDITIONS.index(condition), 2027])
    points = sample_query_points(case.ct, DataSettings(), rng, settings.points_per_case)
    return TeacherCase(
        seed=seed,
        condition=condition,
        ct=np.asarray(case.ct.array, dtype=np.int16),
        ct_affine=np.asarray(case.ct.affine, dtype=float),
        prior=classical_prior(case.ct, refuse_to_zeros=True),
        points=points,
        labels=exact_labels(seed, points.astype(float)),
    )


def cache_path(cache_dir: Path, seed: int, condition: str, settings: TeacherDataSettings) -> Path:
    return Path(cache_dir) / f"teacher-{settings.key()}" / f"case_{seed}_{condition}.npz"


def load_teacher_case(
    seed: int,
    condition: str,
    settings: TeacherDataSettings = TeacherDataSettings(),
    cache_dir: Path = DEFAULT_TEACHER_CACHE,
) -> TeacherCase:
    """The cached case, built and written atomically (write, then rename) on first use."""
    path = cache_path(cache_dir, seed, condition, settings)
    if path.exists():
        with np.load(path) as data:
            fields = {name: data[name] for name in data.files}
        fields["seed"], fields["condition"] = int(fields["seed"]), str(fields["condition"])
        return TeacherCase(**fields)
    case = build_teacher_case(seed, condition, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(temp, **asdict(case))
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return case


def training_plan(labelled: list[int], unlabelled: list[int]) -> list[tuple[int, str, bool]]:
    """(seed, condition, is_labelled): labelled seeds in every condition, each unlabelled seed
    in one condition cycling through them."""
    plan = [(s, c, True) for s in labelled for c in CONDITIONS]
    plan += [(s, CONDITIONS[i % len(CONDITIONS)], False) for i, s in enumerate(unlabelled)]
    return plan


def _build_one(args: tuple[int, str, TeacherDataSettings, str]) -> tuple[int, str, float]:
    seed, condition, settings, cache_dir = args
    start = time.perf_counter()
    load_teacher_case(seed, condition, settings, Path(cache_dir))
    return seed, condition, time.perf_counter() - start


def prebuild(
    plan: list[tuple[int, str, bool]],
    settings: TeacherDataSettings,
    cache_dir: Path,
    workers: int,
    log=print,
) -> None:
    """Fill the cache in parallel processes, one progress line per case."""
    jobs = [(s, c, settings, str(cache_dir)) for s, c, _ in plan]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (seed, condition, seconds) in enumerate(pool.map(_build_one, jobs), start=1):
            log(f"[{done}/{len(jobs)}] case {seed} {condition} {seconds:.1f} s")
