"""Beam centring for simulated pairs."""

from __future__ import annotations


def test_bone_centre_is_the_middle_of_the_bones_not_of_the_volume() -> None:
    import numpy as np

    from reconstruction.drr.simulate import bone_centre
    from reconstruction.volume import Volume

    hu = np.full((60, 50, 40), -1000.0, dtype=np.float32)
    hu[10:30, 5:45, 20:40] = 1000.0  # bone off-centre in i and k
    hu[55, 2, 1] = 1500.0  # one stray bright voxel must not move the centre
    affine = np.diag([0.5, 1.0, 2.0, 1.0])
    affine[:3, 3] = (-10.0, 0.0, 5.0)
    ct = Volume(hu, affine, "CT")
    centre = np.asarray(bone_centre(ct))
    expected = affine[:3, :3] @ np.array([19.5, 24.0, 29.5]) + affine[:3, 3]
    np.testing.assert_allclose(centre, expected, atol=0.6)
    empty = Volume(np.zeros((4, 4, 4), dtype=np.float32), np.eye(4), "CT")
    np.testing.assert_allclose(bone_centre(empty), (1.5, 1.5, 1.5))
