"""The building blocks: point-triangle distance, sampling, exact ray parity, voxelisation."""

import numpy as np
import pytest
import trimesh

from evaluation.surface import ParameterError, Slab
from evaluation.surface.distances import (
    ClosestPointIndex,
    closest_point_on_triangles,
    sample_surface,
)
from evaluation.surface.volume import (
    Lattice,
    column_events,
    inside,
    overlap_counts,
    signs_outside,
    voxelise,
)

from .shapes import cube, sphere


def test_point_triangle_distance_matches_a_dense_search_in_every_region():
    rng = np.random.default_rng(0)
    n = 400
    a, b, c = (rng.normal(size=(n, 3)) for _ in range(3))
    c[:20] = a[:20] + 0.5 * (b[:20] - a[:20])  # degenerate: collinear
    c[20:30] = b[20:30] = a[20:30]  # degenerate: a point
    p = rng.normal(scale=2.0, size=(n, 3))
    closest, distance = closest_point_on_triangles(p, a, b, c)
    # dense barycentric grid on each triangle: the exact distance is never larger
    s, t = np.meshgrid(np.linspace(0, 1, 121), np.linspace(0, 1, 121))
    keep = s + t <= 1
    s, t = s[keep], t[keep]
    grid = a[:, None] + (b - a)[:, None] * s[None, :, None] + (c - a)[:, None] * t[None, :, None]
    brute = np.linalg.norm(grid - p[:, None], axis=2).min(axis=1)
    assert np.all(distance <= brute + 1e-12)
    assert np.all(brute - distance < 0.05)
    assert np.allclose(np.linalg.norm(p - closest, axis=1), distance)


