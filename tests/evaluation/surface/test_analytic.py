"""Analytic cases: concentric spheres, a translated cube, identical meshes."""

import numpy as np
import pytest

from evaluation.surface import Slab, compare_pair
from evaluation.surface.metrics import Directed, distance_metrics

from .shapes import cube, sphere

DISTANCE_METRICS = ("assd", "masd", "rms", "hd", "hd95", "signed_mean")


@pytest.fixture(scope="module")
def concentric():
    inner, outer = sphere(20.0, 6), sphere(21.0, 6)
    return inner, outer, compare_pair(inner, outer, density=5.0)


def test_concentric_spheres_every_distance_is_the_radius_gap(concentric):
    _, _, pair = concentric
    for name in DISTANCE_METRICS:
        assert pair.metrics[name] == pytest.approx(1.0, rel=0.01), name
    for direction in pair.directed.values():
        assert direction["mean"] == pytest.approx(1.0, rel=0.01)
        assert direction["max"] == pytest.approx(1.0, rel=0.01)
    # Chamfer is the sum of the two directed mean squared distances: 2 d^2
    assert pair.metrics["chamfer"] == pytest.approx(2.0, rel=0.01)
    assert pair.metrics["nsd"] == 1.0  # every point within tau = 1 mm... on the faceted spheres
    assert pair.parameters["convergence"]["converged"]


def test_concentric_spheres_volume_overlap_is_the_volume_ratio(concentric):
    _, _, pair = concentric
    ratio = 20.0**3 / 21.0**3
    assert pair.metrics["iou"] == pytest.approx(ratio, rel=0.005)
    assert pair.metrics["dice"] == pytest.approx(2 * ratio / (1 + ratio), rel=0.005)


def test_signed_distance_sign_follows_inside_outside(concentric):
    inner, outer, pair = concentric
    assert pair.metrics["signed_mean"] == pytest.approx(1.0, rel=0.01)  # result larger: positive
    swapped = compare_pair(outer, inner, density=2.0, volume=False, convergence=False)
    assert swapped.metrics["signed_mean"] == pytest.approx(-1.0, rel=0.01)
    assert np.all(swapped.vertex_signed_distance < 0)


def test_nsd_counts_the_area_within_tolerance():
    inner, outer = sphere(20.0, 5), sphere(20.5, 5)
    within = compare_pair(
        inner, outer, density=2.0, tolerance=0.6, volume=False, signed=False, convergence=False
    )
    beyond = compare_pair(
        inner, outer, density=2.0, tolerance=0.4, volume=False, signed=False, convergence=False
    )
    assert within.metrics["nsd"] == 1.0
    assert beyond.metrics["nsd"] == 0.0


def test_translated_cube_gives_the_known_values():
    # Cube of side 20 against itself moved 2 mm along x (derivation in the comments).
    # A -> B (= B -> A by symmetry), area-weighted over 2400 mm^2:
    #   face x=-10 (400 mm^2): d = 2; four side faces: a 2 mm strip with d = 0..2 (mean 1),
    #   d = 0 elsewhere; face x=+10 (inside B): d = min(2, distance to the square's rim),
    #   integral = 2 * 16^2 + int_0^2 t * 8 (10 - t) dt = 512 + 138.667.
    mean = (800 + 4 * 40 * 1 + 650.6667) / 2400  # 0.671111
    mean_sq = (1600 + 4 * 20 * 8 / 3 + 1024 + 8 * (80 / 3 - 4)) / 2400  # 1.257778
    nsd = (4 * 380 + (400 - 18**2)) / 2400  # tau = 1 mm: 0.665
    signed = (800 - 650.6667 + 4 * 40) / 2400  # result face x=+12 out, x=-8 in: 0.128889
    pair = compare_pair(cube(), cube(offset=(2.0, 0.0, 0.0)), density=200.0, convergence=False)
    m = pair.metrics
    assert m["assd"] == pytest.approx(mean, rel=0.01)
    assert m["masd"] == pytest.approx(mean, rel=0.01)
    assert m["rms"] == pytest.approx(np.sqrt(mean_sq), rel=0.01)
    assert m["chamfer"] == pytest.approx(2 * mean_sq, rel=0.01)
    # exact to the float32 rounding of the BVH search (a near-tie between faces), << 1e-4 mm
    assert m["hd"] == pytest.approx(2.0, abs=1e-5)
    assert m["hd95"] == pytest.approx(2.0, abs=1e-5)
    assert m["nsd"] == pytest.approx(nsd, abs=0.005)
    assert m["signed_mean"] == pytest.approx(signed, rel=0.02)
    # volumes: the lattice is anchored at 0 with 0.25 mm voxels, the faces lie on voxel faces
    assert m["dice"] == pytest.approx(0.9, abs=1e-12)
    assert m["iou"] == pytest.approx(7200 / 8800, abs=1e-12)


