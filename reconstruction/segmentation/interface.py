"""One entry point for CT bone segmentation: `segment(volume, method) -> Segmentation`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from reconstruction.errors import ModalityError
from reconstruction.segmentation.classical import (
    BoneComponent,
    ClassicalParams,
    segment_bones,
)
from reconstruction.segmentation.identify import SAMPLE_POINTS, body_shape, identify
from reconstruction.volume import Volume

BONE_LABELS: dict[str, int] = {"femur": 1, "tibia": 2, "fibula": 3, "patella": 4}
METHODS = ("classical", "teacher")  # teacher: the network on top of the classical result
CT_MODALITIES = ("CT", "PSEUDO_CT")

ProgressCallback = Callable[[str, float], None]  # (stage name, fraction done 0..1)


@dataclass(frozen=True)
class BoneInfo:
    label: int
    voxel_count: int
    volume_mm3: float
    centroid_mm: tuple[float, float, float]


@dataclass
class Segmentation:
    labels: Volume  # uint8 on the CT grid: 0 background, 1 femur, 2 tibia, 3 fibula, 4 patella
    bones: dict[str, BoneInfo]
    method: str
    side: str | None  # "L" / "R" from the fibula (lateral) and patella (anterior)
    limb_axis: tuple[float, float, float]  # unit, distal -> proximal, patient mm
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "method": self.method,
            "side": self.side,
            "limb_axis": list(self.limb_axis),
            "bones": {name: vars(info) for name, info in self.bones.items()},
            "notes": list(self.notes),
            "timings_s": dict(self.timings_s),
        }


def segment(
    volume: Volume,
    method: str = "classical",
    progress: ProgressCallback | None = None,
    params: ClassicalParams | None = None,
) -> Segmentation:
    """Label femur, tibia, fibula and patella in a knee CT (HU).

    Raises ModalityError for MR data and label maps, NotAKneeError (an ImagingError)
    for a CT that does not show a knee, ValueError for an unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown segmentation method {method!r}; available: {METHODS}")
    if volume.modality not in CT_MODALITIES:
        raise ModalityError(f"the volume is {volume.modality}; a CT in Hounsfield units is needed")
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    report("threshold + separate", 0.0)
    result = segment_bones(volume, params)
    timings["segment"] = time.perf_counter() - start

    start = time.perf_counter()
    report("identify", 0.6)
    shapes = [_shape(component, volume.affine) for component in result.components]
    found = identify(shapes)
    labels = np.zeros(volume.shape, dtype=np.uint8)
    bones: dict[str, BoneInfo] = {}
    for name, index in found.names.items():
        component = result.components[index]
        region = labels[component.box]
        region[component.mask] = BONE_LABELS[name]
        bones[name] = BoneInfo(
            label=BONE_LABELS[name],
            voxel_count=component.voxel_count,
            volume_mm3=round(component.volume_mm3, 1),
            centroid_mm=tuple(round(float(x), 2) for x in shapes[index].centroid),
        )
    timings["identify"] = time.perf_counter() - start
    report("identify", 1.0)
    extra_notes: list[str] = []
    if method == "teacher":
        labels, bones, extra_notes = _teacher_pass(volume, labels, bones, timings, report)
    notes = [
        f"surface threshold {result.surface_hu:.0f} HU (cortical {result.cortical_hu:.0f}, "
        f"soft tissue {result.soft_tissue_hu:.0f})",
        *found.notes,
        *extra_notes,
    ]
    return Segmentation(
        labels=Volume(
            labels, np.asarray(volume.affine, float).copy(), "LABELS", {"labels": BONE_LABELS}
        ),
        bones=bones,
        method=method,
        side=found.side,
        limb_axis=tuple(round(float(x), 4) for x in found.limb_axis),
        timings_s=timings,
        notes=notes,
    )


def _teacher_pass(
    volume: Volume,
    prior: np.ndarray,
    classical: dict[str, BoneInfo],
    timings: dict[str, float],
    report: ProgressCallback,
) -> tuple[np.ndarray, dict[str, BoneInfo], list[str]]:
    """The teacher's labels (classical ones as its prior) and their per-bone summaries."""
    from reconstruction.segmentation.teacher import teacher_labels

    start = time.perf_counter()
    report("teacher network", 0.7)
    labels, stats = teacher_labels(volume, prior)
    timings["teacher"] = time.perf_counter() - start
    voxel_mm3 = float(abs(np.linalg.det(np.asarray(volume.affine, float)[:3, :3])))
    affine = np.asarray(volume.affine, float)
    bones: dict[str, BoneInfo] = {}
    for name in classical:
        label = BONE_LABELS[name]
        ijk = np.argwhere(labels == label)
        if not len(ijk):
            continue
        centroid = ijk.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]
        bones[name] = BoneInfo(
            label=label,
            voxel_count=len(ijk),
            volume_mm3=round(len(ijk) * voxel_mm3, 1),
            centroid_mm=tuple(round(float(x), 2) for x in centroid),
        )
    notes = [
        f"teacher network: {stats['evaluations']} point evaluations "
        f"({stats['fraction_of_voxels']:.1%} of the voxels), prior = the classical labels"
    ]
    return labels, bones, notes


def _shape(component: BoneComponent, affine: np.ndarray):
    ijk = np.argwhere(component.mask)
    if len(ijk) > SAMPLE_POINTS:
        # evenly strided, deterministic sample: enough for moments and extents
        ijk = ijk[:: len(ijk) // SAMPLE_POINTS][:SAMPLE_POINTS]
    ijk = ijk + np.array([s.start for s in component.box])
    points = ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    return body_shape(points, component.volume_mm3)
