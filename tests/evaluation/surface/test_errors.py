"""Bad input gives a clear SurfaceMetricError, never a number."""

import numpy as np
import pandas as pd
import pytest
import trimesh

from evaluation.surface import (
    DegenerateMeshError,
    EmptyMeshError,
    MeshFileError,
    NotWatertightError,
    ParameterError,
    Slab,
    SurfaceMetricError,
    UnitMismatchError,
    compare_bones,
    compare_pair,
)

from .shapes import sphere

FAST = {"density": 1.0, "convergence": False}


@pytest.fixture(scope="module")
def good():
    return sphere(20.0, 4)


def open_sphere():
    mesh = sphere(20.0, 4)
    return trimesh.Trimesh(mesh.vertices, mesh.faces[10:], process=False)


def test_errors_are_value_errors():
    assert issubclass(SurfaceMetricError, ValueError)
    for cls in (
        DegenerateMeshError,
        EmptyMeshError,
        MeshFileError,
        NotWatertightError,
        ParameterError,
        UnitMismatchError,
    ):
        assert issubclass(cls, SurfaceMetricError)


def test_empty_mesh(good):
    with pytest.raises(EmptyMeshError, match="empty"):
        compare_pair(trimesh.Trimesh(), good, **FAST)


def test_degenerate_meshes(good):
    nan = good.copy()
    nan.vertices[3] = np.nan
    with pytest.raises(DegenerateMeshError, match="non-finite"):
        compare_pair(good, nan, **FAST)
    flat = trimesh.Trimesh([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 0]], [[0, 1, 2], [1, 3, 2]])
    with pytest.raises(DegenerateMeshError, match="flat"):
        compare_pair(good, flat, **FAST)
    collapsed = trimesh.Trimesh(
        [[0, 0, 0], [10, 0, 0], [20, 0, 0], [0, 0, 30]], [[0, 1, 2], [0, 1, 2]], process=False
    )
    with pytest.raises(DegenerateMeshError, match="zero surface area"):
        compare_pair(collapsed, good, **FAST)
    bad_index = trimesh.Trimesh(good.vertices, np.array(good.faces), process=False)
    bad_index.faces[0, 0] = len(good.vertices) + 5
    with pytest.raises(DegenerateMeshError, match="face indices"):
        compare_pair(good, bad_index, **FAST)


def test_open_mesh_is_refused_where_a_closed_one_is_needed(good):
    with pytest.raises(NotWatertightError, match="volume Dice/IoU"):
        compare_pair(good, open_sphere(), **FAST, signed=False)
    with pytest.raises(NotWatertightError, match="signed distance"):
        compare_pair(open_sphere(), good, **FAST, volume=False)
    # distances alone do not need a closed surface
    pair = compare_pair(open_sphere(), good, **FAST, volume=False, signed=False)
    assert "dice" not in pair.metrics and "signed_mean" not in pair.metrics
    assert pair.metrics["assd"] >= 0


def test_unit_mismatch(good):
    metres = good.copy()
    metres.apply_scale(0.001)
    with pytest.raises(UnitMismatchError, match="cannot be a bone in millimetres"):
        compare_pair(good, metres, **FAST)
    huge = good.copy()
    huge.apply_scale(200.0)  # 8 m across: a mesh in micrometres... or nonsense
    with pytest.raises(UnitMismatchError):
        compare_pair(good, huge, **FAST)
    large = good.copy()
    large.apply_scale(25.0)  # 1.7 m across, next to a 8.7 mm one: both possible, not together
    small = sphere(2.5, 3)
    with pytest.raises(UnitMismatchError, match="not in the same unit"):
        compare_pair(small, large, **FAST)


def test_bad_parameters(good):
    for params in (
        {"density": 0.0},
        {"density": float("nan")},
        {"tolerance": -1.0},
        {"alignment": "affine"},
        {"grid_spacing": 0.5},
        {"n_samples": 10},
        {"colour": "red"},
        {"roi": (0, 0, 0)},
    ):
        with pytest.raises(ParameterError):
            compare_pair(good, good.copy(), **{**FAST, **params})
    with pytest.raises(ParameterError):
        Slab(centre=(0, 0, 0), axis=(0, 0, 0))
    with pytest.raises(ParameterError):
        Slab(centre=(0, 0, 0), below=-5, above=0)


def test_roi_that_misses_the_mesh(good):
    with pytest.raises(EmptyMeshError, match="region of interest"):
        compare_pair(good, good.copy(), **FAST, roi=Slab(centre=(0, 0, 500)))


def test_missing_files_and_formats(tmp_path, good):
    with pytest.raises(MeshFileError, match="no such file"):
        compare_pair(tmp_path / "absent.stl", good, **FAST)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(MeshFileError, match="not a mesh file"):
        compare_pair(text, good, **FAST)
    garbage = tmp_path / "broken.ply"
    garbage.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nend_header\n\x00\x01"
    )
    with pytest.raises(SurfaceMetricError):
        compare_pair(garbage, good, **FAST)
    empty = tmp_path / "empty.stl"
    empty.write_bytes(b"")
    with pytest.raises(SurfaceMetricError):
        compare_pair(empty, good, **FAST)


def test_compare_bones_rows_and_bone_mismatch(good, tmp_path):
    path = tmp_path / "femur_ref.stl"
    good.export(path)
    rows = compare_bones(
        {"femur": path, "patella": good}, {"femur": sphere(21.0, 4), "patella": good.copy()}, **FAST
    )
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == ["bone", "metric", "variant", "value", "unit", "parameters"]
    assert set(frame.bone) == {"femur", "patella"}
    femur = frame[(frame.bone == "femur") & (frame.metric == "assd")].iloc[0]
    assert femur.value == pytest.approx(1.0, rel=0.01)
    assert femur.variant == "pooled_area_weighted" and femur.unit == "mm"
    hd95 = frame[(frame.bone == "femur") & (frame.metric == "hd95")]
    assert set(hd95.variant) == {
        "max_of_directed_p95",
        "reference_to_result",
        "result_to_reference",
    }
    assert frame[frame.metric == "chamfer"].unit.unique().tolist() == ["mm^2"]
    assert femur.parameters["seed"] == 0 and femur.parameters["alignment"]["method"] == "none"
    with pytest.raises(ParameterError, match="tibia"):
        compare_bones({"femur": good}, {"femur": good, "tibia": good})
    with pytest.raises(NotWatertightError, match="^patella: "):
        compare_bones({"patella": good}, {"patella": open_sphere()}, **FAST)
