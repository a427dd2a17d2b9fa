"""Error maps (GLB with vertex colours, colour bar) and the per-case summary figure."""

import numpy as np
import pytest
import trimesh
from PIL import Image

from evaluation.surface import Slab, compare_pair, compare_pairs
from evaluation.surface.errormap import colours, summary_figure, write_colorbar, write_error_map
from evaluation.surface.synthetic import knee_case

from .shapes import sphere


def test_colour_scale_is_fixed_diverging_and_clipped():
    rgba = colours(np.array([-10.0, -3.0, 0.0, 3.0, 10.0]))
    assert np.array_equal(rgba[0], rgba[1]) and np.array_equal(
        rgba[3], rgba[4]
    )  # clipped at +-3 mm
    assert rgba[1, 2] > rgba[1, 0]  # inside: blue
    assert rgba[3, 0] > rgba[3, 2]  # outside: red
    assert np.all(rgba[2, :3] > 235)  # zero: near white


def test_glb_keeps_the_vertex_colours(tmp_path):
    pair = compare_pair(sphere(20.0, 4), sphere(21.5, 4), density=1.0, convergence=False)
    path = write_error_map(pair.result_mesh, pair.vertex_signed_distance, tmp_path / "map.glb")
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.vertices) == len(pair.result_mesh.vertices)
    colour = np.asarray(loaded.visual.vertex_colors)
    # every vertex ~1.5 mm outside (faceted spheres): the same red everywhere
    assert np.all(np.abs(colour[:, :3].astype(int) - colours(np.array([1.5]))[0, :3]) <= 3)


def test_colorbar_png(tmp_path):
    path = write_colorbar(tmp_path / "bar.png")
    with Image.open(path) as image:
        assert image.height > image.width


def test_summary_figure_for_a_knee(tmp_path):
    reference, result = knee_case(subdivisions=4)
    pairs = compare_pairs(
        reference, result, density=0.5, convergence=False, roi=Slab(centre=(0.0, 0.0, 0.0))
    )
    path = summary_figure(pairs, tmp_path / "case.png", title="synthetic case")
    with Image.open(path) as image:
        assert image.width > 1200
        pixels = np.asarray(image.convert("RGB")).astype(int)
    # the maps are drawn: plenty of clearly blue and clearly red pixels
    assert np.sum(pixels[..., 2] - pixels[..., 0] > 60) > 2000
    assert np.sum(pixels[..., 0] - pixels[..., 2] > 60) > 500


def test_summary_figure_marks_missing_bones(tmp_path):
    pair = compare_pair(sphere(20.0, 3), sphere(21.0, 3), density=0.5, convergence=False)
    assert summary_figure({"femur": pair}, tmp_path / "one.png").exists()
    pytest.importorskip("PIL")
