"""Label map -> pseudo-CT in Hounsfield units, and real-knee labels -> canonical bone labels.

Tissue model (defaults are typical adult knee CT values, not tuned to any case):
- bone: a cortical shell (voxels within `cortical_thickness_mm` of the bone's own
  surface, by Euclidean distance transform in mm) at ~1350 HU around cancellous bone
  at ~300 HU; each bone separately, so touching bones keep their own cortex;
- cartilage and menisci ~100 HU;
- soft tissue ~40 HU inside a body contour = every voxel within `body_margin_mm` of any
  labelled structure (None: the whole field of view), with a thin outer fat layer;
- air -1000 HU outside;
- partial volume: Gaussian blur of `partial_volume_sigma_mm` (scanner PSF, smooths the
  label staircase), optional block averaging to a coarser CT grid; then Gaussian noise
  of `noise_hu`, seeded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from reconstruction.errors import ModalityError
from reconstruction.volume import Volume

BODY_GRID_MM = 2.0
CANONICAL_BONE_LABELS: dict[str, int] = {"femur": 1, "tibia": 2, "fibula": 3, "patella": 4}
REAL_KNEE_ENV = "REAL_KNEE_LABELS"
REAL_KNEE_FILE = Path("shared/data/real-knee-mri-labels.nrrd")  # beside the checkout


def real_knee_labels_path() -> Path:
    """Where the shared real knee's label map is: $REAL_KNEE_LABELS if set, else
    shared/data beside the checkout. The path may not exist; callers say so or skip."""
    configured = os.environ.get(REAL_KNEE_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / REAL_KNEE_FILE


@dataclass(frozen=True)
class LabelScheme:
    bones: dict[str, int]  # bone name -> label value in the input map
    cartilage: tuple[int, ...] = ()  # cartilage, menisci and other dense soft structures


REAL_KNEE_SCHEME = LabelScheme(
    bones={"femur": 5, "tibia": 6, "patella": 7, "fibula": 8}, cartilage=(1, 2, 3, 4, 9, 10)
)
CANONICAL_SCHEME = LabelScheme(bones=dict(CANONICAL_BONE_LABELS))


@dataclass(frozen=True)
class PseudoCTParams:
    cortical_hu: float = 1350.0
    cortical_thickness_mm: float = 1.5
    cancellous_hu: float = 300.0
    cartilage_hu: float = 100.0
    soft_tissue_hu: float = 40.0
    fat_hu: float = -100.0
    fat_thickness_mm: float = 5.0
    air_hu: float = -1000.0
    body_margin_mm: float | None = 30.0
    partial_volume_sigma_mm: float = 0.4
    block: tuple[int, int, int] = (1, 1, 1)
    noise_hu: float = 15.0


def sample_pseudo_ct_params(rng: np.random.Generator) -> PseudoCTParams:
    """A tissue model drawn around the defaults (for training phantoms rendered this way):
    cortex 1.0-2.5 mm at 1200-1500 HU, cancellous 200-400 HU, soft tissue 30-60 HU, a
    body 20-40 mm around the structures with 3-8 mm of fat, partial volume 0.3-0.6 mm."""
    return PseudoCTParams(
        cortical_hu=float(rng.uniform(1200.0, 1500.0)),
        cortical_thickness_mm=float(rng.uniform(1.0, 2.5)),
        cancellous_hu=float(rng.uniform(200.0, 400.0)),
        soft_tissue_hu=float(rng.uniform(30.0, 60.0)),
        fat_thickness_mm=float(rng.uniform(3.0, 8.0)),
        body_margin_mm=float(rng.uniform(20.0, 40.0)),
        partial_volume_sigma_mm=float(rng.uniform(0.3, 0.6)),
    )


def pseudo_ct_from_labels(
    labels: Volume,
    *,
    scheme: LabelScheme = REAL_KNEE_SCHEME,
    params: PseudoCTParams | None = None,
    seed: int = 0,
) -> Volume:
    """A float32 CT Volume (HU) on the label map's grid (or a `params.block` coarser one)."""
    params = params or PseudoCTParams()
    label_array = np.asarray(labels.array)
    _check_labels(label_array, scheme)
    spacing = np.asarray(labels.spacing)
    hu = _background(label_array, spacing, params)
    hu[np.isin(label_array, scheme.cartilage)] = params.cartilage_hu
    for value in scheme.bones.values():
        _paint_bone(hu, label_array == value, spacing, params)
    if params.partial_volume_sigma_mm > 0:
        hu = ndimage.gaussian_filter(hu, params.partial_volume_sigma_mm / spacing, mode="nearest")
    hu, affine = _block_average(hu, labels.affine, params.block)
    if params.noise_hu > 0:
        noise = np.random.default_rng(seed).standard_normal(hu.shape, dtype=np.float32)
        hu += np.float32(params.noise_hu) * noise
    return Volume(
        array=hu.astype(np.float32),
        affine=affine,
        modality="PSEUDO_CT",
        metadata={"pseudo_ct": asdict(params), "seed": seed, "scheme": asdict(scheme)},
    )


