"""Cone-beam geometry in torch: project query points, normalise views, sample features.

Conventions follow reconstruction/drr/geometry.py: P (3x4) maps patient mm to pixel
(u = column, v = row) with pixel centres at integers, [u w, v w, w] = P [x, y, z, 1], and
w is the depth along the beam in mm from the source. Images are arrays [row, column].

A view is normalised before the encoder: resampled to `size` x `size` pixels of a fixed
size at the isocentre (`iso_pixel_mm`), centred on the principal point. The resampling is
an affine map of pixel coordinates, new = A old, so the matching matrix is P' = A P; a crop
is a change of the principal point (a translation in A), a resize a scaling of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reconstruction.drr.geometry import ViewGeometry

DEFAULT_VIEW_SIZE = 128
DEFAULT_ISO_PIXEL_MM = 1.15  # the reference detector (512 x 0.575 mm, magnification 2) at 128 px
REFERENCE_FIELD_MM = 512 * 0.575 / 2.0  # that detector's width at the isocentre


@dataclass(frozen=True)
class NormalisedView:
    image: np.ndarray  # (size, size) float32
    projection: np.ndarray  # (3, 4) float64, patient mm -> normalised pixel
    reference_depth_mm: float  # depth of the isocentre along this view's beam


def project(projection: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (B, N, 3) mm through matrices (B, V, 3, 4) -> pixels (B, V, N, 2), depths (B, V, N)."""
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    image = torch.einsum("bvij,bnj->bvni", projection, homogeneous)
    depth = image[..., 2]
    return image[..., :2] / depth.unsqueeze(-1), depth


def pixels_to_grid(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel coordinates (centres at integers) -> grid_sample coordinates, align_corners=False.

    With align_corners=False, -1 and +1 are the outer edges of the image, so the same
    normalised coordinate addresses the same image location in a feature map of any
    resolution that covers the image (strided encoder levels)."""
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=pixels.dtype, device=pixels.device)
    return (pixels + 0.5) * scale - 1.0


def sample_pixel_features(features: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear features (B*V, C, h, w) at grid points (B*V, N, 2) -> (B*V, N, C); zero outside."""
    sampled = F.grid_sample(
        features, grid.unsqueeze(1), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return sampled[:, :, 0, :].transpose(1, 2)


def normalising_transform(
    geometry: ViewGeometry,
    size: int = DEFAULT_VIEW_SIZE,
    iso_pixel_mm: float = DEFAULT_ISO_PIXEL_MM,
) -> np.ndarray:
    """3x3 A mapping original detector pixels to normalised pixels (new = A @ old)."""
    magnification = geometry.source_detector_mm / geometry.source_isocentre_mm
    du, dv = geometry.pixel_spacing_mm
    scale_u = du / magnification / iso_pixel_mm  # normalised pixels per original pixel
    scale_v = dv / magnification / iso_pixel_mm
    cu, cv = geometry.principal_point
    centre = (size - 1) / 2.0
    return np.array(
        [[scale_u, 0.0, centre - scale_u * cu], [0.0, scale_v, centre - scale_v * cv], [0, 0, 1]]
    )


def normalise_view(
    image: np.ndarray,
    geometry: ViewGeometry,
    size: int = DEFAULT_VIEW_SIZE,
    iso_pixel_mm: float = DEFAULT_ISO_PIXEL_MM,
) -> NormalisedView:
    """Resample one view to the canonical pixel grid and return the matching P' = A P."""
    transform = normalising_transform(geometry, size, iso_pixel_mm)
    resampled = _resample(np.asarray(image, dtype=np.float32), transform, size)
    projection = transform @ geometry.projection_matrix()
    iso = np.append(np.asarray(geometry.isocentre_mm, dtype=float), 1.0)
    return NormalisedView(resampled, projection, float(projection[2] @ iso))


def _resample(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Image value at every normalised pixel; box-filters first when shrinking (anti-alias)."""
    scale = float(min(transform[0, 0], transform[1, 1]))
    if np.allclose(transform, np.eye(3)) and image.shape == (size, size):
        return image.copy()
    tensor = torch.from_numpy(image)[None, None]
    factor = max(int(np.floor(1.0 / scale + 1e-6)), 1)
    if factor > 1:
        tensor = F.avg_pool2d(tensor, factor, ceil_mode=True, count_include_pad=False)
    # original pixel coordinates of every normalised pixel centre, then into the pooled image
    inverse = np.linalg.inv(transform)
    centres = np.arange(size, dtype=float)
    uu, vv = np.meshgrid(centres, centres, indexing="xy")
    old_u = inverse[0, 0] * uu + inverse[0, 2]
    old_v = inverse[1, 1] * vv + inverse[1, 2]
    pooled_u, pooled_v = (old_u + 0.5) / factor - 0.5, (old_v + 0.5) / factor - 0.5
    pixels = torch.from_numpy(np.stack([pooled_u, pooled_v], axis=-1)).float()
    grid = pixels_to_grid(pixels, tensor.shape[-1], tensor.shape[-2])[None]
    out = F.grid_sample(tensor, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, 0].numpy().astype(np.float32)
