"""``python -m evaluation.surface``: output, options, and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh

from evaluation.surface.__main__ import main

from .shapes import sphere

REPO = Path(__file__).resolve().parents[3]
KEYS = ("assd", "masd", "rms", "hd", "hd95", "nsd", "chamfer", "signed_mean", "dice", "iou")


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("meshes")
    paths = {}
    for name, mesh, suffix in (
        ("ref", sphere(20.0, 5), ".stl"),
        ("res", sphere(21.0, 5), ".ply"),
        ("res_obj", sphere(21.0, 5), ".obj"),
        ("res_glb", sphere(21.0, 5), ".glb"),
    ):
        paths[name] = folder / f"{name}{suffix}"
        mesh.export(paths[name])
    metres = sphere(20.0, 4)
    metres.apply_scale(0.001)
    paths["metres"] = folder / "metres.stl"
    metres.export(paths["metres"])
    opened = sphere(21.0, 4)
    paths["open"] = folder / "open.stl"
    trimesh.Trimesh(opened.vertices, opened.faces[5:]).export(paths["open"])
    return paths


def test_json_output_through_a_subprocess(meshes):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation.surface",
            str(meshes["ref"]),
            str(meshes["res"]),
            "--json",
            "--density",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for key in KEYS:
        assert key in out, key
    for key in ("assd", "masd", "rms", "hd", "hd95", "signed_mean"):
        assert out[key] == pytest.approx(1.0, rel=0.01)
    assert out["units"] == "mm"
    assert out["metric_units"]["chamfer"] == "mm^2"
    assert "pooled" in out["definitions"]["assd"] and "95th" in out["definitions"]["hd95"]
    assert "SQUARED" in out["definitions"]["chamfer"]
    params = out["parameters"]
    assert params["seed"] == 0 and params["density_per_mm2"]["reference"] == 2.0
    assert params["alignment"]["method"] == "none"
    assert params["convergence"]["converged"] is True


@pytest.mark.parametrize("result", ["res_obj", "res_glb"])
def test_formats_and_options(meshes, result, capsys):
    code = main(
        [
            str(meshes["ref"]),
            str(meshes[result]),
            "--json",
            "--tolerance",
            "0.5",
            "--samples",
            "5000",
            "--seed",
            "7",
            "--roi",
            "0",
            "0",
            "-5",
            "--roi-below",
            "10",
            "--roi-above",
            "10",
            "--no-convergence",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["nsd"] == 0.0  # every point 1 mm away, tolerance 0.5 mm
    assert out["parameters"]["seed"] == 7
    assert out["parameters"]["n_samples"]["reference"] == pytest.approx(5000, rel=0.05)
    assert out["parameters"]["roi"]["centre"] == [0.0, 0.0, -5.0] or out["parameters"]["roi"][
        "centre"
    ] == (0.0, 0.0, -5.0)
    assert out["hd"] == pytest.approx(1.0, rel=0.01)


def test_text_output_names_the_parameters(meshes, capsys):
    assert main([str(meshes["ref"]), str(meshes["res"]), "--density", "1", "--align", "icp"]) == 0
    out = capsys.readouterr().out
    assert "assd" in out and "hd95" in out and "mm^2" in out
    assert "seed 0" in out and "alignment icp" in out and "roi none" in out


def test_error_map_and_colorbar_files(meshes, tmp_path, capsys):
    glb, png = tmp_path / "map.glb", tmp_path / "bar.png"
    code = main(
        [
            str(meshes["ref"]),
            str(meshes["res"]),
            "--density",
            "1",
            "--no-convergence",
            "--error-map",
            str(glb),
            "--colorbar",
            str(png),
        ]
    )
    assert code == 0
    assert glb.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{ref}", "{missing}"], "no such file"),
        (["{ref}", "{metres}"], "cannot be a bone in millimetres"),
        (["{ref}", "{open}"], "not watertight"),
        (["{ref}", "{res}", "--grid", "0.5"], "voxel spacing"),
        (["{ref}", "{res}", "--density", "-1"], "density"),
        (["{ref}", "{res}", "--roi", "0", "0", "900"], "region of interest"),
        (["{ref}", "{res}", "--roi", "0", "0", "0", "--roi-axis", "0", "0", "0"], "axis"),
        (["{ref}", "{res}", "--error-map", "x.glb", "--no-signed"], "--error-map"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(meshes, args, message, capsys):
    paths = {k: str(v) for k, v in meshes.items()}
    paths["missing"] = str(Path(paths["ref"]).with_name("nope.stl"))
    code = main([a.format(**paths) for a in args])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err


def test_open_meshes_work_for_distances_only(meshes, capsys):
    assert (
        main([str(meshes["ref"]), str(meshes["open"]), "--json", "--no-volume", "--density", "1"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert "dice" not in out and out["assd"] == pytest.approx(1.0, rel=0.02)