def test_identical_meshes_give_zero():
    mesh = sphere(20.0, 4)
    pair = compare_pair(mesh, mesh.copy(), density=2.0)
    for name in (*DISTANCE_METRICS, "chamfer"):
        assert pair.metrics[name] == pytest.approx(0.0, abs=1e-9), name
    assert pair.metrics["nsd"] == 1.0
    assert pair.metrics["dice"] == 1.0
    assert pair.metrics["iou"] == 1.0


def test_roi_crop_measures_to_the_whole_other_surface():
    inner, outer = sphere(20.0, 6), sphere(21.0, 6)
    slab = Slab(centre=(0.0, 0.0, 0.0), axis=(0.0, 0.0, 2.0), below=10.0, above=5.0)
    pair = compare_pair(inner, outer, density=5.0, roi=slab)
    for name in DISTANCE_METRICS:
        assert pair.metrics[name] == pytest.approx(1.0, rel=0.01), name

    def segment(r):  # volume of the sphere between z = -10 and z = 5, over pi
        return r * r * 15 - (125 + 1000) / 3

    dice = 2 * segment(20) / (segment(20) + segment(21))
    assert pair.metrics["dice"] == pytest.approx(dice, rel=0.005)
    assert pair.parameters["roi"]["axis"] == (0.0, 0.0, 1.0)
    assert pair.parameters["area_mm2"]["reference"] == pytest.approx(2 * np.pi * 20 * 15, rel=0.01)


def test_oblique_roi_matches_the_analytic_slab():
    inner, outer = sphere(20.0, 6), sphere(21.0, 6)
    axis = np.array([1.0, 1.0, 1.0]) / np.sqrt(3)
    slab = Slab(centre=tuple(2.0 * axis), axis=tuple(axis), below=8.0, above=12.0)  # s in [-6, 14]

    def segment(r):
        return r * r * 20 - (14**3 + 6**3) / 3

    pair = compare_pair(inner, outer, density=3.0, roi=slab, convergence=False)
    assert pair.metrics["dice"] == pytest.approx(
        2 * segment(20) / (segment(20) + segment(21)), rel=0.005
    )


def test_metrics_from_directed_sets_by_hand():
    ab = Directed(samples=np.array([1.0, 2.0, 3.0, 4.0]), vertices=np.array([5.0]), area=10.0)
    ba = Directed(samples=np.array([0.0, 0.0, 1.0, 1.0]), vertices=np.array([0.5]), area=30.0)
    m = distance_metrics(ab, ba, tolerance=1.0)
    assert m["assd"] == pytest.approx((10 * 2.5 + 30 * 0.5) / 40)
    assert m["masd"] == pytest.approx((2.5 + 0.5) / 2)
    assert m["rms"] == pytest.approx(np.sqrt((10 * 7.5 + 30 * 0.5) / 40))
    assert m["hd"] == 5.0  # a vertex: maximum only, no weight
    assert m["hd95"] == pytest.approx(np.quantile([1, 2, 3, 4], 0.95))
    assert m["nsd"] == pytest.approx((10 * 0.25 + 30 * 1.0) / 40)
    assert m["chamfer"] == pytest.approx(7.5 + 0.5)
