"""Errors of the alignment analytics: each message names the problem for a person."""

from __future__ import annotations


class AlignmentError(ValueError):
    """The input cannot be used for alignment analysis (bad mesh, missing bone, bad value)."""


class FitError(AlignmentError):
    """A geometric fit has too few points or a degenerate configuration."""


class LandmarkError(AlignmentError):
    """A landmark cannot be found on the given bone meshes."""
