"""Seeded knee phantoms with exact ground truth (labels, meshes, landmarks, alignment angles).

    from reconstruction.phantoms import generate_case
    case = generate_case(seed, fov="knee", spacing=(0.7, 0.7, 1.0))

CLI: python -m reconstruction.phantoms build --n 600 --labelled 120 --out DIR --seed S
"""

from reconstruction.phantoms.anatomy import BONE_LABELS, build_anatomy
from reconstruction.phantoms.findings import Findings
from reconstruction.phantoms.generator import PhantomCase, generate_case
from reconstruction.phantoms.params import (
    KneeParams,
    PhantomParameterError,
    cpak_type,
    sample_params,
)

__all__ = [
    "BONE_LABELS",
    "Findings",
    "KneeParams",
    "PhantomCase",
    "PhantomParameterError",
    "build_anatomy",
    "cpak_type",
    "generate_case",
    "sample_params",
]
