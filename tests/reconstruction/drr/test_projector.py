"""Projector physics: analytic path lengths, HU -> mu, noise statistics."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.drr.geometry import ViewGeometry, make_view_pair
from reconstruction.drr.noise import NoiseModel, apply_noise
from reconstruction.drr.projector import MU_WATER_PER_MM, hu_to_mu, line_integrals, project_ct
from reconstruction.volume import Volume

SPHERE_MU = 0.03  # per mm
SPHERE_RADIUS_MM = 20.0


def _sphere_occupancy(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    centre: np.ndarray,
    radius: float,
    supersample: int = 3,
) -> np.ndarray:
    """Fraction of each voxel inside the sphere (supersampled, so the voxel model is exact on average)."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = np.stack(np.indices(shape), axis=-1).reshape(-1, 1, 3).astype(float)
    occupancy = np.zeros(int(np.prod(shape)))
    for start in range(0, len(grid), 20000):
        points = (grid[start : start + 20000] + sub[None]) @ affine[:3, :3].T + affine[:3, 3]
        occupancy[start : start + 20000] = (
            np.sum((points - centre) ** 2, axis=-1) <= radius**2
        ).mean(axis=1)
    return occupancy.reshape(shape).astype(np.float32)


def _analytic_chords(view: ViewGeometry, centre: np.ndarray, radius: float) -> np.ndarray:
    pixels = view.pixel_positions()
    direction = pixels - view.source_position
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    to_centre = centre - view.source_position
    along = direction @ to_centre
    distance_sq = np.sum(to_centre**2) - along**2
    return 2.0 * np.sqrt(np.clip(radius**2 - distance_sq, 0.0, None))


def test_line_integral_through_uniform_sphere_matches_analytic_chord(oblique: tuple) -> None:
    shape, affine = oblique
    centre = (
        affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
        + affine[:3, 3]
        + np.array([3.0, -2.0, 1.5])
    )
    mu = SPHERE_MU * _sphere_occupancy(shape, affine, centre, SPHERE_RADIUS_MM)
    for view in make_view_pair(
        60.0, first_angle_deg=20.0, isocentre_mm=centre, detector_px=96, pixel_spacing_mm=1.0
    ):
        measured = line_integrals(mu, affine, view)
        expected = SPHERE_MU * _analytic_chords(view, centre, SPHERE_RADIUS_MM)
        # Rays passing within half a radius of the centre: there the voxelised sphere's
        # blurred rim (about one voxel) changes the chord by far less than 1 %.
        half_chord = expected / (2 * SPHERE_MU)
        core = SPHERE_RADIUS_MM**2 - half_chord**2 < (0.5 * SPHERE_RADIUS_MM) ** 2
        assert core.sum() > 300
        relative = np.abs(measured[core] - expected[core]) / expected[core]
        assert np.mean(relative) < 0.003
        assert relative.max() < 0.01
        far_outside = _analytic_chords(view, centre, SPHERE_RADIUS_MM + 3.0) == 0
        assert far_outside.sum() > 1000 and measured[far_outside].max() == 0.0


def test_empty_rays_are_zero_and_rays_missing_the_volume_are_zero() -> None:
    affine = np.eye(4)
    mu = np.full((16, 16, 16), 0.02, dtype=np.float32)
    view = ViewGeometry(
        angle_deg=0.0,
        isocentre_mm=(7.5, 7.5, 7.5),
        detector_size_px=(80, 80),
        pixel_spacing_mm=(1.0, 1.0),
    )
    image = line_integrals(mu, affine, view)
    assert image[0, 0] == 0.0 and image[-1, -1] == 0.0
    # centre ray crosses 16 voxels of 1 mm along y (plus the half-voxel interpolation ramps)
    assert image[40, 40] == pytest.approx(0.02 * 16.0, rel=0.07)


