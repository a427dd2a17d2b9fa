"""Segmentation errors."""

from reconstruction.errors import ImagingError


class NotAKneeError(ImagingError):
    """The volume is a valid CT but does not show a knee (femur and tibia across a joint)."""
