"""Bad input on the command line: non-zero exit and one line on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
import trimesh

from evaluation.alignment.__main__ import main


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_missing_file(tmp_path: Path, capsys) -> None:
    code, err = _run(["--femur", str(tmp_path / "no.stl"), "--tibia", "x.stl"], capsys)
    assert code != 0 and err.count("\n") == 1 and "no such file" in err


def test_wrong_suffix(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "femur.txt"
    bad.write_text("hello")
    code, err = _run(["--femur", str(bad), "--tibia", str(bad)], capsys)
    assert code != 0 and "STL/PLY/OBJ" in err and err.count("\n") == 1


def test_garbage_mesh(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "femur.stl"
    bad.write_bytes(b"\x00garbage" * 3)
    code, err = _run(["--femur", str(bad), "--tibia", str(bad)], capsys)
    assert code != 0 and err.startswith("error:") and err.count("\n") == 1


def test_metres_instead_of_mm(tmp_path: Path, capsys) -> None:
    small = tmp_path / "femur.stl"
    trimesh.creation.icosphere(subdivisions=2, radius=0.02).export(small)
    code, err = _run(["--femur", str(small), "--tibia", str(small)], capsys)
    assert code != 0 and "mm" in err


def test_bad_side_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--femur", "a.stl", "--tibia", "b.stl", "--side", "middle"])
    assert info.value.code != 0
