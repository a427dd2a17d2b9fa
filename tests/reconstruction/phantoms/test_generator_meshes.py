"""Knee-only meshes stay watertight for seeds whose marching cubes once left stray triangles."""

import pytest

from reconstruction.phantoms.generator import generate_case


@pytest.mark.parametrize("seed", [7, 1006])
def test_knee_meshes_are_watertight_without_stray_fragments(seed):
    case = generate_case(seed, fov="knee", with_ct=False)
    for bone, mesh in case.meshes.items():
        assert mesh.is_watertight, bone
        assert min(len(piece.faces) for piece in mesh.split(only_watertight=False)) >= 4, bone
