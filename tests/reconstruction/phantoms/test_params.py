from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms.params import (
    RANGES,
    KneeParams,
    PhantomParameterError,
    cpak_type,
    sample_params,
)


def test_sampling_is_seeded_and_within_ranges():
    assert sample_params(3) == sample_params(3)
    assert sample_params(3) != sample_params(4)
    for seed in range(200):
        params = sample_params(seed)
        for name, (low, high) in RANGES.items():
            assert low <= getattr(params, name) <= high


def test_dimensions_follow_sex_specific_adult_means():
    samples = [sample_params(seed) for seed in range(400)]
    male = [p for p in samples if p.sex == "M"]
    female = [p for p in samples if p.sex == "F"]
    assert np.mean([p.bicondylar_width for p in male]) == pytest.approx(82.0, abs=1.5)
    assert np.mean([p.bicondylar_width for p in female]) == pytest.approx(74.0, abs=1.5)
    assert np.mean([p.head_diameter for p in male]) == pytest.approx(47.6, abs=1.0)
    ratio = np.mean([p.tibia_length / p.femur_length for p in samples])
    assert ratio == pytest.approx(0.8, abs=0.01)
    assert {p.side for p in samples} == {"L", "R"}


def _near_boundary(p: KneeParams, width: float = 0.75) -> bool:
    return min(abs(p.ahka + 2), abs(p.ahka - 2), abs(p.jlo - 177), abs(p.jlo - 183)) < width


def test_cpak_boundaries_are_oversampled():
    seeds = range(400)
    plain = np.mean([_near_boundary(sample_params(s, boundary_fraction=0.0)) for s in seeds])
    boosted = np.mean([_near_boundary(sample_params(s)) for s in seeds])
    assert boosted > plain + 0.15


def test_cpak_type_treats_boundaries_as_neutral():
    assert cpak_type(-2.0, 177.0) == "V"
    assert cpak_type(2.0, 183.0) == "V"
    assert cpak_type(-2.01, 176.9) == "I"
    assert cpak_type(0.0, 176.0) == "II"
    assert cpak_type(2.5, 184.0) == "IX"


def test_round_trip_and_validation():
    params = sample_params(8)
    assert KneeParams.from_dict(params.to_dict()) == params
    with pytest.raises(PhantomParameterError, match="missing"):
        KneeParams.from_dict({"seed": 1})
    with pytest.raises(PhantomParameterError, match="flexion"):
        params.replace(flexion=45.0).validate()
    with pytest.raises(PhantomParameterError, match="side"):
        params.replace(side="X").validate()
    with pytest.raises(PhantomParameterError, match="ratio"):
        params.replace(femur_length=480.0, tibia_length=320.0).validate()
    assert params.mhka == pytest.approx(params.ahka - params.jlca)
