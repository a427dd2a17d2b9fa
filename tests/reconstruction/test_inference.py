"""Coarse-to-fine occupancy on analytic spheres: the dense result with far fewer evaluations."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.inference import RefineSettings, coarse_to_fine, dense_labels
from reconstruction.meshing import meshes_from_labels

CENTRES = np.array([[0.0, 0.0, 0.0], [31.0, 0.0, 0.0], [0.0, 27.0, 9.0]])
RADII = np.array([20.0, 9.0, 6.0])
LO, HI = np.array([-36.0, -36.0, -36.0]), np.array([44.0, 40.0, 36.0])


class CountingSpheres:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, points: np.ndarray) -> np.ndarray:
        self.calls += len(points)
        labels = np.zeros(len(points), dtype=np.uint8)
        for index, (centre, radius) in enumerate(zip(CENTRES, RADII, strict=True)):
            labels[np.linalg.norm(points - centre, axis=1) < radius] = index + 1
        return labels


@pytest.fixture(scope="module")
def results():
    settings = RefineSettings(coarse_mm=4.0, levels=3)
    sparse_fn, dense_fn = CountingSpheres(), CountingSpheres()
    sparse = coarse_to_fine(sparse_fn, LO, HI, settings)
    dense = dense_labels(dense_fn, LO, HI, settings)
    return sparse, dense, sparse_fn.calls, dense_fn.calls


def test_same_labels_as_the_dense_grid_with_few_evaluations(results) -> None:
    sparse, dense, sparse_calls, dense_calls = results
    assert sparse.labels.shape == dense.shape
    np.testing.assert_array_equal(sparse.labels.affine, dense.affine)
    assert (sparse.labels.array != dense.array).mean() < 1e-5
    assert sparse.evaluations == sparse_calls == sum(sparse.evaluations_per_level)
    assert sparse_calls < 0.06 * dense_calls
    assert sparse.labels.spacing == (0.5, 0.5, 0.5)


def test_meshes_match_the_dense_meshes_and_the_spheres(results) -> None:
    sparse, dense, _, _ = results
    names = {"a": 1, "b": 2, "c": 3}
    meshes = meshes_from_labels(sparse.labels, names)
    reference = meshes_from_labels(dense, names)
    for (name, mesh), radius, centre in zip(meshes.items(), RADII, CENTRES, strict=True):
        assert mesh.is_watertight
        assert mesh.volume == pytest.approx(reference[name].volume, rel=1e-3)
        distances = np.linalg.norm(mesh.vertices - centre, axis=1)
        assert np.abs(distances - radius).max() < 0.5


def test_a_uniform_function_is_not_refined() -> None:
    result = coarse_to_fine(lambda p: np.zeros(len(p), np.uint8), LO, HI, RefineSettings())
    assert result.evaluations_per_level[1:] == [0, 0, 0]
