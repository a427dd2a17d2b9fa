"""Reference renderers for tests and benchmarks: DiffDRR's Siddon and Trilinear kernels.

Only `diffdrr.renderers` is used (it imports torch alone), installed with
`pip install --no-deps -r requirements-peers.txt`; DiffDRR's full dependency set would
pull torchvision/timm/torchio/pyvista and another torch. The rays come from our
`ViewGeometry` (world source and pixel centres -> voxel index space), exactly as
`diffdrr.drr.DRR.render` feeds its renderer, so only the line-integral kernels differ.
"""

from __future__ import annotations

import numpy as np
import torch

from reconstruction.drr.geometry import ViewGeometry

PEER_RENDERERS = ("siddon", "trilinear")


def diffdrr_line_integrals(
    mu: np.ndarray,
    affine: np.ndarray,
    view: ViewGeometry,
    *,
    renderer: str = "siddon",
    rays_per_chunk: int = 16384,
    trilinear_points: int = 500,
) -> np.ndarray:
    """Line integrals (H, W) by DiffDRR's renderer for the same volume and geometry."""
    from diffdrr.renderers import Siddon, Trilinear  # peer dependency, imported on demand

    if renderer not in PEER_RENDERERS:
        raise ValueError(f"renderer must be one of {PEER_RENDERERS}, got {renderer!r}")
    kernel = Siddon(voxel_shift=0.5) if renderer == "siddon" else Trilinear(voxel_shift=0.5)
    inverse = np.linalg.inv(np.asarray(affine, dtype=float))
    source_world = view.source_position
    targets_world = view.pixel_positions().reshape(-1, 3)
    source = torch.as_tensor(inverse[:3, :3] @ source_world + inverse[:3, 3], dtype=torch.float32)
    targets = torch.as_tensor(
        targets_world @ inverse[:3, :3].T + inverse[:3, 3], dtype=torch.float32
    )
    lengths = torch.as_tensor(
        np.linalg.norm(targets_world - source_world, axis=1), dtype=torch.float32
    )
    density = torch.as_tensor(np.ascontiguousarray(mu, dtype=np.float32))
    extra = {"n_points": trilinear_points} if renderer == "trilinear" else {}
    parts = []
    with torch.no_grad():
        for start in range(0, len(targets), rays_per_chunk):
            chunk = slice(start, start + rays_per_chunk)
            image = kernel(
                density,
                source[None, None, :],
                targets[None, chunk, :],
                lengths[None, None, chunk],
                **extra,
            )
            parts.append(image.reshape(-1))
    width, height = view.detector_size_px
    return torch.cat(parts).numpy().reshape(height, width)
