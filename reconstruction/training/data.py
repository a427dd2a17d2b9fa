"""On-the-fly phantom + DRR training samples, cached on disk, deterministic by seed.

One *case* = one phantom knee (reconstruction.phantoms, knee field of view, 1 mm CT)
with everything both networks train on:
- `pairs_per_case` biplanar DRR pairs (reconstruction.drr.simulate_pair) at random
  separations in [30, 90] degrees, a jittered first angle and random doses, normalised to
  the student's canonical view grid (geometry.normalise_view) with their matrices;
- a bank of query points with exact labels: point placement uses only the CT (jittered
  around the >= `bone_hu` boundary, plus uniform points in the field of view), so the bank
  of an unlabelled case carries no label information; labels come from the phantom's
  exact signed distance functions (sub-voxel exact, not nearest-voxel labels);
- the CT itself (1 mm, int16) and a 2 mm copy for the teacher's 3D encoder.

Splits: seeds are spawned from one master seed (phantoms.dataset.case_seeds); the first
`n_train` are training cases, the rest held out, so no phantom is in both. Which training
cases count as labelled is a seeded choice in the trainers (`labelled_subset`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from reconstruction.drr.simulate import DRRSettings, bone_centre, simulate_pair
from reconstruction.networks.geometry import (
    DEFAULT_ISO_PIXEL_MM,
    DEFAULT_VIEW_SIZE,
    REFERENCE_FIELD_MM,
    normalise_view,
)
from reconstruction.phantoms.dataset import case_seeds
from reconstruction.phantoms.femur import (
    FEMUR_VERSION,
    MAX_CONDYLAR_OFFSET_VARIATION,
    MAX_CONDYLE_VARIATION,
    MAX_FEMUR_VARIATION,
    MAX_TROCHLEA_VARIATION,
)
from reconstruction.phantoms.generator import case_anatomy, field_of_view, generate_case
from reconstruction.phantoms.params import sample_params
from reconstruction.phantoms.patella import (
    MAX_PATELLA_FORM_VARIATION,
    MAX_PATELLA_RIDGE_VARIATION,
    MAX_PATELLA_VARIATION,
    PATELLA_VERSION,
)
from reconstruction.phantoms.soft_tissue import MAX_SOFT_TISSUE
from reconstruction.phantoms.tibia import MAX_TIBIA_VARIATION
from reconstruction.phantoms.variation import MAX_STRENGTH, MAX_TILT_VARIATION
from reconstruction.pseudoct import continued_pseudo_ct, sample_pseudo_ct_params
from reconstruction.volume import Volume

DEFAULT_CACHE = Path(os.environ.get("KNEE_TRAINING_CACHE", "var/cache/training"))
CACHE_VERSION = 1
# Spawned seeds 64..99 are held out: the student's and teacher's test phantoms and the
# teacher's validation phantoms live there, so training beyond 64 cases continues at 100.
HELD_OUT_BLOCK = (64, 100)


@dataclass(frozen=True)
class DataSettings:
    size_px: int = DEFAULT_VIEW_SIZE  # normalised view grid (also the DRR's detector width)
    pairs_per_case: int = 4
    points_per_case: int = 60_000
    near_fraction: float = 0.6  # sigma near_sigma_mm around the bone boundary
    far_fraction: float = 0.2  # sigma far_sigma_mm; the rest uniform in the field of view
    near_sigma_mm: float = 1.0
    far_sigma_mm: float = 4.0
    bone_hu: float = 200.0
    separation_deg: tuple[float, float] = (30.0, 90.0)
    # this share of the pairs draws its separation from the top `near_orthogonal_band_deg`
    # of the range instead: 90 deg (the clinical standard) is the edge of the range, and a
    # model trained on a plain uniform draw was worst exactly there
    near_orthogonal_fraction: float = 0.0
    near_orthogonal_band_deg: float = 10.0
    first_angle_jitter_deg: float = 5.0
    dose_photons: tuple[float, float] = (2e3, 1e6)  # log-uniform, per 128 px pixel
    ct_spacing_mm: float = 1.0
    phantom_dose: float = 1.0  # relative CT dose of the phantom generator
    # None: the beam centred on the CT volume (the first models); a number: on the bones
    # (drr.simulate.bone_centre, as a radiographer does) plus a uniform offset up to this many
    # mm per axis, so the network cannot learn where the knee sits relative to the centre
    isocentre_jitter_mm: float | None = None
    # phantoms.variation strength: smooth shape warps, patella size and limb tilt beyond the
    # parametric family (0: the plain generator, as for every held-out phantom)
    shape_variation: float = 0.0
    # phantoms.soft_tissue strength: muscle bulges and fat regions in the leg (0: none)
    soft_tissue_variation: float = 0.0
    # phantoms.patella strength: squarer patellae with thicker cortex (0: the ellipsoid)
    patella_variation: float = 0.0
    # phantoms.femur strength: a popliteal hollow (0: the convex femur)
    femur_variation: float = 0.0
    # phantoms.tibia strength: a posterior recess below the plateau (0: the convex tibia)
    tibia_variation: float = 0.0
    # phantoms.femur.vary_condyles strength: squarer distal condyles (0: ellipsoids)
    condyle_variation: float = 0.0
    # phantoms.femur.vary_trochlea strength: a lower trochlea, longer condyles (0: none)
    trochlea_variation: float = 0.0
    # phantoms.patella.vary_patella_form strength: taller, slimmer, deeper patellae (0: none)
    patella_form_variation: float = 0.0
    # phantoms.patella.vary_patella_ridge strength: a median ridge, two facets (0: none)
    patella_ridge_variation: float = 0.0
    # phantoms.femur.build_offset_anatomy strength: the shaft further in front of the
    # posterior condyles (0: the generator's offset)
    condylar_offset_variation: float = 0.0
    # phantoms.variation.vary_tilt strength: the limb turned about both horizontal axes
    # (0: upright)
    tilt_variation: float = 0.0
    # share of each case's pairs rendered from the pseudo-CT of its label map (uniform
    # cortex, no canal, a body around the structures; tissue values drawn per case) instead
    # of its own CT: the renderer the real knee is seen through (0: none)
    pseudo_ct_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.pseudo_ct_fraction > 0 and pseudo_ct_pair_count(self) == 0:
            raise ValueError(
                f"a pseudo-CT fraction of {self.pseudo_ct_fraction} renders none of "
                f"{self.pairs_per_case} pairs (it rounds to 0); use 0 or more than "
                f"{1 / (2 * self.pairs_per_case):g}"
            )

    @property
    def iso_pixel_mm(self) -> float:
        """Pixel size at the isocentre: the reference detector's field over `size_px`."""
        if self.size_px == DEFAULT_VIEW_SIZE:
            return DEFAULT_ISO_PIXEL_MM
        return REFERENCE_FIELD_MM / self.size_px

    def key(self) -> str:
        fields = asdict(self)
        if fields["isocentre_jitter_mm"] is None:  # keeps the keys of the earlier caches
            del fields["isocentre_jitter_mm"]
        if fields["near_orthogonal_fraction"] == 0.0:
            del fields["near_orthogonal_fraction"], fields["near_orthogonal_band_deg"]
        for name in VARIATION_OPTIONS:
            if fields[name] == 0.0:  # keeps the keys of the caches made without it
                del fields[name]
        for name, (version_field, version) in VARIATION_VERSIONS.items():
            if fields.get(name):  # a changed variation makes its earlier caches stale
                fields[version_field] = version
        if any(fields.get(name) for name in RELABELLED_VARIATIONS):
            fields["labels_version"] = LABELS_VERSION
        text = json.dumps({"v": CACHE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class TrainingCase:
    seed: int
    images: np.ndarray  # (K, 2, S, S) float32 normalised views
    projections: np.ndarray  # (K, 2, 3, 4) float64, patient mm -> normalised pixel
    reference_depths: np.ndarray  # (K, 2) depth of the isocentre per view, mm
    separations: np.ndarray  # (K,) degrees
    doses: np.ndarray  # (K,) photons per pixel
    points: np.ndarray  # (N, 3) float32 patient mm
    labels: np.ndarray  # (N,) uint8, 0 background, 1 femur, 2 tibia, 3 fibula, 4 patella
    ct: np.ndarray  # (I, J, K) int16 HU, 1 mm
    ct_affine: np.ndarray  # (4, 4)
    fov_box: np.ndarray  # (2, 3) mm
    isocentres: np.ndarray | None = None  # (K, 3) mm per pair; None: the CT volume centre


def split_seeds(master_seed: int, n_train: int, n_test: int) -> dict[str, list[int]]:
    """Disjoint training and held-out phantom seeds spawned from one master seed."""
    seeds = case_seeds(master_seed, n_train + n_test)
    split = {"train": seeds[:n_train], "test": seeds[n_train:]}
    assert not set(split["train"]) & set(split["test"])
    return split


def training_seeds(master_seed: int, n_train: int) -> list[int]:
    """The first `n_train` spawned seeds outside HELD_OUT_BLOCK (the first 64 are the
    original training seeds, so runs of <= 64 cases are unchanged)."""
    start, stop = HELD_OUT_BLOCK
    seeds = case_seeds(master_seed, n_train + (stop - start if n_train > start else 0))
    chosen = seeds[:start] + seeds[stop:] if n_train > start else seeds[:n_train]
    return chosen[:n_train]


def exact_labels(
    seed: int, points: np.ndarray, variations: dict[str, float] | None = None
) -> np.ndarray:
    """Label of every point from the exact bone SDFs (field of view box applied) of the
    phantom drawn with `variations` (strengths named as DataSettings fields, as
    `phantom_variations` takes them): the bones its CT shows."""
    anatomy = case_anatomy(sample_params(seed), **phantom_variations(variations or {}))
    lo, hi = field_of_view(anatomy, "knee")
    labels = np.zeros(len(points), dtype=np.uint8)
    inside_fov = np.all((points >= lo) & (points <= hi), axis=1)
    for bone in anatomy.bones.values():
        inside = inside_fov & (bone.sdf(points) < 0)
        labels[inside] = bone.label
    return labels


def sample_query_points(
    ct: Volume, settings: DataSettings, rng: np.random.Generator, count: int
) -> np.ndarray:
    """CT-only placement: jitter around the bone/soft-tissue boundary + uniform in the FOV."""
    bone = np.asarray(ct.array) >= settings.bone_hu
    boundary = np.argwhere(bone & ~ndimage.binary_erosion(bone))
    n_near = int(count * settings.near_fraction)
    n_far = int(count * settings.far_fraction)
    n_uniform = count - n_near - n_far
    picks = boundary[rng.integers(0, len(boundary), n_near + n_far)].astype(float)
    sigma = np.repeat([settings.near_sigma_mm, settings.far_sigma_mm], [n_near, n_far])[:, None]
    spacing = np.asarray(ct.spacing)
    jitter = rng.normal(size=picks.shape) * sigma / spacing
    ijk = np.concatenate(
        [picks + jitter, rng.uniform(0, 1, (n_uniform, 3)) * (np.asarray(ct.shape) - 1)]
    )
    ijk = np.clip(ijk, 0, np.asarray(ct.shape) - 1)
    return ct.index_to_patient(ijk).astype(np.float32)


def simulate_views(
    ct: Volume,
    separation: float,
    first_angle: float,
    dose: float,
    size_px: int,
    seed: int,
    iso_pixel_mm: float = DEFAULT_ISO_PIXEL_MM,
    isocentre: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One DRR pair at `size_px` (reference detector width) -> normalised images, P', depths."""
    pair = simulate_pair(
        ct,
        DRRSettings(
            separation_deg=separation,
            first_angle_deg=first_angle,
            dose_photons=dose,
            size_px=size_px,
            seed=seed,
            isocentre_mm=isocentre,
        ),
    )
    views = [normalise_view(v.image, v.geometry, size_px, iso_pixel_mm) for v in pair.views]
    return (
        np.stack([v.image for v in views]),
        np.stack([v.projection for v in views]),
        np.array([v.reference_depth_mm for v in views]),
    )


def draw_separation(rng: np.random.Generator, settings: DataSettings) -> float:
    """One pair's separation: uniform over the range, or (with probability
    near_orthogonal_fraction) over its top band. Without a band share the stream is the
    earlier one (one draw), so existing caches are unchanged."""
    low, high = settings.separation_deg
    if settings.near_orthogonal_fraction > 0 and rng.uniform() < settings.near_orthogonal_fraction:
        low = max(low, high - settings.near_orthogonal_band_deg)
    return float(rng.uniform(low, high))


def build_case(seed: int, settings: DataSettings) -> TrainingCase:
    """Generate one training case from its seed (deterministic)."""
    case = generate_case(
        seed,
        fov="knee",
        spacing=(settings.ct_spacing_mm,) * 3,
        with_meshes=False,
        dose=settings.phantom_dose,
        **phantom_variations(case_variations(settings)),
    )
    ct = case.ct
    rng = np.random.default_rng([seed, 2026])
    pseudo_pairs = pseudo_ct_pairs(seed, settings)
    pseudo = phantom_pseudo_ct(case.labels, seed) if pseudo_pairs else None
    pairs = []
    jitter = settings.isocentre_jitter_mm
    knee = None if jitter is None else np.asarray(bone_centre(ct))
    isocentres = []
    for index in range(settings.pairs_per_case):
        separation = draw_separation(rng, settings)
        first = float(rng.uniform(-1, 1) * settings.first_angle_jitter_deg)
        dose = float(np.exp(rng.uniform(*np.log(settings.dose_photons))))
        isocentre = None
        if knee is not None:
            isocentre = tuple(float(x) for x in knee + rng.uniform(-jitter, jitter, 3))
            isocentres.append(isocentre)
        views = simulate_views(
            pseudo if index in pseudo_pairs else ct,
            separation,
            first,
            dose,
            settings.size_px,
            seed + index,
            settings.iso_pixel_mm,
            isocentre,
        )
        pairs.append((views, separation, dose))
    points = sample_query_points(ct, settings, rng, settings.points_per_case)
    return TrainingCase(
        seed=seed,
        images=np.stack([p[0][0] for p in pairs]).astype(np.float32),
        projections=np.stack([p[0][1] for p in pairs]),
        reference_depths=np.stack([p[0][2] for p in pairs]),
        separations=np.array([p[1] for p in pairs]),
        doses=np.array([p[2] for p in pairs]),
        points=points,
        labels=exact_labels(seed, points.astype(float), case_variations(settings)),
        ct=np.asarray(ct.array, dtype=np.int16),
        ct_affine=np.asarray(ct.affine, dtype=float),
        fov_box=np.asarray(case.metadata["fov_box_mm"], dtype=float),
        isocentres=np.asarray(isocentres, dtype=float) if isocentres else None,
    )


def with_orthogonal_pairs(case: TrainingCase, settings: DataSettings) -> TrainingCase:
    """The case with its DRR pairs re-simulated at exactly 90 degrees (same first-angle jitter
    and dose draws), for the orthogonal-only ablation."""
    ct = Volume(case.ct, case.ct_affine, "CT")
    rng = np.random.default_rng([case.seed, 2026])
    images, projections, depths = [], [], []
    for index in range(len(case.separations)):
        draw_separation(rng, settings)  # keep the random stream aligned with build_case
        first = float(rng.uniform(-1, 1) * settings.first_angle_jitter_deg)
        dose = float(case.doses[index])
        isocentre = None if case.isocentres is None else tuple(case.isocentres[index])
        views = simulate_views(
            ct,
            90.0,
            first,
            dose,
            settings.size_px,
            case.seed + index,
            settings.iso_pixel_mm,
            isocentre,
        )
        images.append(views[0])
        projections.append(views[1])
        depths.append(views[2])
        rng.uniform(size=1)  # the dose draw of build_case
        if settings.isocentre_jitter_mm is not None:
            rng.uniform(size=3)  # and its isocentre offset
    case.images = np.stack(images).astype(np.float32)
    case.projections = np.stack(projections)
    case.reference_depths = np.stack(depths)
    case.separations = np.full(len(images), 90.0)
    return case


def cache_path(cache_dir: Path, seed: int, settings: DataSettings) -> Path:
    return Path(cache_dir) / f"cases-{settings.key()}" / f"case_{seed}.npz"


def load_case(seed: int, settings: DataSettings, cache_dir: Path = DEFAULT_CACHE) -> TrainingCase:
    """The cached case, generated and written atomically on first use."""
    path = cache_path(cache_dir, seed, settings)
    if path.exists():
        with np.load(path) as data:
            fields = {name: data[name] for name in data.files}
        fields["seed"] = int(fields["seed"])
        if "isocentres" in fields and fields["isocentres"].ndim != 2:
            fields["isocentres"] = None  # saved as an object-free placeholder
        fields["images"] = fields["images"].astype(np.float32)
        return TrainingCase(**fields)
    case = build_case(seed, settings)
    _save_atomic(path, case)
    return case


def _save_atomic(path: Path, case: TrainingCase) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        arrays = asdict(case)
        arrays["images"] = arrays["images"].astype(np.float16)
        if arrays["isocentres"] is None:
            arrays["isocentres"] = np.zeros(0)
        np.savez(temp, **arrays)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def labelled_subset(seeds: list[int], fraction: float, seed: int) -> list[int]:
    """Seeded choice of the labelled training cases (at least one)."""
    count = max(1, int(round(fraction * len(seeds))))
    order = np.random.default_rng(seed).permutation(len(seeds))
    return [seeds[i] for i in sorted(order[:count])]


def _build_one(args: tuple[int, DataSettings, str]) -> tuple[int, float]:
    seed, settings, cache_dir = args
    start = time.perf_counter()
    load_case(seed, settings, Path(cache_dir))
    return seed, time.perf_counter() - start


def prebuild(seeds: list[int], settings: DataSettings, cache_dir: Path, workers: int) -> None:
    """Fill the cache in parallel processes, printing one line per case."""
    jobs = [(s, settings, str(cache_dir)) for s in seeds]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, (seed, seconds) in enumerate(pool.map(_build_one, jobs), start=1):
            print(f"[{done}/{len(jobs)}] case {seed} {seconds:.1f} s", flush=True)


def fraction_argument(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def pseudo_ct_pairs(seed: int, settings: DataSettings) -> set[int]:
    """Which of a case's pairs are rendered from its pseudo-CT: a seeded choice of
    round(pseudo_ct_fraction * pairs_per_case), from a stream of its own so that the other
    draws (and caches made without it) are unchanged."""
    count = pseudo_ct_pair_count(settings)
    if count == 0:
        return set()
    rng = np.random.default_rng([seed, 2026, 1])
    return {int(i) for i in rng.choice(settings.pairs_per_case, count, replace=False)}


def pseudo_ct_pair_count(settings: DataSettings) -> int:
    """How many of a case's pairs the pseudo-CT renders: round(fraction * pairs)."""
    return round(settings.pseudo_ct_fraction * settings.pairs_per_case)


def phantom_pseudo_ct(labels: Volume, seed: int) -> Volume:
    """The phantom's label map rendered as the real knee is (pseudoct): continued along the
    limb beyond the field of view, with a tissue model drawn per case."""
    params = sample_pseudo_ct_params(np.random.default_rng([seed, 2026, 2]))
    return continued_pseudo_ct(labels, params=params, seed=seed)


def non_negative_argument(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def strength_argument(maximum: float) -> Callable[[str], float]:
    """An argparse type for a variation strength in [0, maximum]."""

    def strength(text: str) -> float:
        value = float(text)
        if not 0.0 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between 0 and {maximum}, got {text}")
        return value

    return strength


variation_argument = strength_argument(MAX_STRENGTH)
soft_tissue_argument = strength_argument(MAX_SOFT_TISSUE)
patella_argument = strength_argument(MAX_PATELLA_VARIATION)
femur_argument = strength_argument(MAX_FEMUR_VARIATION)
tibia_argument = strength_argument(MAX_TIBIA_VARIATION)
condyle_argument = strength_argument(MAX_CONDYLE_VARIATION)
trochlea_argument = strength_argument(MAX_TROCHLEA_VARIATION)
condylar_offset_argument = strength_argument(MAX_CONDYLAR_OFFSET_VARIATION)
tilt_argument = strength_argument(MAX_TILT_VARIATION)
patella_form_argument = strength_argument(MAX_PATELLA_FORM_VARIATION)
patella_ridge_argument = strength_argument(MAX_PATELLA_RIDGE_VARIATION)
# variations whose definition changed after caches were made: the version named in the key
VARIATION_VERSIONS = {
    "patella_variation": ("patella_version", PATELLA_VERSION),  # 2: + the patellar height
    "femur_variation": ("femur_version", FEMUR_VERSION),  # 2: the notch enlargement dropped
}
# each phantom variation's DataSettings field -> its generate_case keyword
GENERATE_CASE_KEYWORDS = {
    "shape_variation": "variation",
    "soft_tissue_variation": "soft_tissue",
    "patella_variation": "patella",
    "femur_variation": "femur",
    "tibia_variation": "tibia",
    "condyle_variation": "condyles",
    "trochlea_variation": "trochlea",
    "patella_form_variation": "patella_form",
    "patella_ridge_variation": "patella_ridge",
    "condylar_offset_variation": "condylar_offset",
    "tilt_variation": "tilt",
}


# the bone-shape variations whose labels version 1 left out: all but the warps and soft tissue
RELABELLED_VARIATIONS = tuple(
    name
    for name in GENERATE_CASE_KEYWORDS
    if name not in ("shape_variation", "soft_tissue_variation")
)


def phantom_variations(strengths: dict[str, float]) -> dict[str, float]:
    """generate_case keywords for variation strengths named as DataSettings fields."""
    return {GENERATE_CASE_KEYWORDS[name]: strength for name, strength in strengths.items()}


def case_variations(settings: DataSettings) -> dict[str, float]:
    """The phantom variation strengths of `settings` (DataSettings field names)."""
    return {name: getattr(settings, name) for name in GENERATE_CASE_KEYWORDS}


# Version 1 of the exact point labels drew the bones without these variations, so the labelled
# cases of a cache made with any of them taught the generator's plain bones while their
# radiographs showed the varied ones; version 2 labels the bones the CT shows.
LABELS_VERSION = 2
# the phantom variations (DataSettings fields): their strength check and what they add
VARIATION_OPTIONS = {
    "shape_variation": (
        variation_argument,
        "shape warps, patella size and limb tilt (phantoms.variation)",
    ),
    "soft_tissue_variation": (
        soft_tissue_argument,
        "muscle bulges and fat regions in the leg (phantoms.soft_tissue)",
    ),
    "patella_variation": (
        patella_argument,
        "squarer, thicker-cortex patellae at other heights (phantoms.patella)",
    ),
    "femur_variation": (
        femur_argument,
        "a popliteal hollow behind the metaphysis (phantoms.femur)",
    ),
    "tibia_variation": (
        tibia_argument,
        "a posterior recess below the tibial plateau (phantoms.tibia)",
    ),
    "condyle_variation": (
        condyle_argument,
        "squarer distal femoral condyles (phantoms.femur.vary_condyles)",
    ),
    "trochlea_variation": (
        trochlea_argument,
        "a lower trochlea and condyles reaching further forward (phantoms.femur.vary_trochlea)",
    ),
    "patella_form_variation": (
        patella_form_argument,
        "taller, slimmer, tilted patellae seated deeper (phantoms.patella.vary_patella_form)",
    ),
    "patella_ridge_variation": (
        patella_ridge_argument,
        "a median ridge between two patellar facets (phantoms.patella.vary_patella_ridge)",
    ),
    "condylar_offset_variation": (
        condylar_offset_argument,
        "the femoral shaft further in front of the posterior condyles "
        "(phantoms.femur.build_offset_anatomy)",
    ),
    "tilt_variation": (
        tilt_argument,
        "the limb turned about both horizontal axes (phantoms.variation.vary_tilt)",
    ),
    "pseudo_ct_fraction": (
        fraction_argument,
        "share of pairs rendered from the pseudo-CT of the phantom's labels (pseudoct)",
    ),
}


def add_case_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The view-angle and phantom options of a cache (shared by the commands that name one)."""
    parser.add_argument(
        f"--{prefix}near-orthogonal-fraction",
        type=fraction_argument,
        default=DataSettings.near_orthogonal_fraction,
        help="share of pairs with their separation in the top 10 deg of the range",
    )
    parser.add_argument(
        f"--{prefix}first-angle-jitter-deg",
        type=non_negative_argument,
        default=DataSettings.first_angle_jitter_deg,
        help="first view's angle uniform in +- this",
    )
    for field_name, (check, what) in VARIATION_OPTIONS.items():
        parser.add_argument(
            f"--{prefix}{field_name.replace('_', '-')}",
            type=check,
            default=getattr(DataSettings, field_name),
            help=f"{what}; 0 = none",
        )


def case_settings_from_args(
    parser: argparse.ArgumentParser, args: dict, prefix: str = ""
) -> DataSettings:
    """Pops a cache's settings from parsed arguments (`vars(...)`): add_case_arguments' flags
    plus {prefix}view-px, {prefix}pairs and {prefix}isocentre-jitter-mm, which each command
    declares with its own defaults. Settings DataSettings refuses become the parser's error."""
    key = prefix.replace("-", "_")
    try:
        return DataSettings(
            size_px=args.pop(f"{key}view_px"),
            pairs_per_case=args.pop(f"{key}pairs"),
            isocentre_jitter_mm=args.pop(f"{key}isocentre_jitter_mm"),
            near_orthogonal_fraction=args.pop(f"{key}near_orthogonal_fraction"),
            first_angle_jitter_deg=args.pop(f"{key}first_angle_jitter_deg"),
            **{name: args.pop(f"{key}{name}") for name in VARIATION_OPTIONS},
        )
    except ValueError as exc:
        parser.error(f"--{prefix}...: {exc}" if prefix else str(exc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconstruction.training.data")
    parser.add_argument("--master-seed", type=int, default=2026)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--test", type=int, default=0, help="also cache held-out cases")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--view-px", type=int, default=DEFAULT_VIEW_SIZE)
    parser.add_argument("--pairs", type=int, default=DataSettings.pairs_per_case)
    parser.add_argument(
        "--isocentre-jitter-mm", type=float, default=None, help="centre on the bones +- this"
    )
    add_case_arguments(parser)
    args = vars(parser.parse_args(argv))
    settings = case_settings_from_args(parser, args)
    held_out = split_seeds(args["master_seed"], HELD_OUT_BLOCK[0], args["test"])["test"]
    seeds = training_seeds(args["master_seed"], args["train"]) + held_out[: args["test"]]
    prebuild(seeds, settings, args["cache"], args["workers"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
