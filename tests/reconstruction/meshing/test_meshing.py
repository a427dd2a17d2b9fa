"""Meshing: analytic shapes on plain, anisotropic, oblique and mirrored grids."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from reconstruction.meshing import (
    MeshingError,
    MeshSettings,
    enclosed_volume,
    export_mesh,
    mesh_from_mask,
    mesh_from_occupancy,
    meshes_from_labels,
    meshes_from_probabilities,
)
from reconstruction.volume import Volume

RADIUS = 20.0


def grid_affine(spacing, rotation=None, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.eye(4)
    rotation = np.eye(3) if rotation is None else np.asarray(rotation)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def patient_points(affine: np.ndarray, shape) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def centred_affine(spacing, rotation, centre, shape) -> np.ndarray:
    """A grid of `shape` whose centre voxel lands on `centre` (patient mm)."""
    affine = grid_affine(spacing, rotation)
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def outward_fraction(mesh: trimesh.Trimesh, centre: np.ndarray) -> float:
    radial = mesh.triangles_center - centre
    return float(np.mean(np.einsum("ij,ij->i", mesh.face_normals, radial) > 0))


def test_sphere_mask_is_watertight_outward_and_keeps_volume() -> None:
    shape = (56, 56, 56)
    affine = grid_affine((1.0, 1.0, 1.0), origin=(-27.5, -27.5, -27.5))
    mask = np.linalg.norm(patient_points(affine, shape), axis=-1) <= RADIUS
    mesh = mesh_from_mask(mask, affine)
    analytic = 4 / 3 * np.pi * RADIUS**3
    assert mesh.is_watertight
    assert mesh.volume > 0
    assert abs(mesh.volume - analytic) / analytic < 0.01
    assert outward_fraction(mesh, np.zeros(3)) > 0.999
    radial_error = np.abs(np.linalg.norm(mesh.vertices, axis=1) - RADIUS)
    assert radial_error.mean() < 0.15


@pytest.mark.parametrize("mirrored", [False, True])
def test_oblique_anisotropic_affine_puts_vertices_in_patient_space(mirrored: bool) -> None:
    """An ellipsoid with distinct semi-axes at an off-origin centre, sampled on a rotated
    grid with 0.6 x 0.9 x 1.4 mm voxels: transposed axes, a wrong spacing or a dropped
    rotation would all move the surface by millimetres."""
    rotation = Rotation.from_euler("zyx", [25, -15, 35], degrees=True).as_matrix()
    if mirrored:
        rotation = rotation @ np.diag([1.0, -1.0, 1.0])
    centre = np.array([31.0, -47.0, 112.0])
    semi_axes = np.array([24.0, 15.0, 10.0])
    frame = Rotation.from_euler("xz", [20, 40], degrees=True).as_matrix()
    shape = (95, 70, 45)
    affine = centred_affine((0.6, 0.9, 1.4), rotation, centre, shape)
    local = (patient_points(affine, shape) - centre) @ frame
    mask = np.sum((local / semi_axes) ** 2, axis=-1) <= 1.0

    mesh = mesh_from_mask(mask, affine)

    assert mesh.is_watertight and mesh.volume > 0
    assert outward_fraction(mesh, centre) > 0.99
    vertices_local = (mesh.vertices - centre) @ frame
    # distance-like residual: (algebraic radius - 1) * smallest semi-axis, in mm
    radius = np.linalg.norm(vertices_local / semi_axes, axis=1)
    assert np.abs(radius - 1.0).mean() * semi_axes.min() < 0.3
    analytic = 4 / 3 * np.pi * np.prod(semi_axes)
    assert abs(mesh.volume - analytic) / analytic < 0.02


def test_decimation_hits_the_target_face_count() -> None:
    shape = (56, 56, 56)
    affine = grid_affine((1.0, 1.0, 1.0), origin=(-27.5, -27.5, -27.5))
    mask = np.linalg.norm(patient_points(affine, shape), axis=-1) <= RADIUS
    full = mesh_from_mask(mask, affine)
    target = 3000
    mesh = mesh_from_mask(mask, affine, MeshSettings(target_faces=target))
    assert len(full.faces) > 3 * target
    assert abs(len(mesh.faces) - target) <= 0.05 * target
    assert mesh.is_watertight and mesh.volume > 0
    assert abs(mesh.volume - full.volume) / full.volume < 0.01


def test_only_the_largest_component_is_kept() -> None:
    shape = (60, 40, 40)
    affine = grid_affine((1.0, 1.0, 1.0))
    points = patient_points(affine, shape)
    big = np.linalg.norm(points - [20, 20, 20], axis=-1) <= 12
    small = np.linalg.norm(points - [48, 20, 20], axis=-1) <= 5
    mesh = mesh_from_mask(big | small, affine)
    assert mesh.body_count == 1
    assert np.linalg.norm(mesh.centroid - [20, 20, 20]) < 0.2


def test_bone_cut_by_the_field_of_view_is_capped() -> None:
    """A cylinder running out of the grid still gives a closed surface."""
    shape = (40, 40, 30)
    affine = grid_affine((1.0, 1.0, 1.0))
    points = patient_points(affine, shape)
    mask = np.linalg.norm(points[..., :2] - [20, 20], axis=-1) <= 8
    mesh = mesh_from_mask(mask, affine)
    assert mesh.is_watertight and mesh.volume > 0
    analytic = np.pi * 8**2 * 29.0  # capped half a voxel outside the first/last centres
    assert abs(mesh.volume - analytic) / analytic < 0.05


def test_labels_give_one_mesh_per_present_bone() -> None:
    shape = (70, 40, 40)
    affine = grid_affine((1.0, 1.0, 1.0))
    points = patient_points(affine, shape)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[np.linalg.norm(points - [18, 20, 20], axis=-1) <= 12] = 1
    labels[np.linalg.norm(points - [50, 20, 20], axis=-1) <= 10] = 2
    meshes = meshes_from_labels(
        Volume(labels, affine, "LABELS"), {"femur": 1, "tibia": 2, "patella": 4}
    )
    assert set(meshes) == {"femur", "tibia"}
    assert np.linalg.norm(meshes["tibia"].centroid - [50, 20, 20]) < 0.2


def test_probability_grid_gives_sub_voxel_argmax_surfaces() -> None:
    """Smooth two-class probabilities on a coarse 2 mm grid: the arg-max boundary is the
    sphere, found at sub-voxel precision."""
    shape = (30, 30, 30)
    affine = centred_affine((2.0, 2.0, 2.0), np.eye(3), (5.0, 5.0, 5.0), shape)
    distance = np.linalg.norm(patient_points(affine, shape) - [5.0, 5.0, 5.0], axis=-1)
    inside = 1.0 / (1.0 + np.exp((distance - RADIUS) / 1.5))
    probabilities = np.stack([1.0 - inside, inside])
    meshes = meshes_from_probabilities(probabilities, affine, ["", "femur"])
    mesh = meshes["femur"]
    assert mesh.is_watertight and mesh.volume > 0
    radial_error = np.linalg.norm(mesh.vertices - [5.0, 5.0, 5.0], axis=1) - RADIUS
    assert np.abs(radial_error).mean() < 0.2


def test_occupancy_callable_is_meshed_on_the_grid() -> None:
    centre = np.array([-10.0, 30.0, 7.0])
    shape = (40, 40, 40)
    affine = centred_affine((1.2, 1.2, 1.2), np.eye(3), centre, shape)

    def occupancy(points: np.ndarray) -> np.ndarray:
        return (np.linalg.norm(points - centre, axis=1) <= 15.0).astype(np.float32)

    mesh = mesh_from_occupancy(occupancy, affine, shape, settings=MeshSettings())
    assert mesh.is_watertight and mesh.volume > 0
    assert np.linalg.norm(mesh.centroid - centre) < 0.1
    assert abs(mesh.volume / (4 / 3 * np.pi * 15.0**3) - 1) < 0.03


def test_empty_input_raises_a_clear_error() -> None:
    with pytest.raises(MeshingError, match="empty"):
        mesh_from_mask(np.zeros((10, 10, 10), dtype=bool), np.eye(4))
    with pytest.raises(MeshingError, match="never crosses"):
        mesh_from_occupancy(lambda p: np.zeros(len(p)), np.eye(4), (8, 8, 8))


@pytest.mark.parametrize("suffix", ["stl", "ply", "glb"])
def test_exports_round_trip(tmp_path, suffix: str) -> None:
    shape = (30, 30, 30)
    affine = grid_affine((1.0, 1.0, 1.0), origin=(100.0, -50.0, 20.0))
    mask = np.linalg.norm(patient_points(affine, shape) - [115, -35, 35], axis=-1) <= 10
    mesh = mesh_from_mask(mask, affine)
    out = tmp_path / "out"
    path = export_mesh(mesh, out / f"bone.{suffix}")
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
    assert np.allclose(loaded.bounds, mesh.bounds, atol=1e-3)
    assert abs(loaded.volume - mesh.volume) / mesh.volume < 1e-4
    assert list(out.iterdir()) == [path]  # no temporary left behind


def test_unknown_export_format_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="format"):
        export_mesh(trimesh.creation.icosphere(), tmp_path / "bone.obj")


def test_enclosed_volume_matches_trimesh_and_flips_with_winding() -> None:
    box = trimesh.creation.box(extents=(10.0, 20.0, 30.0))
    box.apply_translation((100.0, -50.0, 7.0))  # not at the origin: the formula must not care
    assert enclosed_volume(box) == pytest.approx(6000.0)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=12.0)
    assert enclosed_volume(sphere) == pytest.approx(sphere.volume, rel=1e-9)
    sphere.invert()
    assert enclosed_volume(sphere) == pytest.approx(-abs(sphere.volume), rel=1e-9)
