"""Surface metrics between CT reference meshes and X-ray reconstructed meshes (mm).

Entry points: :func:`compare_bones` (long-format rows per bone and metric),
:func:`compare_pair` (one bone, with per-vertex signed distances for error maps), the CLI
``python -m evaluation.surface REFERENCE RESULT``, and :mod:`.errormap` for figures.
Definitions of every metric variant: ``DEFINITIONS``.
"""

from .errors import (
    DegenerateMeshError,
    EmptyMeshError,
    MeshFileError,
    NotWatertightError,
    ParameterError,
    SurfaceMetricError,
    UnitMismatchError,
)
from .metrics import DEFAULTS, DEFINITIONS, PairResult, compare_bones, compare_pair, compare_pairs
from .roi import Slab

__all__ = [
    "DEFAULTS",
    "DEFINITIONS",
    "DegenerateMeshError",
    "EmptyMeshError",
    "MeshFileError",
    "NotWatertightError",
    "PairResult",
    "ParameterError",
    "Slab",
    "SurfaceMetricError",
    "UnitMismatchError",
    "compare_bones",
    "compare_pair",
    "compare_pairs",
]
