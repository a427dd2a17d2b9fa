"""Femur variation: a popliteal hollow behind the metaphysis, the notch kept."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, sample_params
from reconstruction.phantoms.femur import (
    MAX_HOLLOW_DEPTH_MM,
    posterior_surface_y,
    vary_femur,
)

SEED = 11  # its draw at strength 3: share 1, hollow 11.2 mm deep at 38 mm


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


def test_the_hollow_reaches_its_depth_into_the_posterior_midline(plain) -> None:
    varied = vary_femur(plain, 3.0)
    drawn = varied.extras["femur"]
    assert 1.0 < drawn["hollow_depth_mm"] <= MAX_HOLLOW_DEPTH_MM * drawn["share"]
    height = drawn["hollow_height_mm"]
    before = posterior_surface_y(plain.bones["femur"].local_shape, height)
    after = posterior_surface_y(varied.bones["femur"].local_shape, height)
    # the cut is at least as deep as drawn, and no deeper than the drawn depth plus the
    # blend's reach
    assert drawn["hollow_depth_mm"] - 0.05 <= before - after <= drawn["hollow_depth_mm"] + 3.0
    # 32 mm above or below the hollow's centre, beyond its reach and blend, nothing moved
    for outside in (height - 32.0, height + 32.0):
        if outside < 20.0:
            continue  # the mid-line there runs through the notch: no bone to meet
        assert posterior_surface_y(varied.bones["femur"].local_shape, outside) == pytest.approx(
            posterior_surface_y(plain.bones["femur"].local_shape, outside)
        )


def test_the_notch_and_condyles_are_kept(plain) -> None:
    # version 1 also enlarged the notch, and its student shrank real condyles: below the
    # hollow's reach and blend (under 0.1 bicondylar widths above the knee centre) the femur is as it was
    varied = vary_femur(plain, 3.0)
    b = plain.params.bicondylar_width
    points = np.random.default_rng(1).uniform(
        (-0.6 * b, -0.6 * b, -0.5 * b), (0.6 * b, 0.6 * b, 0.1 * b), (20000, 3)
    )
    np.testing.assert_array_equal(
        varied.bones["femur"].local_shape(points), plain.bones["femur"].local_shape(points)
    )
