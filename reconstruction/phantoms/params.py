"""Phantom parameters: adult ranges (see shared/domain/alignment.md) and seeded sampling.

Lengths in mm, angles in degrees. Coronal angle conventions: LDFA is the lateral angle
between femoral mechanical axis and distal femoral joint line, MPTA the medial angle between
tibial mechanical axis and plateau line; aHKA = MPTA - LDFA, JLO = MPTA + LDFA, and the limb
is built so that mHKA = aHKA - JLCA exactly (negative = varus). JLCA > 0 opens laterally.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from reconstruction.errors import ImagingError


class PhantomParameterError(ImagingError):
    """A phantom parameter is missing or outside its supported adult range."""


# name -> (low, high): the generator refuses anything outside these (wider than the sampler).
RANGES: dict[str, tuple[float, float]] = {
    "femur_length": (340.0, 530.0),
    "tibia_length": (270.0, 440.0),
    "head_diameter": (36.0, 58.0),
    "bicondylar_width": (62.0, 96.0),
    "plateau_width": (58.0, 92.0),
    "plateau_depth": (38.0, 60.0),
    "patella_height": (26.0, 44.0),
    "patella_width": (34.0, 56.0),
    "patella_thickness": (16.0, 28.0),
    "neck_shaft_angle": (115.0, 140.0),
    "femoral_anteversion": (0.0, 30.0),
    "posterior_slope": (0.0, 16.0),
    "ldfa": (78.0, 98.0),
    "mpta": (78.0, 98.0),
    "jlca": (-4.0, 6.0),
    "flexion": (0.0, 20.0),
    "axial_rotation": (-15.0, 15.0),
    "patella_tilt": (0.0, 20.0),
    "fat_thickness": (3.0, 30.0),
}

CPAK_AHKA_BOUNDARIES = (-2.0, 2.0)
CPAK_JLO_BOUNDARIES = (177.0, 183.0)

# sex-specific mean and SD of the size-driven dimensions (alignment.md "Adult dimensions")
_SIZE_STATS: dict[str, dict[str, tuple[float, float]]] = {
    "M": {
        "femur_length": (436.0, 42.0 * 0.6),
        "head_diameter": (47.6, 2.6),
        "bicondylar_width": (82.0, 3.5),
        "plateau_width": (79.5, 2.5),
        "plateau_depth": (50.5, 2.5),
        "patella_scale": (1.04, 0.05),
        "fat_thickness": (8.0, 3.0),
    },
    "F": {
        "femur_length": (403.0, 20.0),
        "head_diameter": (42.0, 2.2),
        "bicondylar_width": (74.0, 3.0),
        "plateau_width": (69.0, 2.0),
        "plateau_depth": (45.5, 2.0),
        "patella_scale": (0.94, 0.05),
        "fat_thickness": (13.0, 4.0),
    },
}


@dataclass(frozen=True)
class KneeParams:
    """Everything that defines one phantom (besides the CT noise, which uses `seed`)."""

    seed: int
    sex: str  # "M" | "F"
    side: str  # "R" | "L"
    femur_length: float  # hip centre -> femoral knee centre
    tibia_length: float  # tibial knee centre -> ankle centre (plafond centre)
    head_diameter: float
    bicondylar_width: float  # medial-lateral epicondyle distance
    plateau_width: float
    plateau_depth: float
    patella_height: float
    patella_width: float
    patella_thickness: float
    neck_shaft_angle: float
    femoral_anteversion: float
    posterior_slope: float
    ldfa: float
    mpta: float
    jlca: float
    flexion: float
    axial_rotation: float  # external rotation of the whole limb about the vertical axis
    patella_tilt: float
    fat_thickness: float

    def validate(self) -> None:
        if self.sex not in ("M", "F"):
            raise PhantomParameterError(f"sex must be 'M' or 'F', got {self.sex!r}")
        if self.side not in ("R", "L"):
            raise PhantomParameterError(f"side must be 'R' or 'L', got {self.side!r}")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if not np.isfinite(value) or not low <= value <= high:
                raise PhantomParameterError(
                    f"{name} = {value} is outside the supported adult range [{low}, {high}]"
                )
        if not 0.7 <= self.tibia_length / self.femur_length <= 0.95:
            raise PhantomParameterError(
                f"tibia/femur length ratio {self.tibia_length / self.femur_length:.2f} "
                "is outside [0.7, 0.95]"
            )
        if self.plateau_width > self.bicondylar_width + 8:
            raise PhantomParameterError("plateau_width must not exceed bicondylar_width + 8 mm")

    @property
    def ahka(self) -> float:
        return self.mpta - self.ldfa

    @property
    def jlo(self) -> float:
        return self.mpta + self.ldfa

    @property
    def mhka(self) -> float:
        return self.ahka - self.jlca

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KneeParams:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data)
        if missing:
            raise PhantomParameterError(f"missing phantom parameters: {sorted(missing)}")
        return cls(**{name: data[name] for name in names})

    def replace(self, **changes: Any) -> KneeParams:
        return dataclasses.replace(self, **changes)


def cpak_type(ahka: float, jlo: float) -> str:
    """CPAK type I..IX (MacDessi 2021); boundary values count as neutral."""
    col = 0 if ahka < -2.0 else (2 if ahka > 2.0 else 1)
    row = 0 if jlo < 177.0 else (2 if jlo > 183.0 else 1)
    return ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"][3 * row + col]


def _clipped_normal(rng: np.random.Generator, mean: float, sd: float, name: str) -> float:
    low, high = RANGES[name]
    return float(
        np.clip(rng.normal(mean, sd), max(low, mean - 2.5 * sd), min(high, mean + 2.5 * sd))
    )


def _coronal_angles(rng: np.random.Generator, boundary_fraction: float) -> tuple[float, float]:
    """LDFA, MPTA from N(87.5, 2.5), N(86.5, 2.5); a fraction is pulled to a CPAK boundary."""
    ldfa = _clipped_normal(rng, 87.5, 2.5, "ldfa")
    mpta = _clipped_normal(rng, 86.5, 2.5, "mpta")
    if rng.random() < boundary_fraction:
        ahka, jlo = mpta - ldfa, mpta + ldfa
        near = float(rng.uniform(-0.75, 0.75))
        if rng.random() < 0.5:
            ahka = float(rng.choice(CPAK_AHKA_BOUNDARIES)) + near
        else:
            jlo = float(rng.choice(CPAK_JLO_BOUNDARIES)) + near
        mpta, ldfa = (jlo + ahka) / 2.0, (jlo - ahka) / 2.0
    return round(ldfa, 3), round(mpta, 3)


def sample_params(seed: int, boundary_fraction: float = 0.35) -> KneeParams:
    """Draw one adult knee from the published ranges; dimensions share a size factor."""
    rng = np.random.default_rng(seed)
    sex = "M" if rng.random() < 0.5 else "F"
    side = "R" if rng.random() < 0.5 else "L"
    stats = _SIZE_STATS[sex]
    size = rng.normal()  # shared size z-score: big people have big everything

    def dim(name: str, rho: float = 0.7) -> float:
        mean, sd = stats[name]
        z = rho * size + np.sqrt(1 - rho * rho) * rng.normal()
        return float(mean + sd * np.clip(z, -2.5, 2.5))

    femur_length = dim("femur_length", 0.8)
    patella_scale = dim("patella_scale")
    bicondylar = dim("bicondylar_width")
    plateau_width = min(dim("plateau_width"), bicondylar + 4.0)
    ldfa, mpta = _coronal_angles(rng, boundary_fraction)
    params = KneeParams(
        seed=int(seed),
        sex=sex,
        side=side,
        femur_length=round(femur_length, 3),
        tibia_length=round(femur_length * float(rng.normal(0.80, 0.015)), 3),
        head_diameter=round(dim("head_diameter"), 3),
        bicondylar_width=round(bicondylar, 3),
        plateau_width=round(plateau_width, 3),
        plateau_depth=round(dim("plateau_depth"), 3),
        patella_height=round(34.0 * patella_scale, 3),
        patella_width=round(45.0 * patella_scale, 3),
        patella_thickness=round(22.0 * patella_scale, 3),
        neck_shaft_angle=round(float(rng.uniform(122.0, 130.0)), 3),
        femoral_anteversion=round(float(rng.uniform(10.0, 15.0)), 3),
        posterior_slope=round(_clipped_normal(rng, 8.5, 1.5, "posterior_slope"), 3),
        ldfa=ldfa,
        mpta=mpta,
        jlca=round(_clipped_normal(rng, 0.5, 1.0, "jlca"), 3),
        flexion=round(float(rng.uniform(0.0, 20.0)), 3),
        axial_rotation=round(float(rng.uniform(-10.0, 10.0)), 3),
        patella_tilt=round(float(rng.uniform(4.0, 12.0)), 3),
        fat_thickness=round(float(np.clip(dim("fat_thickness", 0.3), 4.0, 28.0)), 3),
    )
    params.validate()
    return params
