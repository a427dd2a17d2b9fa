"""Cone-beam digitally reconstructed radiographs (line integrals of attenuation).

Method: Joseph's projector, vectorised with torch. Each ray is expressed in voxel-index
space (so any affine works: anisotropic, oblique, flipped) and assigned the index axis
along which it advances fastest. The ray is then sampled exactly once per slice of that
axis, with bilinear interpolation inside the slice (one batched `grid_sample` call per
chunk of rays, the batch being the slices). The sum is weighted by the ray length
between two consecutive slices. This uses 4-tap bilinear samples at one-voxel steps
instead of 8-tap trilinear samples at half-voxel steps, and is the classical accurate
discretisation of the X-ray transform for voxel images.

Physics: mu = mu_water * (1 + HU / 1000), clipped at >= 0 (air and padding attenuate
nothing); the output is the line integral  integral(mu dl)  (dimensionless), so the
ideal transmitted fraction is exp(-line integral) (Beer-Lambert). Noise lives in noise.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from reconstruction.drr.geometry import ViewGeometry
from reconstruction.errors import GeometryError
from reconstruction.volume import Volume

# Linear attenuation of water at an effective energy of ~60 keV (100-120 kVp beam), per mm.
MU_WATER_PER_MM = 0.02
# Upper bound on grid elements (slices x rays) per grid_sample call: bounds memory (~100 MB).
MAX_SAMPLES_PER_CHUNK = 6_000_000
TORCH_THREADS = 2

ProgressCallback = Callable[[int], None]


def hu_to_mu(
    hu: np.ndarray,
    *,
    mu_water_per_mm: float = MU_WATER_PER_MM,
    clip_hu: tuple[float, float] | None = None,
) -> np.ndarray:
    """HU -> linear attenuation per mm, clipped at >= 0; optional HU window first."""
    values = np.asarray(hu, dtype=np.float32)
    if clip_hu is not None:
        values = np.clip(values, clip_hu[0], clip_hu[1])
    return np.maximum(mu_water_per_mm * (1.0 + values / 1000.0), 0.0).astype(np.float32)


def project_ct(
    ct: Volume,
    views: Sequence[ViewGeometry],
    *,
    mu_water_per_mm: float = MU_WATER_PER_MM,
    clip_hu: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
) -> list[np.ndarray]:
    """Line-integral images (H, W) float32 of a CT in HU, one per view."""
    mu = hu_to_mu(ct.array, mu_water_per_mm=mu_water_per_mm, clip_hu=clip_hu)
    return [line_integrals(mu, ct.affine, view, progress=progress) for view in views]


def line_integrals(
    mu: np.ndarray,
    affine: np.ndarray,
    view: ViewGeometry,
    *,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Integral of `mu` (per mm, indexed [i, j, k], voxel -> mm by `affine`) along every ray."""
    torch.set_num_threads(TORCH_THREADS)
    mu_tensor = torch.as_tensor(np.ascontiguousarray(mu, dtype=np.float32))
    if mu_tensor.ndim != 3 or min(mu_tensor.shape) < 2:
        raise GeometryError(f"need a 3D attenuation volume, got shape {tuple(mu_tensor.shape)}")
    source, directions, mm_per_t = _rays_in_index_space(np.asarray(affine, float), view)
    width, height = view.detector_size_px
    result = np.zeros(height * width, dtype=np.float64)
    dominant = np.argmax(np.abs(directions), axis=1)
    for axis in range(3):
        rays = np.flatnonzero(dominant == axis)
        if rays.size:
            result[rays] = _march_axis(
                mu_tensor, axis, source, directions[rays], mm_per_t[rays], progress
            )
    return result.reshape(height, width).astype(np.float32)


