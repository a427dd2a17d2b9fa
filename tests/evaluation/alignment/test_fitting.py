"""Fits against shapes with a known answer (points generated analytically, not by the fits)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.alignment.errors import FitError
from evaluation.alignment.fitting import (
    fit_circle,
    fit_cylinder,
    fit_plane,
    fit_revolution_axis,
    fit_sphere,
)


def _cap(rng: np.random.Generator, n: int, max_polar_deg: float) -> np.ndarray:
    """Unit vectors on a spherical cap around +z (partial coverage biases algebraic fits)."""
    z = rng.uniform(np.cos(np.radians(max_polar_deg)), 1.0, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    s = np.sqrt(1 - z * z)
    return np.column_stack([s * np.cos(phi), s * np.sin(phi), z])


def test_sphere_on_noisy_partial_cap() -> None:
    rng = np.random.default_rng(0)
    centre, radius = np.array([12.0, -40.0, 430.0]), 23.5
    pts = centre + (radius + rng.normal(0, 0.1, 3000))[:, None] * _cap(rng, 3000, 70)
    sphere = fit_sphere(pts)
    assert np.linalg.norm(sphere.centre - centre) < 0.05
    assert abs(sphere.radius - radius) < 0.05
    assert 0.08 < sphere.rms < 0.12


def test_circle_exact() -> None:
    t = np.linspace(0.2, 2.0, 50)
    pts = np.column_stack([3 + 7 * np.cos(t), -2 + 7 * np.sin(t)])
    circle = fit_circle(pts)
    assert np.allclose(circle.centre, [3, -2], atol=1e-8)
    assert circle.radius == pytest.approx(7, abs=1e-8)


def test_plane_normal() -> None:
    rng = np.random.default_rng(1)
    normal = np.array([0.1, -0.2, 1.0]) / np.linalg.norm([0.1, -0.2, 1.0])
    u = np.cross(normal, [1, 0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    ab = rng.uniform(-20, 20, (500, 2))
    pts = 5 + ab[:, :1] * u + ab[:, 1:] * v
    plane = fit_plane(pts)
    assert abs(abs(plane.normal @ normal) - 1) < 1e-12


def test_cylinder_axis_and_radius() -> None:
    rng = np.random.default_rng(2)
    axis = np.array([1.0, 0.05, 0.08])
    axis /= np.linalg.norm(axis)
    u = np.cross(axis, [0, 0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    t = rng.uniform(-30, 30, 2000)
    phi = rng.uniform(-np.pi / 2, np.pi / 3, 2000)  # posterior arc only
    point = np.array([1.0, 2.0, 22.0])
    pts = point + t[:, None] * axis + 21.0 * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)
    cyl = fit_cylinder(pts, np.array([1.0, 0.0, 0.0]))
    assert np.degrees(np.arccos(abs(cyl.direction @ axis))) < 0.01
    assert cyl.radius == pytest.approx(21.0, abs=1e-3)
    off = cyl.point - point
    assert np.linalg.norm(off - (off @ axis) * axis) < 1e-3


def test_revolution_axis_with_unequal_radii() -> None:
    """Two spheres of different radii centred on one axis: a cylinder would tilt, the
    normal-line axis must not."""
    rng = np.random.default_rng(3)
    axis = np.array([0.995, 0.0, -0.0998])
    axis /= np.linalg.norm(axis)
    centres = [np.array([0.0, 0.0, 20.0]) + s * axis for s in (-22.0, 22.0)]
    pts, nrm = [], []
    for centre, radius in zip(centres, (20.0, 24.0), strict=True):
        d = _cap(rng, 800, 50)[:, [0, 2, 1]]  # cap around +y (posterior)
        pts.append(centre + radius * d)
        nrm.append(d)
    line = fit_revolution_axis(
        np.vstack(pts), np.vstack(nrm), np.array([1.0, 0.0, 0.0]), np.array([0, 0, 18.0])
    )
    assert np.degrees(np.arccos(abs(line.direction @ axis))) < 1e-3
    off = line.point - centres[0]
    assert np.linalg.norm(off - (off @ axis) * axis) < 1e-3


@pytest.mark.parametrize(
    ("func", "arg"),
    [
        (fit_sphere, np.zeros((3, 3))),
        (fit_sphere, np.full((10, 3), np.nan)),
        (fit_circle, np.zeros((5, 3))),
        (fit_plane, np.column_stack([np.arange(5.0)] * 3)),
    ],
)
def test_bad_input_raises(func, arg) -> None:
    with pytest.raises(FitError):
        func(arg)
