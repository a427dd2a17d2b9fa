"""CT bone segmentation of the knee (classical baseline)."""

from reconstruction.segmentation.classical import ClassicalParams
from reconstruction.segmentation.errors import NotAKneeError
from reconstruction.segmentation.interface import (
    BONE_LABELS,
    METHODS,
    BoneInfo,
    Segmentation,
    segment,
)

__all__ = [
    "BONE_LABELS",
    "METHODS",
    "BoneInfo",
    "ClassicalParams",
    "NotAKneeError",
    "Segmentation",
    "segment",
]
