"""Tibia variation: a posterior recess below the plateau, the plateau and fibula kept."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import build_anatomy, sample_params
from reconstruction.phantoms.tibia import MAX_RECESS_MM, RECESS_RADII_W, RIM_HEIGHT_W, vary_tibia
from reconstruction.phantoms.variation import posterior_surface_y

SEED = 10  # its draw at strength 3: share 1, the face 9.5 mm forward at 34 mm below


@pytest.fixture(scope="module")
def plain():
    return build_anatomy(sample_params(SEED))


def test_the_face_moves_forward_by_the_cut_and_recedes_gradually(plain) -> None:
    varied = vary_tibia(plain, 3.0)
    drawn = varied.extras["tibia"]
    w = plain.params.plateau_width
    assert 1.0 < drawn["cut_mm"] <= (MAX_RECESS_MM - drawn["own_recess_mm"]) * drawn["share"]
    height = drawn["recess_height_mm"]
    assert -0.7 * w < height < -0.4 * w  # below the plateau, above the shaft
    plain_shape, varied_shape = plain.bones["tibia"].local_shape, varied.bones["tibia"].local_shape
    moved = posterior_surface_y(plain_shape, height) - posterior_surface_y(varied_shape, height)
    # at least the drawn cut, no more than the cut plus the blend's reach
    assert drawn["cut_mm"] - 0.05 <= moved <= drawn["cut_mm"] + 3.0
    # from the rim down to the recess's centre the back face only recedes: an overhang,
    # not a pit
    top = height + RECESS_RADII_W[2] * w
    faces = [posterior_surface_y(varied_shape, z) for z in np.linspace(top, height, 12)]
    assert np.all(np.diff(faces) <= 0.05)
    rim = RIM_HEIGHT_W * w
    assert posterior_surface_y(varied_shape, rim) == pytest.approx(
        posterior_surface_y(plain_shape, rim),
        abs=0.01,  # the sphere tracing's tolerance
    )


def test_the_plateau_is_kept(plain) -> None:
    # above the recess's reach and blend the tibia is as it was: the joint surface, the
    # eminence and the plateau rim (points a blend's width over the ellipsoid's top)
    varied = vary_tibia(plain, 3.0)
    drawn = varied.extras["tibia"]
    w = plain.params.plateau_width
    top_of_reach = drawn["recess_height_mm"] + RECESS_RADII_W[2] * w + 3.0
    assert top_of_reach < -5.0
    points = np.random.default_rng(1).uniform(
        (-0.7 * w, -0.7 * w, top_of_reach + 0.5), (0.7 * w, 0.7 * w, 0.2 * w), (20000, 3)
    )
    # the surface is kept (the SDF's values inside may change: nearer surface points moved)
    np.testing.assert_array_equal(
        varied.bones["tibia"].local_shape(points) < 0, plain.bones["tibia"].local_shape(points) < 0
    )
