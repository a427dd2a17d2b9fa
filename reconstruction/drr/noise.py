"""Low-dose detector model applied to ideal line integrals.

Order of operations (per pixel, in photon units):
1. primary   = I0 * exp(-line_integral)                  (Beer-Lambert, I0 = dose)
2. expected  = primary + scatter_fraction * smooth(primary) (scatter-like background:
               a very low-frequency copy of the primary, i.e. forward scatter, uncorrected)
3. counts    ~ Poisson(expected)                          (quantum noise)
4. blurred   = Gaussian(counts, blur_sigma_px)             (scintillator/detector blur)
5. measured  = blurred + Normal(0, electronic_sigma)       (read-out noise)
6. outputs: intensity = measured / I0 (transmitted fraction, ~1 in air, floored at
   0.5 / I0 so the log is finite) and line integral = -log(intensity).
`rng` is a numpy Generator: same seed, same noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from reconstruction.errors import ImagingError

DEFAULT_PHOTONS_PER_PIXEL = 1e5
SCATTER_SMOOTHING_FRACTION = 0.125  # scatter kernel sigma as a fraction of the image size


@dataclass(frozen=True)
class NoiseModel:
    photons_per_pixel: float = DEFAULT_PHOTONS_PER_PIXEL
    blur_sigma_px: float = 0.5
    scatter_fraction: float = 0.0
    electronic_sigma: float = 2.0  # in photons

    def __post_init__(self) -> None:
        if not np.isfinite(self.photons_per_pixel) or self.photons_per_pixel <= 0:
            raise ImagingError(
                f"dose must be a positive photon count, got {self.photons_per_pixel}"
            )
        for name in ("blur_sigma_px", "scatter_fraction", "electronic_sigma"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ImagingError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class NoisyImage:
    line_integral: np.ndarray  # -log(I / I0), float32
    intensity: np.ndarray  # I / I0, float32


def apply_noise(
    line_integral: np.ndarray, model: NoiseModel, rng: np.random.Generator
) -> NoisyImage:
    dose = model.photons_per_pixel
    primary = dose * np.exp(-np.asarray(line_integral, dtype=np.float64))
    expected = primary
    if model.scatter_fraction > 0:
        sigma = SCATTER_SMOOTHING_FRACTION * max(primary.shape)
        expected = primary + model.scatter_fraction * gaussian_filter(
            primary, sigma, mode="nearest"
        )
    counts = rng.poisson(expected).astype(np.float64)
    if model.blur_sigma_px > 0:
        counts = gaussian_filter(counts, model.blur_sigma_px, mode="nearest")
    if model.electronic_sigma > 0:
        counts = counts + rng.normal(0.0, model.electronic_sigma, size=counts.shape)
    intensity = np.maximum(counts, 0.5) / dose
    return NoisyImage(
        line_integral=(-np.log(intensity)).astype(np.float32),
        intensity=intensity.astype(np.float32),
    )
