"""Inputs that are not a knee CT fail with a specific, readable error."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.errors import ImagingError, ModalityError
from reconstruction.segmentation import NotAKneeError, segment
from reconstruction.volume import Volume

SHAPE = (80, 80, 120)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij")


def cylinder(radius: float, centre=(40.0, 40.0)) -> np.ndarray:
    i, j, _ = grid()
    return (i - centre[0]) ** 2 + (j - centre[1]) ** 2 <= radius**2


def ct_of(hu: np.ndarray) -> Volume:
    noise = np.random.default_rng(0).normal(0, 10, SHAPE).astype(np.float32)
    return Volume(hu.astype(np.float32) + noise, AFFINE, "CT")


def test_not_a_knee_error_is_an_imaging_error() -> None:
    assert issubclass(NotAKneeError, ImagingError)


def test_uniform_water_cylinder() -> None:
    hu = np.where(cylinder(30), 0.0, -1000.0)
    with pytest.raises(NotAKneeError, match="no bone"):
        segment(ct_of(hu))


def test_uniform_bone_density_cylinder() -> None:
    """A dense rod (a calibration phantom) is one long bone-like body: no joint, no knee."""
    hu = np.where(cylinder(30), 0.0, -1000.0)
    hu[cylinder(12)] = 1200.0
    with pytest.raises(NotAKneeError, match="femur and a tibia"):
        segment(ct_of(hu))


@pytest.mark.parametrize("value", [-1000.0, 0.0])
def test_empty_volume(value: float) -> None:
    volume = Volume(np.full(SHAPE, value, dtype=np.float32), AFFINE, "CT")
    with pytest.raises(NotAKneeError, match="uniform"):
        segment(volume)


def test_empty_air_with_noise_has_no_bone() -> None:
    with pytest.raises(NotAKneeError, match="no bone"):
        segment(ct_of(np.full(SHAPE, -1000.0)))


def test_mr_like_intensities() -> None:
    """0..1000 arbitrary units with bright and dark tissue but no air at -1000 HU."""
    rng = np.random.default_rng(1)
    signal = np.where(cylinder(30), 600.0, 5.0)
    signal[cylinder(12)] = 950.0
    mr = np.clip(signal + rng.normal(0, 20, SHAPE), 0, 1000).astype(np.float32)
    with pytest.raises(ModalityError, match="not a CT"):
        segment(Volume(mr, AFFINE, "CT"))
    with pytest.raises(ModalityError, match="MR"):
        segment(Volume(mr, AFFINE, "MR"))


def test_label_maps_are_refused() -> None:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[cylinder(12)] = 1
    labels[cylinder(5, (60, 60))] = 3
    with pytest.raises(ModalityError, match="label map"):
        segment(Volume(labels, AFFINE, "CT"))
    with pytest.raises(ModalityError, match="LABELS"):
        segment(Volume(labels, AFFINE, "LABELS"))


def test_two_parallel_long_bones_are_not_a_knee() -> None:
    """A forearm-like CT: radius and ulna side by side, no joint between them."""
    hu = np.where(cylinder(35), 40.0, -1000.0)
    hu[cylinder(9, (30, 40))] = 1300.0
    hu[cylinder(7, (52, 40))] = 1300.0
    with pytest.raises(NotAKneeError, match="side by side"):
        segment(ct_of(hu))


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown segmentation method"):
        segment(ct_of(np.full(SHAPE, -1000.0)), method="magic")
