"""Knee alignment analytics and HTO planning from 3D bone meshes (patient mm).

Public API: :func:`analyse_knee` (everything at once), :func:`detect_landmarks`,
:func:`compute_angles`, :func:`classify` (CPAK), :func:`plan_hto` / :class:`HTOPlan`,
and the overlays in :mod:`evaluation.alignment.overlay`. CLI: ``python -m
evaluation.alignment --femur F --tibia T --json``.
"""

from .angles import compute_angles
from .cpak import CPAKResult, classify
from .errors import AlignmentError, FitError, LandmarkError
from .hto import HTOGeometry, HTOOptions, HTOPlan, plan_hto
from .landmarks import KneeLandmarks, detect_landmarks
from .pipeline import KneeAnalysis, analyse_knee

__all__ = [
    "AlignmentError",
    "CPAKResult",
    "FitError",
    "HTOGeometry",
    "HTOOptions",
    "HTOPlan",
    "KneeAnalysis",
    "KneeLandmarks",
    "LandmarkError",
    "analyse_knee",
    "classify",
    "compute_angles",
    "detect_landmarks",
    "plan_hto",
]
