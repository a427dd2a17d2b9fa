"""Weight interpolation of two students (WiSE-FT): exact end points, the average between,
refusal of different networks, and a file the reconstruction loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reconstruction.networks.student import StudentConfig
from reconstruction.training.interpolate import interpolate_students, main
from reconstruction.training.train_student import export_student, student_weights

from .test_trainers import TINY_STUDENT, student


@pytest.fixture()
def two_students(tmp_path: Path, toy_cases) -> tuple[Path, Path]:
    start = student(tmp_path, toy_cases, seed=1)
    start.train_step()
    start.save(tmp_path / "start_run.pt")
    shipped = export_student(tmp_path / "start_run.pt", tmp_path / "start.pt")
    tuned = student(tmp_path, toy_cases, init=str(shipped), out=str(tmp_path / "end.pt"))
    for _ in range(5):
        tuned.train_step()
    tuned.save()
    return shipped, tmp_path / "end.pt"


def test_interpolation_ends_are_the_students_and_the_middle_their_mean(
    tmp_path: Path, two_students
) -> None:
    start, end = two_students
    first, last = student_weights(start), student_weights(end)
    assert any(not torch.equal(first[k], last[k]) for k in first)  # fine-tuning moved them
    for weight, expect in [
        (0.0, first),
        (1.0, last),
        (0.5, {k: (first[k] + last[k]) / 2 for k in first}),
    ]:
        path = interpolate_students(start, end, weight, tmp_path / f"m{weight}.pt")
        got = student_weights(path)
        for name, tensor in expect.items():  # the shipped file stores float16
            torch.testing.assert_close(got[name], tensor.half().float(), rtol=0, atol=0)


def test_interpolated_file_records_its_sources_and_loads_for_reconstruction(
    tmp_path: Path, two_students
) -> None:
    from reconstruction.reconstruct_xray import load_student
    from reconstruction.training.checkpoints import load_checkpoint

    start, end = two_students
    assert main([str(start), str(end), "--weight", "0.25", "--out", str(tmp_path / "m.pt")]) == 0
    record = load_checkpoint(tmp_path / "m.pt")["metadata"]["interpolated"]
    assert record["weight_of_end"] == 0.25 and record["end"] == str(end)
    model, _ = load_student(str(tmp_path / "m.pt"))
    assert model.config == StudentConfig.from_dict(load_checkpoint(start)["config"])


def test_interpolation_refuses_other_networks_and_weights_outside_0_1(
    tmp_path: Path, toy_cases, two_students
) -> None:
    start, _ = two_students
    other = student(tmp_path, toy_cases, config={**TINY_STUDENT.to_dict(), "hidden": [24]})
    other.save(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="another network"):
        interpolate_students(start, tmp_path / "other.pt", 0.5, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_students(start, start, 1.5, tmp_path / "x.pt")
    with pytest.raises(SystemExit):
        main([str(start), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")])
    assert not (tmp_path / "x.pt").exists()  # nothing half-written


def test_interpolation_refuses_a_file_that_is_no_model(tmp_path: Path, two_students) -> None:
    start, _ = two_students
    (tmp_path / "garbage.pt").write_text("not a model")
    with pytest.raises(ValueError, match="not a readable model file"):
        interpolate_students(start, tmp_path / "garbage.pt", 0.5, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
