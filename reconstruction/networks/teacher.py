"""The CT teacher: CT -> class logits and point features at arbitrary 3D points.

A cascade, like nnU-Net's low-resolution stage feeding its full-resolution stage: the
classical segmentation (`reconstruction.segmentation`, no training) is an input, and the
network learns where to trust it and where to correct it (metal plates and their streaks,
noise, sub-voxel boundaries). Inputs:
- coarse 3D U-Net (CT block-averaged to about 4 mm): CT clipped to [-400, 1500] HU, a metal
  channel (HU above 2000), and the classical labels as class fractions per block;
- at each query point, trilinear samples on a 3 x 3 x 3 patch (`patch_mm` apart) of the fine
  CT (as soft-tissue/bone and metal features) and of the classical labels (one-hot).
A PointDecoder maps the multi-scale U-Net features + patches to the point feature (what the
student is distilled towards) and 5 class logits. `prior=False` gives the CT-only network
(no classical input), kept for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reconstruction.networks import NUM_CLASSES
from reconstruction.networks.encoders import UNet
from reconstruction.networks.point_decoder import POINT_FEATURE_DIM, PointDecoder

HU_RANGE = (-400.0, 1500.0)
HU_SCALE = 1000.0
METAL_HU = (2000.0, 6000.0)  # metal channel: 0 below 2000 HU (densest bone), 1 from 6000


@dataclass(frozen=True)
class TeacherConfig:
    widths: tuple[int, ...] = (8, 16, 32)
    n_levels: int = 2
    coarse_mm: float = 4.0  # 3D convolutions are the CPU bottleneck; the fine patch adds detail
    patch_mm: float = 1.0
    hidden: tuple[int, ...] = (128,)
    feature_dim: int = POINT_FEATURE_DIM
    prior: bool = True  # the classical segmentation as input (cascade)
    # Segmentation decision per bone: a voxel is its most likely bone when that bone's logit
    # minus the background logit plus this offset is positive. Set on validation phantoms by
    # training.calibrate_teacher; training and distillation targets do not use it.
    bone_offsets: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    # Where that decision differs from the classical label, the classical label stays unless
    # |margin + offset| reaches this gate (segmentation.teacher.gated_labels); also set by
    # training.calibrate_teacher. Zeros: the network's decision everywhere.
    bone_gates: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TeacherConfig:
        data = {"prior": False, **data}  # checkpoints from before the cascade had no prior
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def coarse_channels(self) -> int:
        return 2 + (NUM_CLASSES if self.prior else 0)

    @property
    def patch_channels(self) -> int:
        return 2 + (NUM_CLASSES if self.prior else 0)


@dataclass
class CTInput:
    """A CT prepared for the teacher: fine HU and coarse input grids with their affines."""

    fine: torch.Tensor  # (1, 1, I, J, K) HU / 1000, unclipped (the metal feature needs it)
    fine_from_patient: torch.Tensor  # (4, 4) patient mm -> fine voxel index
    coarse: torch.Tensor  # (1, C, I', J', K'), padded to a multiple of 2^levels
    coarse_from_patient: torch.Tensor
    prior: torch.Tensor | None = None  # (I+3, J+3, K+3) uint8 classical labels, `pad_labels`


def normalise_hu(hu: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(hu, dtype=np.float32))
    return tensor.clamp(*HU_RANGE) / HU_SCALE


def hu_features(scaled_hu: torch.Tensor) -> list[torch.Tensor]:
    """HU / 1000 -> [soft tissue..bone in [-0.4, 1.5], metal in [0, 1]] (same shape each)."""
    low, high = (v / HU_SCALE for v in METAL_HU)
    return [
        scaled_hu.clamp(HU_RANGE[0] / HU_SCALE, HU_RANGE[1] / HU_SCALE),
        ((scaled_hu - low) / (high - low)).clamp(0.0, 1.0),
    ]


def prepare_ct(
    hu: np.ndarray, affine: np.ndarray, config: TeacherConfig, prior: np.ndarray | None = None
) -> CTInput:
    """Block-average the CT (and the classical labels) to `coarse_mm`, pad for the U-Net."""
    if config.prior and (prior is None or np.shape(prior) != np.shape(hu)):
        raise ValueError("this teacher needs the classical labels of the CT (same shape)")
    fine = torch.as_tensor(np.asarray(hu, dtype=np.float32))[None, None] / HU_SCALE
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    factor = max(1, int(round(config.coarse_mm / float(spacing.mean()))))

    def pool(channel: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(channel, factor, ceil_mode=True) if factor > 1 else channel

    channels = [pool(c) for c in hu_features(fine)]  # one full-size temporary at a time
    prior_tensor = None
    if config.prior:
        labels = torch.from_numpy(np.ascontiguousarray(prior, dtype=np.uint8))
        channels += [pool((labels == c)[None, None].float()) for c in range(NUM_CLASSES)]
        prior_tensor = pad_labels(labels)
    coarse = torch.cat(channels, dim=1)
    multiple = 2 ** (len(config.widths) - 1)
    pads = [(-n) % multiple for n in coarse.shape[2:]]
    background = torch.zeros(coarse.shape[1])
    background[0] = HU_RANGE[0] / HU_SCALE
    if config.prior:
        background[2] = 1.0  # padding is background in the prior too
    coarse = F.pad(coarse, (0, pads[2], 0, pads[1], 0, pads[0]))
    if any(pads):
        valid = torch.zeros(coarse.shape[2:], dtype=torch.bool)
        valid[
            : coarse.shape[2] - pads[0], : coarse.shape[3] - pads[1], : coarse.shape[4] - pads[2]
        ] = True
        coarse = torch.where(valid, coarse, background[None, :, None, None, None])
    coarse_affine = np.asarray(affine, dtype=float).copy()
    coarse_affine[:3, :3] *= factor
    coarse_affine[:3, 3] = np.asarray(affine)[:3, :3] @ np.full(3, (factor - 1) / 2) + affine[:3, 3]
    return CTInput(
        fine=fine,
        fine_from_patient=torch.from_numpy(np.linalg.inv(affine)).float(),
        coarse=coarse,
        coarse_from_patient=torch.from_numpy(np.linalg.inv(coarse_affine)).float(),
        prior=prior_tensor,
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


def pad_labels(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A uint8 label volume with background around it (one voxel below, two above each axis)
    for `sample_one_hot`."""
    tensor = torch.as_tensor(np.ascontiguousarray(labels, dtype=np.uint8))
    return F.pad(tensor, (1, 2, 1, 2, 1, 2))


