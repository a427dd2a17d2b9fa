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


def bone_decision(
    logits: torch.Tensor,
    offsets: torch.Tensor,
    prior: np.ndarray | None = None,
    gates: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 class per point: the most likely bone where its logit minus the background logit
    plus that bone's calibrated offset is positive, else background; with the classical
    labels `prior` and per-bone `gates`, see `gated_labels`."""
    best, margin = bone_margin(logits)
    score = (margin + offsets[best]).numpy()
    return gated_labels((best + 1).numpy().astype(np.uint8), score, prior, gates)


def gated_labels(
    best_bone: np.ndarray,
    score: np.ndarray,
    prior: np.ndarray | None = None,
    gates: np.ndarray | None = None,
) -> np.ndarray:
    """The one decision rule. `best_bone` (1..4) is the most likely bone and `score` its
    logit margin over background plus its offset: the network calls that bone where the
    score is positive. Where the network's call differs from the classical label `prior`,
    the classical label stays unless the network is sure, |score| >= the gate of the bone
    concerned (the network's bone, or the classical one where the network calls background).
    The cascade thus changes the classical labels only where it is confident; zero gates
    give the network's own call everywhere."""
    labels = np.where(score > 0, best_bone, 0).astype(np.uint8)
    if prior is None or gates is None or not np.any(gates):
        return labels
    prior = np.asarray(prior, dtype=np.uint8)
    concerned = np.where(labels > 0, labels, prior)  # 0 only where both say background
    gate = np.concatenate([[0.0], np.asarray(gates, dtype=np.float32)])[concerned]
    keep_classical = (labels != prior) & (np.abs(score) < gate)
    return np.where(keep_classical, prior, labels).astype(np.uint8)


def prior_at(prior: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """The classical label at voxel-index lattice nodes; nodes outside the volume (the
    coarse lattice may overhang it) are background."""
    index = np.rint(ijk).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.asarray(prior.shape)), axis=1)
    out = np.zeros(len(index), dtype=np.uint8)
    out[inside] = prior[tuple(index[inside].T)]
    return out


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
    gates = np.asarray(model.config.bone_gates, dtype=np.float32)
    prior = np.asarray(prior, dtype=np.uint8)
    with torch.inference_mode():
        maps = model.encode(ct)
        encode_s = time.perf_counter() - start

        def classify(ijk: np.ndarray) -> np.ndarray:
            index = torch.from_numpy(ijk.astype(np.float32))
            points = index @ to_patient[:3, :3].T + to_patient[:3, 3]
            logits = model.query(maps, ct, points)[1]
            return bone_decision(logits, offsets, prior_at(prior, ijk), gates)

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
