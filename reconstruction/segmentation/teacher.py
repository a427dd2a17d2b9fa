"""CT segmentation by the teacher network (a cascade on the classical segmentation).

The classical method runs first: it refuses non-CT and non-knee input with its clear errors,
and it supplies the bone identification (side, limb axis) and the teacher's prior input. The
teacher then classifies the CT voxel centres coarse-to-fine in voxel-index space (every node
of the finest lattice is a voxel centre, whatever the spacing or orientation), evaluating
only cells whose corners disagree.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from reconstruction.inference import RefineSettings, coarse_to_fine
from reconstruction.volume import Volume

SHIPPED_TEACHER = Path(__file__).resolve().parent.parent / "models" / "teacher.pt"
COARSE_MM = 6.0  # the coarsest lattice spacing is the largest 2^k voxels not above this


@lru_cache(maxsize=2)
def shipped_teacher(path: str = str(SHIPPED_TEACHER)):
    from reconstruction.training.train_teacher import load_teacher

    return load_teacher(path)


def refine_settings(spacing: np.ndarray) -> RefineSettings:
    """Index-space lattice: coarse cells of 2^k voxels (about COARSE_MM), finest = 1 voxel."""
    levels = max(1, int(math.floor(math.log2(COARSE_MM / float(np.min(spacing))))))
    return RefineSettings(coarse_mm=float(2**levels), levels=levels, chunk=32768)


def largest_component_per_class(labels: np.ndarray) -> np.ndarray:
    """Each bone keeps only its largest 26-connected component (the rest becomes background),
    as the meshing does: the label volume then shows what the meshes show."""
    out = np.zeros(labels.shape, dtype=np.uint8)
    structure = np.ones((3, 3, 3), dtype=bool)
    for value in np.unique(labels):
        if value == 0:
            continue
        found, count = ndimage.label(labels == value, structure)
        if count:
            largest = np.argmax(np.bincount(found.ravel())[1:]) + 1
            out[found == largest] = value
    return out


def bone_margin(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per point: the most likely bone (0..3 for femur..patella) and its logit minus the
    background logit."""
    best = logits[:, 1:].argmax(-1)
    return best, logits[:, 1:].gather(1, best[:, None])[:, 0] - logits[:, 0]


def bone_decision(logits: torch.Tensor, offsets: torch.Tensor) -> np.ndarray:
    """uint8 class per point: the most likely bone where its logit minus the background logit
    plus that bone's calibrated offset is positive, else background."""
    best, margin = bone_margin(logits)
    return torch.where(margin + offsets[best] > 0, best + 1, 0).numpy().astype(np.uint8)


def teacher_labels(
    volume: Volume, prior: np.ndarray, model=None
) -> tuple[np.ndarray, dict[str, float | int]]:
    """uint8 classes at every voxel centre of the CT and evaluation statistics."""
    from reconstruction.networks.teacher import prepare_ct

    model = model or shipped_teacher()
    affine = np.asarray(volume.affine, dtype=float)
    start = time.perf_counter()
    ct = prepare_ct(np.asarray(volume.array, np.float32), affine, model.config, prior)
    to_patient = torch.from_numpy(affine).float()
    offsets = torch.tensor(model.config.bone_offsets, dtype=torch.float32)
    with torch.inference_mode():
        maps = model.encode(ct)
        encode_s = time.perf_counter() - start

        def classify(ijk: np.ndarray) -> np.ndarray:
            index = torch.from_numpy(ijk.astype(np.float32))
            points = index @ to_patient[:3, :3].T + to_patient[:3, 3]
            return bone_decision(model.query(maps, ct, points)[1], offsets)

        shape = np.asarray(volume.shape)
        settings = refine_settings(np.asarray(volume.spacing))
        result = coarse_to_fine(classify, np.zeros(3), shape - 1.0, settings)
    i, j, k = volume.shape
    labels = largest_component_per_class(result.labels.array[:i, :j, :k])
    stats = {
        "encode_s": round(encode_s, 3),
        "evaluations": int(result.evaluations),
        "fraction_of_voxels": round(result.evaluations / float(np.prod(shape)), 4),
    }
    return labels, stats