def sample_one_hot(
    padded: torch.Tensor, points: torch.Tensor, from_patient: torch.Tensor
) -> torch.Tensor:
    """Trilinear interpolation of the one-hot encoding of a label volume at patient points
    (N, 3) -> (N, NUM_CLASSES); `padded` is the volume from `pad_labels`, so everything
    outside counts as background. One gather of the 8 neighbours' labels and one scatter of
    their weights, instead of a float one-hot volume (5 x the CT in memory)."""
    ijk = points @ from_patient[:3, :3].T + from_patient[:3, 3] + 1.0  # index in `padded`
    # Clamped into the padding, a point outside reads background only: still exact.
    limit = torch.tensor(padded.shape, dtype=ijk.dtype) - 2.0
    ijk = torch.minimum(ijk.clamp(min=0.0), limit)
    base = ijk.floor()
    frac = ijk - base
    base = base.long()
    s0, s1 = padded.shape[1] * padded.shape[2], padded.shape[2]
    corners = torch.tensor([0, 1, s1, s1 + 1, s0, s0 + 1, s0 + s1, s0 + s1 + 1])
    linear = (base[:, 0] * s0 + base[:, 1] * s1 + base[:, 2])[:, None] + corners
    classes = padded.reshape(-1)[linear].long()
    wi, wj, wk = (torch.stack([1.0 - frac[:, d], frac[:, d]], dim=1) for d in range(3))
    weights = (wi[:, :, None, None] * wj[:, None, :, None] * wk[:, None, None, :]).reshape(-1, 8)
    out = torch.zeros(len(points), NUM_CLASSES, dtype=points.dtype)
    return out.scatter_add_(1, classes, weights)


class CTTeacher(nn.Module):
    def __init__(self, config: TeacherConfig | None = None) -> None:
        super().__init__()
        self.config = config or TeacherConfig()
        c = self.config
        self.encoder = UNet(3, c.coarse_channels, c.widths, n_outputs=c.n_levels)
        offsets = torch.stack(
            torch.meshgrid(*[torch.tensor([-1.0, 0.0, 1.0])] * 3, indexing="ij"), -1
        ).reshape(-1, 3)
        self.register_buffer("offsets", offsets * c.patch_mm, persistent=False)
        in_dim = sum(self.encoder.output_channels) + len(offsets) * c.patch_channels
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
        n = len(points)
        neighbours = (points[:, None, :] + self.offsets[None]).reshape(-1, 3)
        hu = sample_volume(ct.fine, neighbours, ct.fine_from_patient)[:, 0]
        patches = [f.reshape(n, -1) for f in hu_features(hu)]
        if self.config.prior:
            if ct.prior is None:
                raise ValueError("this teacher needs the classical labels (prepare_ct prior=)")
            one_hot = sample_one_hot(ct.prior, neighbours, ct.fine_from_patient)
            patches.append(one_hot.reshape(n, -1))
        return self.decoder(torch.cat([*features, *patches], dim=-1))

    def forward(self, ct: CTInput, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query(self.encode(ct), ct, points)
