"""Peer check against DiffDRR's renderers on the same volume and rays.

DiffDRR is installed from requirements-peers.txt with --no-deps (its declared deps
would pull torchvision and another torch); only `diffdrr.renderers` is needed.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "diffdrr.renderers",
    reason="DiffDRR not installed: .venv/bin/pip install --no-deps -r requirements-peers.txt",
)

from reconstruction.drr.geometry import make_view_pair  # noqa: E402
from reconstruction.drr.peers import diffdrr_line_integrals  # noqa: E402
from reconstruction.drr.projector import line_integrals  # noqa: E402


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Overlapping balls of different attenuation in an anisotropic, oblique 64^3 grid."""
    n = 64
    grid = np.indices((n, n, n)) - (n - 1) / 2.0
    rng = np.random.default_rng(0)
    mu = np.zeros((n, n, n), np.float32)
    for _ in range(8):
        centre = rng.uniform(-18, 18, 3)
        radius = rng.uniform(4, 12)
        inside = np.sum((grid - centre[:, None, None, None]) ** 2, axis=0) < radius**2
        mu[inside] += rng.uniform(0.01, 0.04)
    angle = np.deg2rad(30.0)
    rotation = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.2, 0.9, 1.5])
    affine[:3, 3] = [-30.0, -20.0, 10.0]
    return mu, affine


@pytest.mark.parametrize("renderer", ["siddon", "trilinear"])
def test_matches_diffdrr(blobs: tuple[np.ndarray, np.ndarray], renderer: str) -> None:
    mu, affine = blobs
    centre = affine[:3, :3] @ ((np.asarray(mu.shape) - 1) / 2.0) + affine[:3, 3]
    views = make_view_pair(
        45.0, first_angle_deg=10.0, isocentre_mm=centre, detector_px=96, pixel_spacing_mm=2.0
    )
    for view in views:
        ours = line_integrals(mu, affine, view)
        peer = diffdrr_line_integrals(mu, affine, view, renderer=renderer)
        assert normalised_cross_correlation(ours, peer) >= 0.99
        assert ours.sum() == pytest.approx(float(peer.sum()), rel=0.01)  # same total attenuation
