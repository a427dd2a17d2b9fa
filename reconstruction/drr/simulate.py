"""One call from a CT to a biplanar X-ray pair: geometry, projection, detector noise.

Used by the CLI (`python -m reconstruction.drr`), the platform's "simulate X-ray pair"
job and dataset builders, so that every DRR in the project is made the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reconstruction.drr.geometry import (
    DEFAULT_DETECTOR_PX,
    DEFAULT_PIXEL_SPACING_MM,
    DEFAULT_SOURCE_DETECTOR_MM,
    DEFAULT_SOURCE_ISOCENTRE_MM,
    check_separation,
    make_view_pair,
)
from reconstruction.drr.noise import DEFAULT_PHOTONS_PER_PIXEL, NoiseModel, apply_noise
from reconstruction.drr.projector import MU_WATER_PER_MM, project_ct
from reconstruction.errors import ImagingError
from reconstruction.io.xray import XrayPair, XrayView
from reconstruction.volume import Volume

DETECTOR_WIDTH_MM = DEFAULT_DETECTOR_PX * DEFAULT_PIXEL_SPACING_MM


@dataclass(frozen=True)
class DRRSettings:
    separation_deg: float = 90.0
    first_angle_deg: float = 0.0
    size_px: int = DEFAULT_DETECTOR_PX
    pixel_spacing_mm: float | None = None  # default keeps the detector width of the reference
    source_isocentre_mm: float = DEFAULT_SOURCE_ISOCENTRE_MM
    source_detector_mm: float = DEFAULT_SOURCE_DETECTOR_MM
    isocentre_mm: tuple[float, float, float] | None = None  # default: the volume centre
    dose_photons: float | None = DEFAULT_PHOTONS_PER_PIXEL  # None: noiseless line integrals
    blur_sigma_px: float = 0.5
    scatter_fraction: float = 0.0
    electronic_sigma: float = 2.0
    clip_hu: tuple[float, float] | None = None
    mu_water_per_mm: float = MU_WATER_PER_MM
    image_kind: str = "line_integral"
    seed: int = 0

    def __post_init__(self) -> None:
        check_separation(float(self.separation_deg))
        if self.dose_photons is not None and not (
            np.isfinite(self.dose_photons) and self.dose_photons > 0
        ):
            raise ImagingError(f"the dose must be a positive photon count, got {self.dose_photons}")
        if not 8 <= self.size_px <= 4096:
            raise ImagingError(f"the detector must be 8 to 4096 pixels wide, got {self.size_px}")
        if self.image_kind not in ("line_integral", "intensity"):
            raise ImagingError(
                f"image_kind must be line_integral or intensity, not {self.image_kind!r}"
            )


def bone_centre(ct: Volume, threshold_hu: float = 200.0) -> tuple[float, float, float]:
    """Where a radiographer centres the beam: the middle of the bones' extent (patient mm).

    The extent is the 0.5th to 99.5th percentile of the voxels at >= `threshold_hu` per axis,
    so noise specks and a stray implant do not move it; falls back to the volume centre if
    the CT holds no bone."""
    array = np.asarray(ct.array)
    index = np.argwhere(array >= threshold_hu)
    if len(index) == 0:
        return tuple(float(x) for x in ct.index_to_patient((np.asarray(ct.shape) - 1) / 2.0))
    patient = ct.index_to_patient(index[:: max(1, len(index) // 200_000)].astype(float))
    low, high = np.percentile(patient, [0.5, 99.5], axis=0)
    return tuple(float(x) for x in (low + high) / 2.0)


def simulate_pair(
    ct: Volume, settings: DRRSettings, progress: Callable[[int], None] | None = None
) -> XrayPair:
    """DRRs of `ct` (HU) for two views; `progress` receives counts of finished rays."""
    centre = ct.index_to_patient((np.asarray(ct.shape) - 1) / 2.0)
    views = make_view_pair(
        settings.separation_deg,
        first_angle_deg=settings.first_angle_deg,
        isocentre_mm=settings.isocentre_mm or tuple(centre),
        source_isocentre_mm=settings.source_isocentre_mm,
        source_detector_mm=settings.source_detector_mm,
        detector_px=settings.size_px,
        pixel_spacing_mm=settings.pixel_spacing_mm or DETECTOR_WIDTH_MM / settings.size_px,
    )
    integrals = project_ct(
        ct,
        views,
        mu_water_per_mm=settings.mu_water_per_mm,
        clip_hu=settings.clip_hu,
        progress=progress,
    )
    images = _detector_images(integrals, settings)
    metadata = {
        "dose_photons_per_pixel": settings.dose_photons,
        "seed": settings.seed,
        "noise": None
        if settings.dose_photons is None
        else {
            "blur_sigma_px": settings.blur_sigma_px,
            "scatter_fraction": settings.scatter_fraction,
            "electronic_sigma": settings.electronic_sigma,
        },
        "mu_water_per_mm": settings.mu_water_per_mm,
        "clip_hu": list(settings.clip_hu) if settings.clip_hu else None,
        "ct_affine": ct.affine.tolist(),
        "ct_shape": list(ct.shape),
    }
    return XrayPair(
        views=(XrayView(images[0], views[0]), XrayView(images[1], views[1])),
        image_kind=settings.image_kind,
        metadata=metadata,
    )


def _detector_images(integrals: list[np.ndarray], settings: DRRSettings) -> list[np.ndarray]:
    if settings.dose_photons is None:
        if settings.image_kind == "intensity":
            return [np.exp(-image).astype(np.float32) for image in integrals]
        return [np.asarray(image, dtype=np.float32) for image in integrals]
    model = NoiseModel(
        photons_per_pixel=settings.dose_photons,
        blur_sigma_px=settings.blur_sigma_px,
        scatter_fraction=settings.scatter_fraction,
        electronic_sigma=settings.electronic_sigma,
    )
    rng = np.random.default_rng(settings.seed)
    noisy = [apply_noise(image, model, rng) for image in integrals]
    return [
        item.intensity if settings.image_kind == "intensity" else item.line_integral
        for item in noisy
    ]
