"""Projection and pixel-aligned sampling agree with the DRR geometry conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconstruction.drr.geometry import ViewGeometry, make_view_pair, project_points
from reconstruction.networks.geometry import (
    normalise_view,
    normalising_transform,
    pixels_to_grid,
    project,
    sample_pixel_features,
)
from reconstruction.networks.positional import FourierEncoding

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(-60, 60, (50, 3))


@pytest.mark.parametrize("separation", [45.0, 90.0])
def test_project_matches_drr_geometry(separation: float) -> None:
    views = make_view_pair(
        separation, isocentre_mm=(5.0, -3.0, 10.0), detector_px=128, pixel_spacing_mm=2.3
    )
    matrices = torch.from_numpy(np.stack([v.projection_matrix() for v in views]))[None]
    pixels, depth = project(matrices, torch.from_numpy(POINTS)[None])
    for index, view in enumerate(views):
        expected = project_points(view.projection_matrix(), POINTS)
        np.testing.assert_allclose(pixels[0, index].numpy(), expected, atol=1e-6)
        along_beam = (POINTS - view.source_position) @ view.beam_direction
        np.testing.assert_allclose(depth[0, index].numpy(), along_beam, atol=1e-6)


@pytest.mark.parametrize("feature_size", [128, 64, 32])
def test_sampler_reads_the_projected_pixel_at_any_feature_resolution(feature_size: int) -> None:
    """A feature map holding its own image coordinates (u, v) returns exactly the projected
    pixel: bilinear interpolation of a linear ramp is exact, and coarser maps cover the same
    image extent (align_corners=False)."""
    view = make_view_pair(90.0, detector_px=128, pixel_spacing_mm=2.3)[1]
    size, step = 128, 128 // feature_size
    centres = (np.arange(feature_size) + 0.5) * step - 0.5  # image coordinate of each cell
    ramp = torch.from_numpy(np.stack(np.meshgrid(centres, centres, indexing="xy"))).float()[None]
    points = RNG.uniform(-40, 40, (30, 3))
    pixels, _ = project(
        torch.from_numpy(view.projection_matrix())[None, None], torch.from_numpy(points)[None]
    )
    grid = pixels_to_grid(pixels[0].float(), size, size)
    sampled = sample_pixel_features(ramp, grid)[0].numpy()
    np.testing.assert_allclose(sampled, project_points(view.projection_matrix(), points), atol=1e-3)


@pytest.mark.parametrize(
    "geometry",
    [
        ViewGeometry(angle_deg=30.0, detector_size_px=(512, 512), pixel_spacing_mm=(0.575, 0.575)),
        ViewGeometry(  # another magnification, detector and anisotropic pixels
            angle_deg=-20.0,
            isocentre_mm=(10.0, 0.0, -5.0),
            source_isocentre_mm=700.0,
            source_detector_mm=1100.0,
            detector_size_px=(300, 260),
            pixel_spacing_mm=(0.6, 0.7),
        ),
    ],
)
def test_normalised_view_keeps_image_and_matrix_consistent(geometry: ViewGeometry) -> None:
    """A bright blob drawn at the projection of a 3D point is found, after normalisation, at
    the projection of the same point through P' = A P."""
    point = np.array([[12.0, -8.0, 20.0]])
    u, v = project_points(geometry.projection_matrix(), point)[0]
    width, height = geometry.detector_size_px
    uu, vv = np.meshgrid(np.arange(width), np.arange(height), indexing="xy")
    sigma = 6.0
    image = np.exp(-((uu - u) ** 2 + (vv - v) ** 2) / (2 * sigma**2)).astype(np.float32)
    view = normalise_view(image, geometry)
    expected = project_points(view.projection, point)[0]
    weights = view.image**4
    centre = [
        float((weights * g).sum() / weights.sum())
        for g in np.meshgrid(np.arange(128), np.arange(128), indexing="xy")
    ]
    np.testing.assert_allclose(centre, expected, atol=0.3)
    iso = project_points(view.projection, np.asarray([geometry.isocentre_mm]))[0]
    np.testing.assert_allclose(iso, [63.5, 63.5], atol=1e-6)
    assert view.reference_depth_mm == pytest.approx(geometry.source_isocentre_mm)


def test_reference_detector_at_128_px_is_not_resampled() -> None:
    geometry = make_view_pair(60.0, detector_px=128, pixel_spacing_mm=2.3)[0]
    np.testing.assert_allclose(normalising_transform(geometry), np.eye(3), atol=1e-12)
    image = RNG.normal(size=(128, 128)).astype(np.float32)
    np.testing.assert_array_equal(normalise_view(image, geometry).image, image)


def test_fourier_encoding_shape() -> None:
    encoding = FourierEncoding(3, 4)
    out = encoding(torch.zeros(2, 7, 3))
    assert out.shape == (2, 7, encoding.out_dim) == (2, 7, 27)
