"""Light U-Net encoders (2D for X-ray views, 3D for CT) returning multi-scale feature maps.

GroupNorm instead of BatchNorm: training batches are tiny on a CPU and inference sees one
pair, so statistics must not depend on the batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _block(dims: int, cin: int, cout: int) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    groups = max(1, min(8, cout // 4))
    return nn.Sequential(
        conv(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
        conv(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net over `len(widths)` levels; forward returns the decoder maps of the finest
    `n_outputs` levels, finest first (each upsampled map fused with its skip)."""

    def __init__(
        self, dims: int, in_channels: int, widths: Sequence[int], n_outputs: int = 4
    ) -> None:
        super().__init__()
        if dims not in (2, 3) or len(widths) < 2 or not 1 <= n_outputs < len(widths):
            raise ValueError("UNet needs dims 2 or 3, >= 2 levels and 1 <= n_outputs < levels")
        self.dims = dims
        self.widths = tuple(widths)
        self.n_outputs = n_outputs
        self.down = nn.ModuleList(
            [
                _block(dims, c_in, c_out)
                for c_in, c_out in zip((in_channels, *widths), widths, strict=False)
            ]
        )
        # up[i] fuses the map coming from level i + 1 with the skip of level i
        self.up = nn.ModuleList(
            [
                _block(dims, widths[i + 1] + widths[i], widths[i])
                if i + 1 == len(widths) - 1
                else _block(dims, widths[i] + widths[i], widths[i])
                for i in range(len(widths) - 1)
            ]
        )
        self.reduce = nn.ModuleList(
            [
                nn.Identity()
                if i + 1 == len(widths) - 1
                else (nn.Conv2d if dims == 2 else nn.Conv3d)(widths[i + 1], widths[i], 1)
                for i in range(len(widths) - 1)
            ]
        )

    @property
    def output_channels(self) -> tuple[int, ...]:
        return self.widths[: self.n_outputs]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        pool = F.max_pool2d if self.dims == 2 else F.max_pool3d
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else pool(x, 2, ceil_mode=True))
            skips.append(x)
        mode = "bilinear" if self.dims == 2 else "trilinear"
        outputs = []
        for level in range(len(self.widths) - 2, -1, -1):
            skip = skips[level]
            upsampled = F.interpolate(x, size=skip.shape[2:], mode=mode, align_corners=False)
            x = self.up[level](torch.cat([self.reduce[level](upsampled), skip], dim=1))
            outputs.append(x)
        return outputs[::-1][: self.n_outputs]
