"""Synthetic training cases (two spheres seen in a DRR-free toy pair) for fast trainer tests."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.drr.geometry import make_view_pair
from reconstruction.training.data import TrainingCase, split_seeds

MASTER = 5
N_TRAIN = 4


def toy_case(seed: int) -> TrainingCase:
    rng = np.random.default_rng(seed % 1000)
    centre = rng.uniform(-10, 10, 3)
    radius = rng.uniform(15, 25)
    views = make_view_pair(90.0, detector_px=32, pixel_spacing_mm=9.2)
    uu, vv = np.meshgrid(np.arange(32), np.arange(32), indexing="xy")
    images, matrices = [], []
    for view in views:
        matrix = view.projection_matrix()
        hom = matrix @ np.append(centre, 1.0)
        u, v = hom[:2] / hom[2]
        images.append(np.exp(-((uu - u) ** 2 + (vv - v) ** 2) / (2 * (radius / 4.6) ** 2)))
        matrices.append(matrix)
    points = rng.uniform(-50, 50, (2000, 3)).astype(np.float32)
    labels = (np.linalg.norm(points - centre, axis=1) < radius).astype(np.uint8)
    labels[(labels == 1) & (points[:, 2] > centre[2])] = 2
    ct = np.full((24, 24, 24), -100, dtype=np.int16)
    ijk = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"), -1) * 4.0 - 46.0
    ct[np.linalg.norm(ijk - centre, axis=-1) < radius] = 800
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -46.0
    return TrainingCase(
        seed=seed,
        images=np.stack(images)[None].astype(np.float32),
        projections=np.stack(matrices)[None],
        reference_depths=np.full((1, 2), 1000.0),
        separations=np.array([90.0]),
        doses=np.array([1e5]),
        points=points,
        labels=labels,
        ct=ct,
        ct_affine=affine,
        fov_box=np.array([[-50.0] * 3, [50.0] * 3]),
    )


@pytest.fixture(scope="session")
def toy_cases() -> dict[int, TrainingCase]:
    return {seed: toy_case(seed) for seed in split_seeds(MASTER, N_TRAIN, 0)["train"]}
