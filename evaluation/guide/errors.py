"""Errors of guide design: each message names the problem for a person."""

from __future__ import annotations


class GuideError(ValueError):
    """The inputs cannot produce a guide (bad mesh, bad plan, bad parameter)."""
