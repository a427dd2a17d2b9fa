"""MLP from per-point features to (point feature, class logits) shared by teacher and student.

The penultimate activation is the *point feature*: the student is distilled towards the
teacher's point feature with an L1 loss, so both decoders use the same feature width."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reconstruction.networks import NUM_CLASSES

POINT_FEATURE_DIM = 64


class PointDecoder(nn.Module):
    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (256,),
        feature_dim: int = POINT_FEATURE_DIM,
        n_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for size in (*hidden, feature_dim):
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.body(x)
        return feature, self.classifier(feature)
