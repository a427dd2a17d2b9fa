"""Coarse-to-fine occupancy on analytic spheres: the dense result with far fewer evaluations."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.inference import (
    RefineSettings,
    _new_nodes_of_mixed_spans,
    coarse_to_fine,
    dense_labels,
)
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


@pytest.fixture(scope="module")
def span_result():
    return coarse_to_fine(CountingSpheres(), LO, HI, RefineSettings(levels=3, span_from_mm=2.0))


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


def test_mixed_spans_give_the_whole_cell_labels_with_fewer_evaluations(
    results, span_result
) -> None:
    cells, dense, _, _ = results
    # the same lattice and the same classes as refining whole cells (and as the dense grid)
    np.testing.assert_array_equal(span_result.labels.affine, cells.labels.affine)
    assert (span_result.labels.array != cells.labels.array).mean() < 1e-5
    assert (span_result.labels.array != dense.array).mean() < 1e-5
    # the first refinement (4 -> 2 mm) refines whole cells; the last two far fewer nodes
    assert span_result.evaluations_per_level[:2] == cells.evaluations_per_level[:2]
    for spans, whole in zip(
        span_result.evaluations_per_level[2:], cells.evaluations_per_level[2:], strict=True
    ):
        assert 0 < spans < 0.6 * whole


def test_only_nodes_whose_spanning_nodes_disagree_are_new_nodes() -> None:
    labels = np.zeros((3, 3, 3), dtype=np.uint8)
    labels[1, 1, 1] = 2
    nodes = {tuple(n) for n in _new_nodes_of_mixed_spans(labels)}
    # every edge, face and cell with the odd node as a corner: the 26 fine neighbours of it
    around = {(2 + i, 2 + j, 2 + k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)}
    assert nodes == around - {(2, 2, 2)}
    assert len(_new_nodes_of_mixed_spans(np.ones((3, 4, 5), dtype=np.uint8))) == 0


def test_a_gap_thinner_than_the_old_spacing_between_two_old_nodes_is_the_stated_risk() -> None:
    """A 1 mm slab of another class lying between two old nodes 2 mm apart, both
    background: no span is mixed, so the slab is not found (the module docstring's risk)."""

    def slab(points: np.ndarray) -> np.ndarray:
        inside = np.abs(points[:, 0] - 1.0) < 0.5  # between the nodes at x = 0 and x = 2
        return np.where(inside, 1, 0).astype(np.uint8)

    lo, hi = np.zeros(3), np.full(3, 8.0)
    settings = RefineSettings(coarse_mm=2.0, levels=1, span_from_mm=2.0)
    assert not coarse_to_fine(slab, lo, hi, settings).labels.array.any()
