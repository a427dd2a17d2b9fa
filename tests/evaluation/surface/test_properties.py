"""Properties (hypothesis): symmetry, and invariance to rigid motion, vertex order and face orientation."""

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation.surface import compare_pair
from evaluation.surface.metrics import Directed, distance_metrics
from evaluation.surface.synthetic import bone_mesh

from .shapes import random_rigid

SYMMETRIC = ("assd", "masd", "rms", "hd", "hd95", "nsd", "chamfer", "dice", "iou")
PARAMS = {"density": 4.0, "convergence": False}
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pair(seed: int):
    reference = bone_mesh("patella", subdivisions=4)
    result = bone_mesh("patella", subdivisions=3, noise_mm=1.0, scale=0.97, seed=seed)
    return reference, result


def _close(a: dict, b: dict, keys, rel=1e-7, abs_=1e-7):
    for key in keys:
        assert a[key] == pytest.approx(b[key], rel=rel, abs=abs_), key


@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=30),
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=30),
    st.floats(1, 100),
    st.floats(1, 100),
    st.floats(0, 5),
)
def test_metric_formulas_are_symmetric(d_ab, d_ba, area_a, area_b, tolerance):
    ab = Directed(np.array(d_ab), np.array([0.0]), area_a)
    ba = Directed(np.array(d_ba), np.array([0.0]), area_b)
    _close(
        distance_metrics(ab, ba, tolerance),
        distance_metrics(ba, ab, tolerance),
        SYMMETRIC[:7],
        rel=1e-12,
    )


@SETTINGS
@given(st.integers(0, 1000))
def test_swapping_reference_and_result_keeps_symmetric_metrics(seed):
    reference, result = _pair(seed)
    forward = compare_pair(reference, result, signed=False, **PARAMS).metrics
    backward = compare_pair(result, reference, signed=False, **PARAMS).metrics
    _close(forward, backward, ("dice", "iou"), rel=1e-12)  # the same voxels, exactly
    # the two sides are sampled with swapped seeds: equal within sampling error
    _close(forward, backward, ("assd", "masd", "rms", "chamfer"), rel=0.02)
    _close(forward, backward, ("hd", "hd95"), rel=0.03)
    _close(forward, backward, ("nsd",), rel=0.0, abs_=0.02)


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_rigid_motion_of_both_meshes_changes_nothing(seed):
    reference, result = _pair(seed % 7)
    before = compare_pair(reference, result, **PARAMS).metrics
    transform = random_rigid(np.random.default_rng(seed))
    moved_ref, moved_res = reference.copy(), result.copy()
    moved_ref.apply_transform(transform)
    moved_res.apply_transform(transform)
    after = compare_pair(moved_ref, moved_res, **PARAMS).metrics
    # the samples move with the meshes: distances agree to float rounding
    _close(
        before,
        after,
        ("assd", "masd", "rms", "hd", "hd95", "chamfer", "signed_mean"),
        rel=1e-5,
        abs_=1e-5,
    )
    _close(before, after, ("nsd",), rel=0, abs_=1e-3)
    # the voxel lattice does not move with the meshes: overlap agrees to discretisation
    _close(before, after, ("dice", "iou"), rel=0.005)


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_vertex_order_changes_nothing(seed):
    reference, result = _pair(seed % 5)
    before = compare_pair(reference, result, **PARAMS).metrics
    rng = np.random.default_rng(seed)
    permuted = []
    for mesh in (reference, result):
        order = rng.permutation(len(mesh.vertices))
        inverse = np.argsort(order)
        permuted.append(trimesh.Trimesh(mesh.vertices[order], inverse[mesh.faces], process=False))
    after = compare_pair(*permuted, **PARAMS).metrics
    _close(before, after, before.keys(), rel=1e-9, abs_=1e-9)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 1.0))
def test_face_orientation_changes_nothing(seed, fraction):
    reference, result = _pair(seed % 5)
    before = compare_pair(reference, result, **PARAMS).metrics
    rng = np.random.default_rng(seed)
    flipped = []
    for mesh in (reference, result):
        faces = np.array(mesh.faces)
        pick = rng.random(len(faces)) < fraction
        faces[pick] = faces[pick][:, ::-1]
        flipped.append(trimesh.Trimesh(mesh.vertices, faces, process=False))
    after = compare_pair(*flipped, **PARAMS).metrics
    # parity and voxels do not depend on orientation: exactly the same
    _close(before, after, ("dice", "iou"), rel=1e-12)
    # a reversed face maps the same random numbers to other points: sampling error only
    _close(before, after, ("assd", "masd", "rms", "chamfer"), rel=0.02)
    _close(before, after, ("signed_mean",), rel=0.05, abs_=0.02)
    _close(before, after, ("hd", "hd95"), rel=0.03)