def continued_pseudo_ct(
    labels: Volume,
    *,
    scheme: LabelScheme = CANONICAL_SCHEME,
    params: PseudoCTParams | None = None,
    seed: int = 0,
) -> Volume:
    """The pseudo-CT of a label map continued beyond its field of view
    (`extend_label_field`), as the real knee is rendered; by default a phantom's map."""
    extended, _ = extend_label_field(labels)
    return pseudo_ct_from_labels(extended, scheme=scheme, params=params, seed=seed)


def _check_labels(array: np.ndarray, scheme: LabelScheme) -> None:
    present = set(np.unique(array).tolist())
    missing = [name for name, value in scheme.bones.items() if value not in present]
    if len(missing) == len(scheme.bones):
        raise ModalityError(
            f"label map holds none of the bone labels {scheme.bones}; wrong scheme?"
        )


def _background(labels: np.ndarray, spacing: np.ndarray, params: PseudoCTParams) -> np.ndarray:
    if params.body_margin_mm is None:
        return np.full(labels.shape, params.soft_tissue_hu, dtype=np.float32)
    distance = _distance_to_structures(labels != 0, spacing)
    hu = np.full(labels.shape, params.air_hu, dtype=np.float32)
    hu[distance <= params.body_margin_mm] = params.fat_hu
    hu[distance <= params.body_margin_mm - params.fat_thickness_mm] = params.soft_tissue_hu
    return hu