def _rays_in_index_space(
    affine: np.ndarray, view: ViewGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source (3,) and source->pixel vectors (R, 3) in voxel-index units; mm per unit t."""
    inverse = np.linalg.inv(affine)
    source = inverse[:3, :3] @ view.source_position + inverse[:3, 3]
    pixels = view.pixel_positions().reshape(-1, 3) @ inverse[:3, :3].T + inverse[:3, 3]
    directions = pixels - source
    mm_per_t = np.linalg.norm(directions @ affine[:3, :3].T, axis=1)
    return source, directions, mm_per_t


def _march_axis(
    mu: torch.Tensor,
    axis: int,
    source: np.ndarray,
    directions: np.ndarray,
    mm_per_t: np.ndarray,
    progress: ProgressCallback | None,
) -> np.ndarray:
    """Joseph sums for rays whose dominant index axis is `axis`."""
    others = [a for a in range(3) if a != axis]
    slices = mu.permute(axis, *others).contiguous().unsqueeze(1)  # (Na, 1, Nb, Nc)
    n_slices, _, n_b, n_c = slices.shape
    entry, exit_ = _slab_interval(source, directions, mu.shape)
    hits = exit_ > entry
    sums = np.zeros(len(directions), dtype=np.float64)
    # Ray length in mm between consecutive slice planes: dt per slice = 1 / |d_axis|.
    step_mm = mm_per_t / np.abs(directions[:, axis])
    chunk = max(1, MAX_SAMPLES_PER_CHUNK // n_slices)
    hit_rays = np.flatnonzero(hits)
    # Only when the source or a detector pixel lies inside the volume can a slice fall
    # outside the source-detector segment; otherwise skip the (costly) mask.
    needs_mask = bool(np.any(entry[hits] <= 0) or np.any(exit_[hits] >= 1))
    for start in range(0, hit_rays.size, chunk):
        rays = hit_rays[start : start + chunk]
        d = directions[rays]
        a_entry = source[axis] + entry[rays] * d[:, axis]
        a_exit = source[axis] + exit_[rays] * d[:, axis]
        low = max(0, int(np.floor(min(a_entry.min(), a_exit.min()))))
        high = min(n_slices - 1, int(np.ceil(max(a_entry.max(), a_exit.max()))))
        if high < low:
            continue
        grid = _slice_grid(source, d, axis, others, (n_b, n_c), low, high)
        if needs_mask:
            # Samples behind the source or beyond the detector must not count.
            plane = torch.arange(low, high + 1, dtype=torch.float64)[:, None]
            t = (plane - source[axis]) / torch.as_tensor(d[:, axis])[None, :]
            grid = grid.masked_fill(((t < 0) | (t > 1))[:, None, :, None], 4.0)
        sampled = F.grid_sample(
            slices[low : high + 1],
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )  # (S, 1, 1, R)
        sums[rays] = sampled.sum(dim=0).reshape(-1).double().numpy()
        if progress is not None:
            progress(len(rays))
    return sums * step_mm


def _slice_grid(
    source: np.ndarray,
    directions: np.ndarray,
    axis: int,
    others: list[int],
    sizes: tuple[int, int],
    low: int,
    high: int,
) -> torch.Tensor:
    """grid_sample coordinates (S, 1, R, 2) where each ray crosses slice planes low..high.

    On plane a = p a ray is at  other = s_o + (p - s_a) * d_o / d_a, affine in p; build it
    with one fused multiply-add in normalised [-1, 1] units (align_corners=True).
    """
    n_b, n_c = sizes
    scale = np.array([2.0 / (n_c - 1), 2.0 / (n_b - 1)])
    slope = directions[:, [others[1], others[0]]] / directions[:, axis : axis + 1]  # (R, 2)
    offset = source[[others[1], others[0]]][None, :] - source[axis] * slope
    slope_n = torch.as_tensor(slope * scale, dtype=torch.float32)
    offset_n = torch.as_tensor(offset * scale - 1.0, dtype=torch.float32)
    plane = torch.arange(low, high + 1, dtype=torch.float32)[:, None, None]
    return torch.addcmul(offset_n[None], plane, slope_n[None]).unsqueeze(1)


def _slab_interval(
    source: np.ndarray, directions: np.ndarray, shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters t where each ray enters/leaves the sampled box [-1, N] (zero padding
    makes interpolation reach one voxel beyond the centres), clipped to [0, 1]."""
    upper = np.asarray(shape, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_low = (-1.0 - source) / directions
        t_high = (upper - source) / directions
    t_near = np.where(directions == 0, -np.inf, np.minimum(t_low, t_high))
    t_far = np.where(directions == 0, np.inf, np.maximum(t_low, t_high))
    inside = (source >= -1.0) & (source <= upper)
    parallel_miss = (directions == 0) & ~inside
    entry = np.clip(np.max(t_near, axis=1), 0.0, 1.0)
    exit_ = np.clip(np.min(t_far, axis=1), 0.0, 1.0)
    exit_[np.any(parallel_miss, axis=1)] = -1.0
    return entry, exit_
