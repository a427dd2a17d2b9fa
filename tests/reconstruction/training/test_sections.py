"""Section figures: femur alignment, axial and sagittal outlines and the written PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from reconstruction.training.sections import (
    aligned_femur,
    femur_depth_over_width,
    femur_sections_figure,
    patellofemoral_figure,
    sagittal_outlines,
    section_outlines,
)
from reconstruction.volume import Volume


def _condyles(offset=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """Two 20 mm spheres 50 mm apart (x) standing on a 40 x 30 x 60 mm box."""
    left = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    right = left.copy().apply_translation((50.0, 0.0, 0.0))
    left.apply_translation((0.0, 0.0, 0.0))
    block = trimesh.creation.box(extents=(40.0, 30.0, 60.0)).apply_translation((25.0, 0, 40))
    return trimesh.util.concatenate([left, right, block]).apply_translation(offset)


def test_alignment_puts_the_distal_end_posterior_line_and_centre_at_zero() -> None:
    aligned = aligned_femur(_condyles(offset=(-7.0, 12.0, 300.0)))
    lo, hi = aligned.bounds
    assert lo[2] == pytest.approx(0.0)
    band = aligned.vertices[aligned.vertices[:, 2] < 30.0]
    assert band[:, 1].max() == pytest.approx(0.0)
    assert band[:, 0].min() == pytest.approx(-band[:, 0].max())


def test_sections_are_the_meshes_outlines_at_that_height() -> None:
    aligned = aligned_femur(_condyles())
    outlines = section_outlines(aligned, 5.0)  # through both spheres, 5 mm above their bottom
    assert len(outlines) == 2
    radius = np.sqrt(10.0**2 - 5.0**2)
    for outline in outlines:
        centre = outline.mean(axis=0)
        assert np.allclose(np.linalg.norm(outline - centre, axis=1), radius, atol=0.3)
    assert section_outlines(aligned, 500.0) == []


def test_the_figure_is_a_png_written_whole(tmp_path) -> None:
    out = tmp_path / "figs" / "sections.png"
    reconstruction = _condyles(offset=(1.0, 2.0, 0.5))
    femur_sections_figure(_condyles(), out, [("model", reconstruction)], [_condyles()])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["sections.png"]


def test_sagittal_outlines_are_the_meshes_y_z_sections_at_that_x() -> None:
    ball = trimesh.creation.icosphere(subdivisions=4, radius=12.0).apply_translation((-70, -50, 25))
    (outline,) = sagittal_outlines(ball, -70.0 + 8.0)
    radius = np.sqrt(12.0**2 - 8.0**2)
    assert np.allclose(outline.mean(axis=0), (-50.0, 25.0), atol=0.3)
    assert np.allclose(np.linalg.norm(outline - (-50.0, 25.0), axis=1), radius, atol=0.3)
    assert sagittal_outlines(ball, 0.0) == []


def test_the_patellofemoral_figure_is_a_png_written_whole(tmp_path) -> None:
    patella = trimesh.creation.icosphere(subdivisions=3, radius=10.0).apply_translation(
        (0, -40, 30)
    )
    truth = {"femur": _condyles(), "patella": patella}
    model = {"femur": _condyles(offset=(0.0, 1.0, 0.0)), "patella": patella.copy()}
    out = tmp_path / "figs" / "sagittal.png"
    patellofemoral_figure(truth, out, [("model", model)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["sagittal.png"]


def _seating_labels(patella_back_y: int) -> tuple[np.ndarray, np.ndarray]:
    """A femur box (y 20-59, z 0-59) and a patella box (y 5 .. patella_back_y, z 20-34,
    x 10-29) on a 1 x 1 x 2 mm grid with its origin at (-5, -10, 100)."""
    labels = np.zeros((40, 80, 40), dtype=np.uint8)
    labels[:, 20:60, 0:30] = 1
    labels[10:30, 5 : patella_back_y + 1, 10:25] = 4
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = (-5.0, -10.0, 100.0)
    return labels, affine


@pytest.mark.parametrize(("back", "seat"), [(15, -5.0), (24, 4.0)])
def test_patella_seating_measures_the_extent_the_pole_and_how_deep_it_sits(
    back: int, seat: float
) -> None:
    from reconstruction.training.sections import patella_seating

    labels, affine = _seating_labels(back)
    measured = patella_seating(Volume(labels, affine, "LABELS"))
    assert measured["width_mm"] == pytest.approx(19.0)  # voxel centres 10-29
    assert measured["thickness_mm"] == pytest.approx(back - 5)
    assert measured["height_mm"] == pytest.approx(28.0)  # 15 slices 2 mm apart
    assert measured["lower_pole_mm"] == pytest.approx(20.0)
    assert measured["volume_cm3"] == pytest.approx(20 * (back - 4) * 15 * 2 / 1000.0)
    assert measured["seat_mm"] == pytest.approx(seat)
    # the same knee on a grid with its axes permuted and flipped (as the real knee's is)
    permuted = np.zeros((4, 4))
    permuted[:3, :3] = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    permuted[:3, 3] = affine[:3, 3] + (0.0, 79.0, 0.0)
    permuted[3, 3] = 1.0
    relabelled = np.transpose(labels, (1, 2, 0))[::-1]  # [y, z, x] with y flipped
    relabelled_volume = Volume(np.ascontiguousarray(relabelled), permuted, "LABELS")
    assert patella_seating(relabelled_volume) == pytest.approx(measured)


def test_patella_seating_refuses_a_map_without_both_bones() -> None:
    from reconstruction.training.sections import patella_seating

    labels, affine = _seating_labels(15)
    with pytest.raises(ValueError, match="femur"):
        patella_seating(Volume(np.where(labels == 4, 0, labels), affine, "LABELS"))


def _stepped_femur() -> trimesh.Trimesh:
    """A 60 (x) x 30 (y) x 40 (z) mm block with a 40 x 12 x 20 mm block in front of it
    from 12 to 32 mm above its bottom: 30 mm deep at 10 mm up, 42 mm at 15 mm."""
    body = trimesh.creation.box(extents=(60.0, 30.0, 40.0)).apply_translation((0, 0, 20))
    front = trimesh.creation.box(extents=(40.0, 12.0, 20.0)).apply_translation((0, -21, 22))
    return trimesh.boolean.union([body, front], engine="manifold")


def test_depth_over_width_is_the_sections_front_back_extent_over_the_width() -> None:
    femur = _stepped_femur().apply_translation((30.0, -40.0, 250.0))
    ratios = femur_depth_over_width(femur, (10.0, 15.0, 30.0))
    assert ratios[10.0] == pytest.approx(30.0 / 60.0, abs=1e-6)
    assert ratios[15.0] == pytest.approx(42.0 / 60.0, abs=1e-6)  # the front block reaches
    assert ratios[30.0] == pytest.approx(42.0 / 60.0, abs=1e-6)
    # the width is taken at its own height (10 mm), where the block is 60 mm wide
    assert femur_depth_over_width(femur, (15.0,), width_height_mm=15.0)[15.0] == pytest.approx(
        42.0 / 60.0, abs=1e-6
    )


def test_depth_over_width_is_the_same_for_a_mirrored_knee_and_refuses_a_missing_height() -> None:
    femur = _stepped_femur()
    mirrored = femur.copy().apply_transform(np.diag([-1.0, 1.0, 1.0, 1.0]))
    assert femur_depth_over_width(mirrored) == pytest.approx(femur_depth_over_width(femur))
    with pytest.raises(ValueError, match="no section 45 mm"):
        femur_depth_over_width(femur, (10.0, 45.0))
