"""Projection matrices: conventions, consistency checks, and agreement with rendered beads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from reconstruction.drr.geometry import (
    ViewGeometry,
    camera_centre,
    check_projection_matrix,
    make_view_pair,
    project_points,
)
from reconstruction.drr.projector import line_integrals
from reconstruction.errors import GeometryError


def test_isocentre_projects_to_detector_centre_and_source_is_null_space() -> None:
    view = ViewGeometry(angle_deg=37.0, isocentre_mm=(5.0, -3.0, 20.0), detector_size_px=(100, 80))
    matrix = view.projection_matrix()
    assert np.allclose(project_points(matrix, [view.isocentre_mm]), [[49.5, 39.5]])
    assert np.allclose(camera_centre(matrix), view.source_position)
    assert np.linalg.norm(view.source_position - np.asarray(view.isocentre_mm)) == pytest.approx(
        1000.0
    )


def test_ap_view_conventions() -> None:
    """AP: source anterior (-y), patient left (+x) to the right of the image, superior up."""
    view = ViewGeometry(angle_deg=0.0, detector_size_px=(64, 64))
    assert view.source_position[1] < 0
    centre, left, superior = project_points(
        view.projection_matrix(), [[0, 0, 0], [10, 0, 0], [0, 0, 10]]
    )
    assert left[0] > centre[0] and left[1] == pytest.approx(centre[1])
    assert superior[1] < centre[1]
    # magnification 2 at the isocentre: 10 mm -> 20 mm at the detector -> 20 / 0.575 px
    assert left[0] - centre[0] == pytest.approx(20.0 / 0.575)


def test_pixel_positions_project_onto_their_own_indices() -> None:
    view = ViewGeometry(
        angle_deg=63.0,
        isocentre_mm=(1.0, 2.0, 3.0),
        detector_size_px=(7, 5),
        pixel_spacing_mm=(0.7, 0.9),
    )
    positions = view.pixel_positions()
    uv = project_points(view.projection_matrix(), positions.reshape(-1, 3))
    rows, columns = np.mgrid[0:5, 0:7]
    assert np.allclose(uv, np.stack([columns.ravel(), rows.ravel()], axis=1), atol=1e-9)


@pytest.mark.parametrize("separation", [29.0, 91.0, 180.0, 0.0])
def test_separation_outside_30_to_90_degrees_is_rejected(separation: float) -> None:
    with pytest.raises(GeometryError, match="separation"):
        make_view_pair(separation)


@pytest.mark.parametrize("separation", [30.0, 45.0, 90.0])
def test_separation_inside_range_is_accepted(separation: float) -> None:
    first, second = make_view_pair(separation, first_angle_deg=-20.0)
    assert second.angle_deg - first.angle_deg == pytest.approx(separation)


def test_bad_distances_are_rejected() -> None:
    with pytest.raises(GeometryError, match="source-isocentre"):
        ViewGeometry(angle_deg=0.0, source_isocentre_mm=2500.0, source_detector_mm=2000.0)


def test_matrix_check_flags_wrong_distance_and_wrong_angle() -> None:
    view = ViewGeometry(angle_deg=10.0, detector_size_px=(64, 64))
    check_projection_matrix(view.projection_matrix(), view)
    farther = ViewGeometry(angle_deg=10.0, source_isocentre_mm=1010.0, detector_size_px=(64, 64))
    with pytest.raises(GeometryError, match="source 1010.00 mm from the isocentre"):
        check_projection_matrix(farther.projection_matrix(), view)
    rotated = ViewGeometry(angle_deg=10.5, detector_size_px=(64, 64))
    with pytest.raises(GeometryError, match="disagrees"):
        check_projection_matrix(rotated.projection_matrix(), view)
    with pytest.raises(GeometryError, match="rank 3"):
        check_projection_matrix(np.zeros((3, 4)), view)


def _bead_centroids(image: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(image > 0.05 * image.max())
    centroids = ndimage.center_of_mass(image, labels, range(1, count + 1))
    return np.array([(column, row) for row, column in centroids])


def test_beads_land_where_the_matrices_say(oblique: tuple) -> None:
    """Dense single-voxel beads, off-centre, oblique anisotropic affine, 45 degree pair:
    each bead's rendered centroid is within 0.5 pixel of P @ bead position."""
    shape, affine = oblique
    mu = np.zeros(shape, dtype=np.float32)
    bead_indices = np.array([[10, 12, 9], [50, 40, 35], [32, 28, 24], [15, 45, 40], [55, 8, 14]])
    mu[tuple(bead_indices.T)] = 1.0
    bead_points = bead_indices @ affine[:3, :3].T + affine[:3, 3]
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3]
    views = make_view_pair(
        45.0,
        first_angle_deg=15.0,
        isocentre_mm=centre + [4.0, -3.0, 2.0],
        detector_px=160,
        pixel_spacing_mm=1.0,
    )
    for view in views:
        rendered = _bead_centroids(line_integrals(mu, affine, view))
        assert len(rendered) == len(bead_points), "beads overlap or vanished in this view"
        predicted = project_points(view.projection_matrix(), bead_points)
        distances = np.linalg.norm(predicted[:, None, :] - rendered[None, :, :], axis=2)
        assert distances.min(axis=1).max() < 0.5
