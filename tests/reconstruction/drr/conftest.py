"""Small volumes with non-trivial affines for the projector tests."""

from __future__ import annotations

import numpy as np
import pytest


def rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    matrices = {
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
    }
    return np.asarray(matrices[axis], dtype=float)


def oblique_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """Anisotropic, rotated (not axis-aligned), flipped-axis affine centred near the origin."""
    direction = rotation("z", 25.0) @ rotation("x", -15.0) @ np.diag([1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(spacing)
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    affine[:3, 3] = np.array([12.0, -7.0, 30.0]) - centre
    return affine


@pytest.fixture
def oblique() -> tuple[tuple[int, int, int], np.ndarray]:
    shape = (64, 72, 48)
    return shape, oblique_affine(shape, (1.1, 0.8, 1.4))
