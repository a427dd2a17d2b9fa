"""Fourier positional encoding of low-dimensional coordinates."""

from __future__ import annotations

import math

import torch
from torch import nn


class FourierEncoding(nn.Module):
    """x (..., D) -> [x, sin(2^k pi x), cos(2^k pi x) for k < n_frequencies] (..., D (1 + 2 n))."""

    def __init__(self, in_dim: int, n_frequencies: int = 6) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.register_buffer(
            "frequencies", (2.0 ** torch.arange(n_frequencies)) * math.pi, persistent=False
        )

    @property
    def out_dim(self) -> int:
        return self.in_dim * (1 + 2 * len(self.frequencies))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = x.unsqueeze(-1) * self.frequencies
        encoded = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)
        return torch.cat([x, encoded], dim=-1)
