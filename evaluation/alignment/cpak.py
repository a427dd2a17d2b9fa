"""CPAK classification (MacDessi 2021) with the distance to the nearest boundary.

aHKA: varus < -2, neutral -2..+2, valgus > +2 (negative = varus).
JLO: apex distal < 177, neutral 177..183, apex proximal > 183.
Boundary values themselves count as neutral.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import AlignmentError

AHKA_BOUNDARIES = (-2.0, 2.0)
JLO_BOUNDARIES = (177.0, 183.0)
TYPES = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")


@dataclass(frozen=True)
class CPAKResult:
    type: str
    ahka_class: str  # varus | neutral | valgus
    jlo_class: str  # apex distal | neutral | apex proximal
    boundary_distance_deg: float  # distance to the nearest boundary line (aHKA or JLO)
    nearest_boundary: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def classify(ahka: float, jlo: float) -> CPAKResult:
    if not (math.isfinite(ahka) and math.isfinite(jlo)):
        raise AlignmentError(f"CPAK needs finite aHKA and JLO, got {ahka}, {jlo}")
    low, high = AHKA_BOUNDARIES
    col = 0 if ahka < low else (2 if ahka > high else 1)
    low_j, high_j = JLO_BOUNDARIES
    row = 0 if jlo < low_j else (2 if jlo > high_j else 1)
    distances = {
        f"aHKA = {low:g}": abs(ahka - low),
        f"aHKA = {high:+g}": abs(ahka - high),
        f"JLO = {low_j:g}": abs(jlo - low_j),
        f"JLO = {high_j:g}": abs(jlo - high_j),
    }
    nearest = min(distances, key=distances.__getitem__)
    return CPAKResult(
        type=TYPES[3 * row + col],
        ahka_class=("varus", "neutral", "valgus")[col],
        jlo_class=("apex distal", "neutral", "apex proximal")[row],
        boundary_distance_deg=float(distances[nearest]),
        nearest_boundary=nearest,
    )