def _distance_to_structures(structures: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) to the nearest structure voxel, computed on a ~2 mm grid (an exact
    transform of a full-resolution knee takes ~10 s; the body contour needs no better)
    and interpolated linearly back, so the contour stays smooth."""
    factors = np.maximum(1, np.floor(BODY_GRID_MM / spacing)).astype(int)
    coarse_shape = -(-np.asarray(structures.shape) // factors)  # ceil division
    padded = np.zeros(coarse_shape * factors, dtype=bool)
    padded[tuple(slice(0, n) for n in structures.shape)] = structures
    coarse = padded.reshape(
        coarse_shape[0], factors[0], coarse_shape[1], factors[1], coarse_shape[2], factors[2]
    ).any(axis=(1, 3, 5))
    distance = ndimage.distance_transform_edt(~coarse, sampling=spacing * factors).astype(
        np.float32
    )
    fine = ndimage.zoom(distance, factors, order=1, grid_mode=True, mode="nearest")
    return fine[tuple(slice(0, n) for n in structures.shape)]


def _paint_bone(
    hu: np.ndarray, mask: np.ndarray, spacing: np.ndarray, params: PseudoCTParams
) -> None:
    """Cortex = bone voxels within the cortical thickness of this bone's surface."""
    if not mask.any():
        return
    box = _bounding_box(mask, margin=2)
    local = mask[box]
    depth = ndimage.distance_transform_edt(np.pad(local, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    # A voxel centre lies half a voxel inside its boundary: depth <= t + half a voxel.
    cortical = local & (depth <= params.cortical_thickness_mm + 0.5 * spacing.min())
    region = hu[box]
    region[local] = params.cancellous_hu
    region[cortical] = params.cortical_hu


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        indices = np.flatnonzero(mask.any(axis=other))
        slices.append(
            slice(max(indices[0] - margin, 0), min(indices[-1] + margin + 1, mask.shape[axis]))
        )
    return tuple(slices)


def _block_average(
    hu: np.ndarray, affine: np.ndarray, block: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Average non-overlapping blocks (a coarser CT voxel sees the mean attenuation)."""
    factors = np.asarray(block, dtype=int)
    if np.all(factors == 1):
        return hu, np.asarray(affine, dtype=float).copy()
    shape = np.asarray(hu.shape) // factors
    trimmed = hu[: shape[0] * factors[0], : shape[1] * factors[1], : shape[2] * factors[2]]
    averaged = trimmed.reshape(
        shape[0], factors[0], shape[1], factors[1], shape[2], factors[2]
    ).mean(axis=(1, 3, 5))
    coarse = np.asarray(affine, dtype=float).copy()
    coarse[:3, :3] = affine[:3, :3] * factors[None, :]
    coarse[:3, 3] = (
        affine[:3, :3] @ ((factors - 1) / 2.0) + affine[:3, 3]
    )  # centre of the first block
    return averaged.astype(np.float32), coarse


def canonical_labels_from_real_knee(labels: Volume) -> Volume:
    """Real-knee labels (5 femur, 6 tibia, 7 patella, 8 fibula) -> 1 femur, 2 tibia,
    3 fibula, 4 patella; cartilage, menisci and background -> 0. Same grid."""
    source = np.asarray(labels.array)
    _check_labels(source, REAL_KNEE_SCHEME)
    canonical = np.zeros(source.shape, dtype=np.uint8)
    for name, value in REAL_KNEE_SCHEME.bones.items():
        canonical[source == value] = CANONICAL_BONE_LABELS[name]
    return Volume(
        array=canonical,
        affine=np.asarray(labels.affine, dtype=float).copy(),
        modality="LABELS",
        metadata={"labels": dict(CANONICAL_BONE_LABELS), "source": "real knee scheme"},
    )


def extend_label_field(
    labels: Volume, along_limb_mm: float = 40.0, across_mm: float = 30.0
) -> tuple[Volume, np.ndarray]:
    """The label map on a larger grid, so that its radiographs do not show the scan's box.

    An MRI label map stops at the scanner's field of view: bones and soft tissue end in flat
    cuts that no radiograph of a leg shows. Along the limb axis (the array axis closest to
    patient z) the end slices are repeated for `along_limb_mm` (the shafts continue as
    prisms of their last cross-section); across it the map is padded with background for
    `across_mm`, where the body contour of `pseudo_ct_from_labels` closes by itself.
    Returns the extended Volume and the patient-z interval [lo, hi] (mm) the original map
    covers: the only region where the labels are the truth.
    """
    array = np.asarray(labels.array)
    affine = np.asarray(labels.affine, dtype=float)
    spacing = np.asarray(labels.spacing, dtype=float)
    limb_axis = int(np.argmax(np.abs(affine[2, :3])))
    pads = [int(np.ceil(across_mm / s)) for s in spacing]
    pads[limb_axis] = 0
    padded = np.pad(array, [(p, p) for p in pads], mode="constant")
    along = int(np.ceil(along_limb_mm / spacing[limb_axis]))
    width = [(0, 0)] * 3
    width[limb_axis] = (along, along)
    padded = np.pad(padded, width, mode="edge")
    shift = np.array(pads, dtype=float)
    shift[limb_axis] = along
    extended = affine.copy()
    extended[:3, 3] = affine[:3, 3] - affine[:3, :3] @ shift
    corners = np.stack(np.meshgrid(*[[0, n - 1] for n in array.shape], indexing="ij"), -1)
    corners_z = corners.reshape(-1, 3) @ affine[2, :3] + affine[2, 3]
    volume = Volume(
        array=padded,
        affine=extended,
        modality=labels.modality,
        metadata={
            **labels.metadata,
            "extended": {"along_limb_mm": along_limb_mm, "across_mm": across_mm},
        },
    )
    return volume, np.array([corners_z.min(), corners_z.max()])
