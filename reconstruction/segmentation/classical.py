"""Classical bone segmentation of a knee CT: thresholds, hole filling, component separation.

Steps (HU thresholds; the surface threshold is estimated per scan):
1. locate the bones on a ~2 mm subsampled grid and crop to them (the body and the air
   around it are most of a clinical field of view);
2. surface threshold t_s = midpoint of the cortical plateau (75th percentile of voxels
   above `high_hu`) and the soft tissue (median of -300..150 HU): a voxel half inside bone
   reads about t_s, so t_s puts the label edge on the true surface;
3. seeds = 26-connected components of HU >= t_s (cortical shells; the joint spaces of a
   knee are 1.5-5 mm, so each bone is its own shell), small ones dropped;
4. bone body = hysteresis: HU >= `low_hu` (cancellous bone) connected to a seed; a body
   holding several seeds (bones touching through partial volume) is split by a watershed
   on -HU from the seeds, so the cut runs along the darkest path (the joint space);
5. per bone: fill holes with the field-of-view faces capped (the medullary canal of a
   shaft cut by the scan is open at the border), then peel exposed voxels below t_s
   (partial-volume rim, blur of the scanner PSF) up to `peel_depth_mm`, largest component;
6. bones still touching (a tight tibio-fibular joint at >= 1 mm voxels merges the shells):
   the body is eroded by 2, 3, then 4 mm (`split_depths_mm`, distance transform); at the
   first depth that leaves several cores of bone size, a watershed on the distance
   transform from those cores cuts the body at its necks. Broadly joined parts of one bone
   (the condyles) keep one core at these depths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from reconstruction.errors import ModalityError
from reconstruction.segmentation.errors import NotAKneeError
from reconstruction.volume import Volume

FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity
FACE = ndimage.generate_binary_structure(3, 1)  # 6-connectivity
LOCATE_GRID_MM = 2.0


@dataclass(frozen=True)
class ClassicalParams:
    low_hu: float = 200.0  # hysteresis low: cancellous bone
    high_hu: float = 600.0  # certainly cortical bone
    soft_tissue_window_hu: tuple[float, float] = (-300.0, 150.0)
    min_seed_mm3: float = 300.0  # smaller cortical islands are noise, calcifications
    min_bone_mm3: float = 1000.0  # smaller bodies are not one of the four bones
    peel_depth_mm: float = 1.0
    split_depths_mm: tuple[float, ...] = (2.0, 3.0, 4.0)
    crop_margin_mm: float = 6.0


@dataclass
class BoneComponent:
    """One separated bone body, in the coordinates of the full volume."""

    mask: np.ndarray  # bool, shape of `box`
    box: tuple[slice, slice, slice]  # where `mask` sits in the full volume
    volume_mm3: float
    voxel_count: int


@dataclass
class ClassicalResult:
    components: list[BoneComponent]
    surface_hu: float
    cortical_hu: float
    soft_tissue_hu: float


def check_ct_intensities(volume: Volume) -> np.ndarray:
    """Float32 HU array, or a specific error when the data cannot be a CT in HU."""
    if volume.modality in ("MR", "LABELS"):
        raise ModalityError(f"the volume is {volume.modality}, a CT in Hounsfield units is needed")
    array = np.asarray(volume.array)
    low, high = float(array.min()), float(array.max())
    if low == high:
        raise NotAKneeError(f"the volume is uniform (every voxel = {low:g}); it shows no anatomy")
    if array.dtype.kind in "biu" and high - low < 64 and low >= 0:
        raise ModalityError(
            f"the volume holds only integers {low:g}..{high:g}: it looks like a label map, not a CT"
        )
    if low > -200.0:
        raise ModalityError(
            f"no voxel is below -200 HU (range {low:g}..{high:g}): a CT shows air or fat at "
            "negative Hounsfield units, so this is MR or a rescaled image, not a CT in HU"
        )
    return array.astype(np.float32, copy=False)


def segment_bones(volume: Volume, params: ClassicalParams | None = None) -> ClassicalResult:
    """Separated bone bodies of a CT (not yet named; see `identify`)."""
    params = params or ClassicalParams()
    hu = check_ct_intensities(volume)
    spacing = np.asarray(volume.spacing)
    voxel_mm3 = float(np.prod(spacing))
    crop = locate_bones(hu, spacing, params)
    local = hu[crop]
    cortical, soft = _tissue_levels(local, params)
    surface = 0.5 * (cortical + soft)
    seeds = _seeds(local >= surface, int(np.ceil(params.min_seed_mm3 / voxel_mm3)))
    if seeds.max() == 0:
        raise NotAKneeError(f"no cortical bone (>= {surface:.0f} HU) large enough to be a bone")
    assigned = _assign_bodies(local, seeds, params.low_hu)
    peel = max(1, int(round(params.peel_depth_mm / float(spacing.min()))))
    min_voxels = int(np.ceil(params.min_bone_mm3 / voxel_mm3))
    components = []
    for index, box in enumerate(ndimage.find_objects(assigned), start=1):
        if box is None:
            continue
        box = _grow(box, 1, assigned.shape)
        mask = _clean_bone(assigned[box] == index, local[box], surface, peel)
        full_box = tuple(
            slice(c.start + b.start, c.start + b.stop) for c, b in zip(crop, box, strict=True)
        )
        for part in split_touching(mask, spacing, params.split_depths_mm, min_voxels):
            count = int(part.sum())
            if count >= min_voxels:
                components.append(BoneComponent(part, full_box, count * voxel_mm3, count))
    return ClassicalResult(components, surface, cortical, soft)


def locate_bones(
    hu: np.ndarray, spacing: np.ndarray, params: ClassicalParams
) -> tuple[slice, slice, slice]:
    """Bounding box (with margin) of the sizeable dense structures, found on a coarse grid."""
    step = np.maximum(1, np.floor(LOCATE_GRID_MM / spacing)).astype(int)
    coarse = hu[:: step[0], :: step[1], :: step[2]] >= params.high_hu
    coarse_voxel = float(np.prod(spacing * step))
    labelled, count = ndimage.label(coarse, structure=FULL)
    if count == 0:
        raise NotAKneeError(f"no voxel reaches {params.high_hu:g} HU: the volume shows no bone")
    sizes = np.bincount(labelled.ravel())[1:] * coarse_voxel
    keep = np.flatnonzero(sizes >= params.min_bone_mm3) + 1
    if keep.size == 0:
        raise NotAKneeError(
            f"the dense structures (>= {params.high_hu:g} HU) are all smaller than "
            f"{params.min_bone_mm3 / 1000:g} cm3: the volume shows no bone of a knee"
        )
    ijk = np.argwhere(np.isin(labelled, keep)) * step
    margin = np.ceil(params.crop_margin_mm / spacing).astype(int) + step
    lo = np.maximum(ijk.min(axis=0) - margin, 0)
    hi = np.minimum(ijk.max(axis=0) + margin + 1, hu.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _tissue_levels(hu: np.ndarray, params: ClassicalParams) -> tuple[float, float]:
    dense = hu[hu >= params.high_hu]
    cortical = float(np.percentile(dense, 75))
    lo, hi = params.soft_tissue_window_hu
    soft_values = hu[(hu > lo) & (hu < hi)]
    soft = float(np.median(soft_values)) if soft_values.size else 0.0
    return cortical, soft


def _seeds(strong: np.ndarray, min_voxels: int) -> np.ndarray:
    """Cortical shells as labelled seeds 1..n (small islands dropped)."""
    labelled, count = ndimage.label(strong, structure=FULL)
    if count == 0:
        return labelled
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    keep = np.flatnonzero(sizes >= min_voxels)
    lut = np.zeros(count + 1, dtype=np.int32)
    lut[keep] = np.arange(1, keep.size + 1)
    return lut[labelled]


def _assign_bodies(hu: np.ndarray, seeds: np.ndarray, low_hu: float) -> np.ndarray:
    """Every voxel >= low_hu connected to a seed gets that seed's label; bodies holding
    several seeds are split by a watershed on -HU flooded from the seeds."""
    body, _ = ndimage.label(hu >= low_hu, structure=FULL)
    seeded = seeds > 0
    stride = np.int64(seeds.max()) + 1
    keys = np.unique(body[seeded].astype(np.int64) * stride + seeds[seeded])
    pairs = np.stack([keys // stride, keys % stride])
    bodies, seeds_per_body = np.unique(pairs[0], return_counts=True)
    lut = np.zeros(int(body.max()) + 1, dtype=np.int32)
    single = seeds_per_body == 1
    first_seed = pairs[1][np.searchsorted(pairs[0], bodies)]
    lut[bodies[single]] = first_seed[single]
    assigned = lut[body]
    boxes = ndimage.find_objects(body)
    for body_id in bodies[seeds_per_body > 1]:
        box = boxes[body_id - 1]
        inside = body[box] == body_id
        flooded = watershed(-hu[box], markers=np.where(inside, seeds[box], 0), mask=inside)
        assigned[box] = np.where(inside, flooded, assigned[box])
    return assigned


def _clean_bone(mask: np.ndarray, hu: np.ndarray, surface: float, peel: int) -> np.ndarray:
    mask = fill_holes_capped(mask)
    for _ in range(peel):
        exposed = mask & ~ndimage.binary_erosion(mask, FACE, border_value=1)
        rim = exposed & (hu < surface)
        if not rim.any():
            break
        mask &= ~rim
    return _largest(mask)


def split_touching(
    mask: np.ndarray, spacing: np.ndarray, depths_mm: tuple[float, ...], min_voxels: int
) -> list[np.ndarray]:
    """Cut a body into bones at its necks when eroding it by one of `depths_mm` leaves
    several bone-sized cores; otherwise return it whole."""
    if not _several_cores_coarse(mask, spacing, depths_mm, min_voxels):
        return [mask]
    distance = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    for depth in depths_mm:
        cores = _seeds(distance > depth, max(1, min_voxels // 4))
        if cores.max() > 1:
            break
    else:
        return [mask]
    parts = watershed(-distance, markers=cores, mask=mask)
    return [_largest(parts == index) for index in range(1, int(parts.max()) + 1)]


def _several_cores_coarse(
    mask: np.ndarray, spacing: np.ndarray, depths_mm: tuple[float, ...], min_voxels: int
) -> bool:
    """Quick screen on a ~1.2 mm subsampled grid (8x fewer voxels at 0.6 mm): most bodies
    are one bone, and the exact split only runs for those that may not be."""
    step = np.maximum(1, np.floor(1.2 / spacing)).astype(int)
    if np.all(step == 1):
        return True
    coarse = mask[:: step[0], :: step[1], :: step[2]]
    distance = ndimage.distance_transform_edt(np.pad(coarse, 1), sampling=spacing * step)
    core_voxels = max(1, min_voxels // (4 * int(np.prod(step))))
    # a slightly shallower screen, so subsampling cannot hide a split the full grid finds
    return any(_seeds(distance > depth - 0.5, core_voxels).max() > 1 for depth in depths_mm)


def fill_holes_capped(mask: np.ndarray) -> np.ndarray:
    """3D hole filling where each face of the box is capped by the 2D-filled slice next to
    it, so a canal that runs out of the field of view still counts as enclosed."""
    padded = np.pad(mask, 1)
    for axis in range(3):
        for face, inner in ((0, 1), (-1, -2)):
            source = [slice(None)] * 3
            source[axis] = inner
            target = list(source)
            target[axis] = face
            padded[tuple(target)] = ndimage.binary_fill_holes(padded[tuple(source)])
    background, _ = ndimage.label(~padded, structure=FACE)
    outside = np.unique(np.concatenate([np.ravel(background[s]) for s in _faces(padded.shape)]))
    filled = ~np.isin(background, outside[outside > 0]) | padded
    return filled[1:-1, 1:-1, 1:-1] | mask


def _faces(shape: tuple[int, ...]) -> list[tuple[slice | int, ...]]:
    faces = []
    for axis in range(3):
        for index in (0, shape[axis] - 1):
            face: list[slice | int] = [slice(None)] * 3
            face[axis] = index
            faces.append(tuple(face))
    return faces


def _largest(mask: np.ndarray) -> np.ndarray:
    labelled, count = ndimage.label(mask, structure=FULL)
    if count <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def _grow(box: tuple[slice, ...], margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n))
        for s, n in zip(box, shape, strict=True)
    )
