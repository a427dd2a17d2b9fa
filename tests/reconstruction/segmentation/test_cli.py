"""The segment_ct command line: outputs for a knee, status 2 and one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import trimesh

from reconstruction.io import write_nifti
from reconstruction.phantoms.generator import PhantomCase
from reconstruction.segment_ct import main
from reconstruction.volume import Volume

REPO = Path(__file__).resolve().parents[3]


def test_cli_writes_four_meshes_and_a_summary(tmp_path: Path, right_case: PhantomCase) -> None:
    ct_path = write_nifti(right_case.ct, tmp_path / "knee.nii.gz")
    out = tmp_path / "result"
    assert main([str(ct_path), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "classical"
    assert {"segment", "identify", "read"} <= set(summary["timings_s"])
    for bone in ("femur", "tibia", "fibula", "patella"):
        mesh = trimesh.load(out / f"{bone}.stl", force="mesh")
        info = summary["bones"][bone]
        assert info["watertight"] and info["faces"] == len(mesh.faces)
        assert info["voxel_count"] > 0 and info["mesh_volume_mm3"] > 0
        # patient coordinates of the CT: the centre matches the phantom's exact mesh
        assert np.linalg.norm(mesh.centroid - right_case.meshes[bone].centroid) < 1.5, bone


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reconstruction.segment_ct", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_cli_refuses_a_non_knee_and_a_label_map(tmp_path: Path) -> None:
    shape = (60, 60, 80)
    i, j, _ = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    rod = ((i - 30) ** 2 + (j - 30) ** 2 <= 20**2).astype(np.float32)
    water = Volume(rod * 1000.0 - 1000.0, np.eye(4), "CT")
    labels = Volume(rod.astype(np.uint8), np.eye(4), "LABELS")
    for name, volume, message in (
        ("water.nii.gz", water, "no bone"),
        ("labels.nii.gz", labels, "CT is required"),
    ):
        path = write_nifti(volume, tmp_path / name)
        result = _run([str(path), "--out", str(tmp_path / "out")])
        assert result.returncode == 2, result.stderr
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(error_lines) == 1 and message in error_lines[0]
        assert not (tmp_path / "out").exists()


def test_cli_teacher_method_writes_meshes_and_refuses_a_non_knee(
    tmp_path: Path, right_case: PhantomCase
) -> None:
    ct_path = write_nifti(right_case.ct, tmp_path / "knee.nii.gz")
    out = tmp_path / "teacher"
    assert main([str(ct_path), "--out", str(out), "--method", "teacher"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "teacher" and "teacher" in summary["timings_s"]
    for bone in ("femur", "tibia", "fibula", "patella"):
        mesh = trimesh.load(out / f"{bone}.stl", force="mesh")
        assert mesh.is_watertight, bone
        # The teacher's known weakness: a thin false shell along part of the tibial shaft
        # (model card), which moves that centroid by about 1.6 mm on this phantom.
        limit = 2.5 if bone == "tibia" else 1.5
        assert np.linalg.norm(mesh.centroid - right_case.meshes[bone].centroid) < limit, bone
    shape = (60, 60, 80)
    i, j, _ = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    rod = ((i - 30) ** 2 + (j - 30) ** 2 <= 20**2).astype(np.float32)
    path = write_nifti(Volume(rod * 1000.0 - 1000.0, np.eye(4), "CT"), tmp_path / "rod.nii.gz")
    result = _run([str(path), "--out", str(tmp_path / "rod"), "--method", "teacher"])
    assert result.returncode == 2 and "no bone" in result.stderr
    assert not (tmp_path / "rod").exists()
