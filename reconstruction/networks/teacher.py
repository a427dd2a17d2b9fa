"""The CT teacher: CT -> class logits and point features at arbitrary 3D points.

A compact 3D U-Net runs on the CT block-averaged to 4 mm (HU clipped to [-400, 1500]); at each
query point its multi-scale decoder features are sampled trilinearly and concatenated with a
3 x 3 x 3 patch of the 1 mm CT around the point (sampled trilinearly, 1 mm apart), which
carries the boundary position the coarse features lack. A PointDecoder maps this to
the point feature (what the student is distilled towards) and 5 class logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reconstruction.networks.encoders import UNet
from reconstruction.networks.point_decoder import POINT_FEATURE_DIM, PointDecoder

HU_RANGE = (-400.0, 1500.0)
HU_SCALE = 1000.0


@dataclass(frozen=True)
class TeacherConfig:
    widths: tuple[int, ...] = (8, 16, 32)
    n_levels: int = 2
    coarse_mm: float = 4.0  # 3D convolutions are the CPU bottleneck; the 1 mm patch adds detail
    patch_mm: float = 1.0
    hidden: tuple[int, ...] = (128,)
    feature_dim: int = POINT_FEATURE_DIM

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TeacherConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class CTInput:
    """A CT prepared for the teacher: normalised fine and coarse grids with their affines."""

    fine: torch.Tensor  # (1, 1, I, J, K) normalised HU, 1 mm
    fine_from_patient: torch.Tensor  # (4, 4) patient mm -> fine voxel index
    coarse: torch.Tensor  # (1, 1, I', J', K') normalised, padded to a multiple of 2^levels
    coarse_from_patient: torch.Tensor


def normalise_hu(hu: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(hu, dtype=np.float32))
    return tensor.clamp(*HU_RANGE) / HU_SCALE


def prepare_ct(hu: np.ndarray, affine: np.ndarray, config: TeacherConfig) -> CTInput:
    """Block-average the (about 1 mm) CT to `coarse_mm` and pad for the U-Net's pooling."""
    fine = normalise_hu(hu)[None, None]
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    factor = max(1, int(round(config.coarse_mm / float(spacing.mean()))))
    coarse = F.avg_pool3d(fine, factor, ceil_mode=True) if factor > 1 else fine
    multiple = 2 ** (len(config.widths) - 1)
    pads = [(-n) % multiple for n in coarse.shape[2:]]
    coarse = F.pad(coarse, (0, pads[2], 0, pads[1], 0, pads[0]), value=HU_RANGE[0] / HU_SCALE)
    coarse_affine = np.asarray(affine, dtype=float).copy()
    coarse_affine[:3, :3] *= factor
    coarse_affine[:3, 3] = np.asarray(affine)[:3, :3] @ np.full(3, (factor - 1) / 2) + affine[:3, 3]
    return CTInput(
        fine=fine,
        fine_from_patient=torch.from_numpy(np.linalg.inv(affine)).float(),
        coarse=coarse,
        coarse_from_patient=torch.from_numpy(np.linalg.inv(coarse_affine)).float(),
    )


def _grid(points: torch.Tensor, from_patient: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Patient points (N, 3) -> grid_sample coordinates (1, 1, 1, N, 3), align_corners=False,
    x indexing the last array axis (so the index order is reversed)."""
    ijk = points @ from_patient[:3, :3].T + from_patient[:3, 3]
    sizes = torch.tensor(shape, dtype=points.dtype)
    normalised = (ijk + 0.5) / sizes * 2.0 - 1.0
    return normalised.flip(-1)[None, None, None]


def sample_volume(
    volume: torch.Tensor, points: torch.Tensor, from_patient: torch.Tensor
) -> torch.Tensor:
    """Trilinear samples of (1, C, I, J, K) at patient points (N, 3) -> (N, C); zero outside."""
    grid = _grid(points, from_patient, tuple(volume.shape[2:]))
    sampled = F.grid_sample(
        volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return sampled[0, :, 0, 0, :].T


class CTTeacher(nn.Module):
    def __init__(self, config: TeacherConfig | None = None) -> None:
        super().__init__()
        self.config = config or TeacherConfig()
        c = self.config
        self.encoder = UNet(3, 1, c.widths, n_outputs=c.n_levels)
        offsets = torch.stack(
            torch.meshgrid(*[torch.tensor([-1.0, 0.0, 1.0])] * 3, indexing="ij"), -1
        ).reshape(-1, 3)
        self.register_buffer("offsets", offsets * c.patch_mm, persistent=False)
        in_dim = sum(self.encoder.output_channels) + len(offsets)
        self.decoder = PointDecoder(in_dim, c.hidden, c.feature_dim)

    def encode(self, ct: CTInput) -> list[torch.Tensor]:
        return self.encoder(ct.coarse)

    def query(
        self, maps: list[torch.Tensor], ct: CTInput, points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points (N, 3) patient mm -> (point features (N, F), logits (N, 5)).

        All decoder levels cover the same padded coarse grid, so one normalised coordinate
        addresses every level (align_corners=False)."""
        shape = tuple(ct.coarse.shape[2:])
        grid = _grid(points, ct.coarse_from_patient, shape)
        features = [
            F.grid_sample(m, grid, mode="bilinear", padding_mode="border", align_corners=False)[
                0, :, 0, 0, :
            ].T
            for m in maps
        ]
        neighbours = (points[:, None, :] + self.offsets[None]).reshape(-1, 3)
        patch = sample_volume(ct.fine, neighbours, ct.fine_from_patient).reshape(len(points), -1)
        return self.decoder(torch.cat([*features, patch], dim=-1))

    def forward(self, ct: CTInput, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query(self.encode(ct), ct, points)