def test_source_and_detector_inside_the_volume_count_only_the_segment_between() -> None:
    """A 3.2 m wide slab swallows source and detector: the ray integral must stop at both
    ends (the masked path of the projector; within one 10 mm voxel step at each end)."""
    affine = np.diag([10.0, 10.0, 10.0, 1.0])
    affine[:3, 3] = [-1595.0, -1595.0, -15.0]
    mu = np.full((320, 320, 4), 0.02, dtype=np.float32)
    view = ViewGeometry(angle_deg=30.0, detector_size_px=(5, 5), pixel_spacing_mm=(1.0, 1.0))
    image = line_integrals(mu, affine, view)
    assert image[2, 2] == pytest.approx(0.02 * 2000.0, rel=0.01)


def test_hu_to_mu_clips_air_and_padding_at_zero() -> None:
    mu = hu_to_mu(np.array([-3024.0, -1000.0, 0.0, 1000.0]))
    assert np.allclose(mu, [0.0, 0.0, MU_WATER_PER_MM, 2 * MU_WATER_PER_MM])
    assert np.allclose(
        hu_to_mu(np.array([2000.0]), clip_hu=(-400.0, 500.0)), [1.5 * MU_WATER_PER_MM]
    )


def test_project_ct_uses_hu() -> None:
    water = Volume(np.zeros((8, 8, 8), dtype=np.float32), np.eye(4))
    air = Volume(np.full((8, 8, 8), -1000.0, dtype=np.float32), np.eye(4))
    views = make_view_pair(90.0, isocentre_mm=(3.5, 3.5, 3.5), detector_px=16, pixel_spacing_mm=1.0)
    assert project_ct(air, views)[0].max() == 0.0
    assert project_ct(water, views)[0].max() > 0.1


def test_noise_is_seeded_and_matches_poisson_statistics() -> None:
    flat = np.full((200, 200), 2.0, dtype=np.float32)
    model = NoiseModel(photons_per_pixel=1e4, blur_sigma_px=0.0, electronic_sigma=0.0)
    first = apply_noise(flat, model, np.random.default_rng(3))
    again = apply_noise(flat, model, np.random.default_rng(3))
    other = apply_noise(flat, model, np.random.default_rng(4))
    assert np.array_equal(first.line_integral, again.line_integral)
    assert not np.array_equal(first.line_integral, other.line_integral)
    # Var(-log(N / I0)) ~ 1 / E[N] with E[N] = I0 exp(-2)
    expected_std = 1.0 / np.sqrt(1e4 * np.exp(-2.0))
    assert np.std(first.line_integral) == pytest.approx(expected_std, rel=0.05)
    assert np.mean(first.line_integral) == pytest.approx(2.0, abs=0.01)
    assert np.allclose(first.intensity, np.exp(-first.line_integral), rtol=1e-5)


def test_lower_dose_is_noisier_and_blur_scatter_behave() -> None:
    flat = np.full((128, 128), 1.0, dtype=np.float32)
    rng = np.random.default_rng(0)
    high = apply_noise(flat, NoiseModel(photons_per_pixel=1e5), rng).line_integral
    low = apply_noise(flat, NoiseModel(photons_per_pixel=1e3), rng).line_integral
    assert np.std(low) > 5 * np.std(high)
    sharp = apply_noise(
        flat, NoiseModel(photons_per_pixel=1e3, blur_sigma_px=0.0), rng
    ).line_integral
    blurred = apply_noise(
        flat, NoiseModel(photons_per_pixel=1e3, blur_sigma_px=1.5), rng
    ).line_integral
    assert np.std(blurred) < 0.5 * np.std(sharp)
    scattered = apply_noise(
        flat, NoiseModel(photons_per_pixel=1e5, scatter_fraction=0.3), rng
    ).line_integral
    assert np.mean(scattered) < np.mean(high) - 0.1  # extra photons: lower apparent attenuation


def test_noise_model_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="dose"):
        NoiseModel(photons_per_pixel=0.0)
    with pytest.raises(ValueError, match="blur_sigma_px"):
        NoiseModel(blur_sigma_px=-1.0)