def test_index_finds_exact_distances_to_a_sphere():
    mesh = sphere(20.0, 5)
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(5000, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    radii = rng.uniform(5.0, 40.0, size=5000)
    distance, closest, face = ClosestPointIndex(mesh).query(directions * radii[:, None])
    # brute force over every face for a subset
    tri = mesh.triangles
    for i in range(0, 5000, 250):
        _, d = closest_point_on_triangles(
            np.repeat(directions[i : i + 1] * radii[i], len(tri), 0),
            tri[:, 0],
            tri[:, 1],
            tri[:, 2],
        )
        assert distance[i] == pytest.approx(d.min(), abs=1e-5)


def test_sampling_is_area_weighted_reproducible_and_at_the_density():
    mesh = cube(20.0)
    first = sample_surface(mesh, 3.0, seed=5)
    again = sample_surface(mesh, 3.0, seed=5)
    other = sample_surface(mesh, 3.0, seed=6)
    assert np.array_equal(first.points, again.points)
    assert not np.array_equal(first.points[:100], other.points[:100])
    assert len(first.points) == pytest.approx(2400 * 3.0, rel=0.02)
    assert first.weight == pytest.approx(1 / 3.0, rel=0.02)
    # every point is on the surface, and the six faces get shares by area
    assert np.allclose(np.max(np.abs(first.points), axis=1), 10.0)
    face_of = np.argmax(np.abs(first.points), axis=1) * 2 + (
        first.points[np.arange(len(first.points)), np.argmax(np.abs(first.points), axis=1)] > 0
    )
    counts = np.bincount(face_of, minlength=6)
    assert np.all(np.abs(counts - 1200) < 40)


def test_ray_parity_is_exact_through_edges_and_vertices():
    box = cube(20.0)  # faces at +-10, each square split along a diagonal through (0, 0)
    soup = trimesh.Trimesh(
        box.triangles.reshape(-1, 3), np.arange(36).reshape(-1, 3), process=False
    )
    g = np.arange(-10.0, 10.5, 1.0)
    for axis in range(3):
        u, v = np.meshgrid(g, g, indexing="ij")
        for depth, expected in ((0.0, True), (-15.0, False), (15.0, False), (9.5, True)):
            points = np.zeros((u.size, 3))
            others = [k for k in range(3) if k != axis]
            points[:, others[0]], points[:, others[1]] = u.ravel(), v.ravel()
            points[:, axis] = depth
            interior = (np.abs(points[:, others[0]]) < 10) & (np.abs(points[:, others[1]]) < 10)
            for mesh in (box, soup):
                result = inside(mesh, points, axis=axis)
                # rays through the projected diagonals (u == v) and the vertices count once
                assert np.all(result[interior] == expected)
                if not expected:
                    # grazing rays along the side faces (|u| or |v| == 10) stay outside
                    assert not np.any(result)


def test_inside_agrees_with_trimesh_on_a_sphere():
    mesh = sphere(20.0, 4)
    points = np.random.default_rng(2).uniform(-25, 25, size=(20000, 3))
    assert np.array_equal(inside(mesh, points), mesh.contains(points))


def test_voxelisation_is_exact_for_a_lattice_aligned_box_and_close_for_a_sphere():
    box = cube(20.0, offset=(3.0, -2.0, 7.5))
    lattice = Lattice.covering(box.bounds[0] - 1, box.bounds[1] + 1, 0.25)
    for axis in range(3):
        assert voxelise(box, lattice, axis).sum() * 0.25**3 == pytest.approx(8000.0)
    ball = sphere(20.0, 6)
    lattice = Lattice.covering(ball.bounds[0], ball.bounds[1], 0.2)
    events = column_events(ball, lattice, 2)
    n, _, _ = overlap_counts(events, events)
    assert n * 0.2**3 == pytest.approx(ball.volume, rel=1e-3)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize(
    "slab",
    [
        None,
        Slab(centre=(1.0, 2.0, 3.0), axis=(0.2, -0.5, 1.0), below=6.0, above=4.0),
        Slab(centre=(0.0, 0.0, 0.0), axis=(1.0, 0.0, 0.0), below=3.0, above=30.0),
    ],
)
def test_interval_counts_equal_dense_voxel_counts(axis, slab):
    a, b = sphere(10.0, 4), sphere(9.0, 4, centre=(1.5, -1.0, 2.0))
    lattice = Lattice.covering(np.full(3, -12.0), np.full(3, 12.0), 0.25)
    dense_a, dense_b = voxelise(a, lattice, axis), voxelise(b, lattice, axis)
    if slab is not None:
        x, y, z = (lattice.centres(k) for k in range(3))
        region = slab.contains(x[:, None, None], y[None, :, None], z[None, None, :])
        dense_a, dense_b = dense_a & region, dense_b & region
    counts = overlap_counts(column_events(a, lattice, axis), column_events(b, lattice, axis), slab)
    assert counts == (int(dense_a.sum()), int(dense_b.sum()), int((dense_a & dense_b).sum()))


def test_voxel_assisted_signs_equal_ray_parity():
    mesh = sphere(20.0, 4)
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(20000, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    points = directions * rng.uniform(19.0, 21.0, size=(20000, 1))  # near the surface
    distance, _, _ = ClosestPointIndex(mesh).query(points)
    lattice = Lattice.covering(np.full(3, -22.0), np.full(3, 22.0), 0.25)
    signs = signs_outside(mesh, column_events(mesh, lattice, 2), points, distance)
    assert np.array_equal(signs < 0, inside(mesh, points))


def test_lattice_refuses_coarse_or_silly_spacing():
    for spacing in (0.5, 0.0, -1.0, float("nan")):
        with pytest.raises(ParameterError):
            Lattice.covering(np.zeros(3), np.ones(3), spacing)


def test_vertex_pruning_keeps_the_exact_maximum():
    from evaluation.surface.metrics import _directed
    from evaluation.surface.synthetic import bone_mesh

    source = bone_mesh("patella", subdivisions=5, noise_mm=1.5, seed=4)
    target = bone_mesh("patella", subdivisions=4)
    index = ClosestPointIndex(target)
    sample = sample_surface(source, 0.5, seed=1)
    full = _directed(index, sample, source.vertices, every_vertex=True)
    pruned = _directed(index, sample, source.vertices, every_vertex=False)
    assert len(pruned.vertices) < 0.5 * len(full.vertices)
    assert pruned.max == full.max
