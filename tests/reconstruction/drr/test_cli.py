"""The `python -m reconstruction.drr` contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reconstruction.drr.__main__ import main
from reconstruction.drr.geometry import project_points
from reconstruction.io import read_xray_pair, write_dicom_series, write_nifti, write_nrrd
from reconstruction.volume import Volume

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ct(tmp_path: Path) -> Volume:
    array = np.full((32, 32, 24), -1000.0, dtype=np.float32)
    array[6:26, 6:26, 2:22] = 40.0
    array[20, 10, 12] = 3000.0  # bead, off-centre
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [-20.0, 10.0, 5.0]
    return Volume(array, affine)


@pytest.mark.parametrize("fmt", ["nifti", "nrrd", "dicom"])
def test_cli_writes_the_documented_layout(tmp_path: Path, ct: Volume, fmt: str) -> None:
    source = {
        "nifti": lambda: write_nifti(ct, tmp_path / "ct.nii.gz"),
        "nrrd": lambda: write_nrrd(ct, tmp_path / "ct.nrrd"),
        "dicom": lambda: write_dicom_series(ct, tmp_path / "ct_dicom") and tmp_path / "ct_dicom",
    }[fmt]()
    out = tmp_path / "out"
    assert (
        main(
            [
                "--ct",
                str(source),
                "--separation",
                "45",
                "--size",
                "64",
                "--seed",
                "1",
                "--dose",
                "1e4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for name in ("view1.npy", "view2.npy", "view1.png", "view2.png", "geometry.json"):
        assert (out / name).is_file()
    document = json.loads((out / "geometry.json").read_text())
    view = document["views"][0]
    for key in (
        "projection_matrix",
        "source_isocentre_mm",
        "source_detector_mm",
        "pixel_spacing_mm",
        "detector_size_px",
        "angle_deg",
        "isocentre_mm",
    ):
        assert key in view
    centre = ct.index_to_patient((np.asarray(ct.shape) - 1) / 2.0)
    assert np.allclose(view["isocentre_mm"], centre)
    pair = read_xray_pair(out)
    assert pair.separation_deg == pytest.approx(45.0)
    # The bead is the brightest spot, where the matrix says.
    bead = ct.index_to_patient([20, 10, 12])
    for xray_view in pair.views:
        u, v = project_points(xray_view.projection_matrix, [bead])[0]
        image = xray_view.image
        row, column = np.unravel_index(np.argmax(image), image.shape)
        assert abs(column - u) <= 1.0 and abs(row - v) <= 1.0


def test_cli_is_seeded(tmp_path: Path, ct: Volume) -> None:
    write_nifti(ct, tmp_path / "ct.nii.gz")
    runs = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        main(
            [
                "--ct",
                str(tmp_path / "ct.nii.gz"),
                "--separation",
                "90",
                "--size",
                "32",
                "--seed",
                seed,
                "--out",
                str(tmp_path / name),
            ]
        )
        runs.append(np.load(tmp_path / name / "view1.npy"))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--separation", "120"], "outside the supported 30-90 degree range"),
        (["--separation", "90", "--size", "2"], "--size must be between"),
        (["--separation", "90", "--dose", "-5"], "dose must be a positive"),
    ],
)
def test_cli_bad_arguments_exit_nonzero_with_one_line(
    tmp_path: Path, ct: Volume, capsys, arguments: list[str], message: str
) -> None:
    write_nifti(ct, tmp_path / "ct.nii.gz")
    code = main(["--ct", str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "out"), *arguments])
    error = capsys.readouterr().err
    assert code != 0 and message in error and error.count("\n") == 1


def test_cli_rejects_a_label_map_and_a_2d_image(tmp_path: Path, capsys) -> None:
    labels = Volume(
        np.zeros((8, 8, 8), np.uint8) + np.arange(8, dtype=np.uint8)[:, None, None],
        np.eye(4),
        modality="LABELS",
    )
    write_nifti(labels, tmp_path / "labels.nii.gz")
    assert (
        main(
            [
                "--ct",
                str(tmp_path / "labels.nii.gz"),
                "--separation",
                "90",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "modality is LABELS" in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconstruction.drr",
            "--ct",
            str(tmp_path / "missing.nii.gz"),
            "--separation",
            "90",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no such file or directory: {tmp_path / 'missing.nii.gz'}"
    ]


def test_cli_centres_the_beam_on_the_bones_when_asked(tmp_path: Path, ct: Volume) -> None:
    from reconstruction.drr.simulate import bone_centre

    source = write_nifti(ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    common = ["--ct", str(source), "--separation", "90", "--size", "32", "--noiseless"]
    assert main([*common, "--centre-on-bones", "--out", str(out)]) == 0
    view = json.loads((out / "geometry.json").read_text())["views"][0]
    assert np.allclose(view["isocentre_mm"], bone_centre(ct))
    volume_centre = ct.index_to_patient((np.asarray(ct.shape) - 1) / 2.0)
    assert not np.allclose(view["isocentre_mm"], volume_centre)  # the bead is off-centre
    both = [*common, "--centre-on-bones", "--isocentre", "0", "0", "0", "--out", str(out)]
    assert main(both) == 2
