"""Tiny trainers for a few steps: loss decreases, resume is exact, runs are seed-deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from reconstruction.networks.student import StudentConfig
from reconstruction.networks.teacher import TeacherConfig
from reconstruction.training.data import split_seeds
from reconstruction.training.teacher_data import TeacherCase
from reconstruction.training.train_student import StudentData, StudentRun, StudentTrainer
from reconstruction.training.train_teacher import TeacherRun, TeacherTrainer, teacher_targets

from .conftest import MASTER, N_TRAIN

TINY_STUDENT = StudentConfig(
    widths=(4, 8, 8), n_levels=2, view_embedding=16, hidden=(16,), feature_dim=8
)
TINY_TEACHER = TeacherConfig(
    widths=(4, 8), n_levels=1, coarse_mm=4.0, patch_mm=2.0, hidden=(16,), feature_dim=8
)


def student(tmp_path: Path, cases, teacher=None, **changes) -> StudentTrainer:
    settings = {
        "out": str(tmp_path / "student.pt"),
        "steps": 40,
        "batch": 2,
        "points": 256,
        "lr": 3e-3,
        "master_seed": MASTER,
        "n_train": N_TRAIN,
        "labelled_fraction": 0.5,
        "config": TINY_STUDENT.to_dict(),
    }
    run = StudentRun(**{**settings, **changes})
    labelled = set(sorted(cases)[:2])
    return StudentTrainer(run, StudentData.from_cases(run, cases, labelled, teacher))


def test_student_loss_decreases(tmp_path: Path, toy_cases) -> None:
    trainer = student(tmp_path, toy_cases)
    losses = [trainer.train_step() for _ in range(40)]
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])


def test_student_resume_gives_the_identical_next_step(tmp_path: Path, toy_cases) -> None:
    first = student(tmp_path, toy_cases)
    for _ in range(3):
        first.train_step()
    first.save(tmp_path / "mid.pt")
    expected = first.train_step()
    resumed = student(tmp_path, toy_cases, seed=123)  # a different init, overwritten by resume
    resumed.resume(tmp_path / "mid.pt")
    assert resumed.train_step() == expected
    for a, b in zip(first.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_student_runs_are_deterministic_by_seed(tmp_path: Path, toy_cases) -> None:
    runs = [[student(tmp_path, toy_cases).train_step() for _ in range(1)] for _ in range(2)]
    a, b = student(tmp_path, toy_cases), student(tmp_path, toy_cases)
    assert [a.train_step() for _ in range(3)] == [b.train_step() for _ in range(3)]
    assert runs[0] == runs[1]


def teacher_cases(toy_cases):
    """The toy cases as teacher cases; the prior is a plain threshold standing in for the
    classical method, which refuses a 24-voxel toy."""
    priors = {seed: (case.ct > 300).astype(np.uint8) for seed, case in toy_cases.items()}
    cases = {
        (seed, "clean"): TeacherCase(
            seed, "clean", case.ct, case.ct_affine, priors[seed], case.points, case.labels
        )
        for seed, case in toy_cases.items()
    }
    return cases, sorted(cases)[:2], priors


def test_teacher_trains_and_its_targets_drive_distillation(tmp_path: Path, toy_cases) -> None:
    run = TeacherRun(
        out=str(tmp_path / "teacher.pt"),
        steps=30,
        crop_mm=64.0,
        points=256,
        lr=5e-3,
        master_seed=MASTER,
        n_train=N_TRAIN,
        labelled_fraction=0.5,
        config=TINY_TEACHER.to_dict(),
    )
    cases, labelled, priors = teacher_cases(toy_cases)
    trainer = TeacherTrainer(run, cases, labelled)
    assert len(trainer.labelled) == 2 and len(trainer.unlabelled) == 2
    losses = [trainer.train_step() for _ in range(30)]
    assert np.mean(losses[-6:]) < np.mean(losses[:6])
    trainer.save()
    tuned = TeacherTrainer(run, cases, labelled)
    tuned.initialise_from(run.out)  # fine-tuning starts from the weights, at step 0
    for mine, theirs in zip(tuned.model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    assert tuned.step == 0 and not tuned.optimiser.state
    resumed = TeacherTrainer(run, cases, labelled)
    resumed.resume(run.out)
    assert resumed.train_step() == trainer.train_step()
    targets = teacher_targets(trainer.model, toy_cases, priors=priors)
    seed = next(iter(toy_cases))
    assert targets[seed]["probabilities"].shape == (2000, 5)
    assert targets[seed]["features"].shape == (2000, 8)
    distilled = student(tmp_path, toy_cases, teacher=targets)
    losses = [distilled.train_step() for _ in range(25)]
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])


def test_teacher_extra_seeds_never_meet_the_shared_split_or_its_held_out_seeds() -> None:
    from reconstruction.training.train_teacher import teacher_seed_groups

    run = TeacherRun(master_seed=MASTER, n_train=N_TRAIN, n_extra=5)
    (shared, _), (extra, _) = teacher_seed_groups(run)
    split = split_seeds(MASTER, N_TRAIN, 50)
    assert shared == split["train"] and len(extra) == 5
    assert not set(extra) & (set(split["train"]) | set(split["test"]))


def test_student_records_the_view_grid_it_trains_on(tmp_path: Path, toy_cases) -> None:
    from reconstruction.reconstruct_xray import load_student
    from reconstruction.training.train_student import export_student

    trainer = student(tmp_path, toy_cases, view_px=256)
    assert trainer.model.config.view_size == 256
    assert trainer.model.config.iso_pixel_mm == 0.575
    trainer.train_step()
    trainer.save()
    shipped = export_student(tmp_path / "student.pt", tmp_path / "shipped.pt")
    model, _ = load_student(str(shipped))
    assert (model.config.view_size, model.config.iso_pixel_mm) == (256, 0.575)
    assert abs(model.config.field_mm - 147.2) < 1e-6


def one_hot_teacher(cases, stride: int = 3) -> dict:
    """Teacher targets that are the exact labels of every `stride`-th bank point."""
    targets = {}
    for seed, case in cases.items():
        index = np.arange(0, len(case.points), stride)
        probabilities = np.eye(3, dtype=np.float32)[case.labels[index]]
        targets[seed] = {
            "index": torch.from_numpy(index),
            "probabilities": torch.from_numpy(probabilities),
            "features": torch.zeros(len(index), 8),
        }
    return targets


def test_distillation_batches_pair_each_point_with_its_own_teacher_target(
    tmp_path: Path, toy_cases
) -> None:
    trainer = student(tmp_path, toy_cases, teacher=one_hot_teacher(toy_cases))
    batch = trainer.data.sample(np.random.default_rng(0))
    assert torch.equal(batch.teacher_probabilities.argmax(-1), batch.labels.long())


def test_distillation_draws_only_teacher_labelled_points_inside_the_pairs_field(
    tmp_path: Path, toy_cases
) -> None:
    data = student(tmp_path, toy_cases).data
    seed = sorted(toy_cases)[0]
    data.teacher = {seed: {"index": torch.tensor([0, 3, 6, 9, 12])}}
    restricted = data._restricted_to_teacher_targets({seed: [np.array([3, 4, 9, 13])]})
    assert restricted[seed][0].tolist() == [1, 3]  # positions of bank points 3 and 9


def test_student_fine_tunes_from_a_shipped_file_or_a_checkpoint(tmp_path: Path, toy_cases) -> None:
    from reconstruction.training.train_student import export_student, student_weights

    source = student(tmp_path, toy_cases, seed=7)
    for _ in range(30):
        source.train_step()
    source.save(tmp_path / "source.pt")
    shipped = export_student(tmp_path / "source.pt", tmp_path / "shipped.pt")
    for path in (tmp_path / "source.pt", shipped):
        tuned = student(tmp_path, toy_cases, init=str(path))
        expected = student_weights(path)
        assert tuned.step == 0 and not tuned.optimiser.state  # fresh optimiser and schedule
        for name, tensor in tuned.model.state_dict().items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
    # a training checkpoint keeps float32, the shipped file float16: both start near the source
    start = dict(source.model.state_dict())
    for name, tensor in student_weights(shipped).items():
        torch.testing.assert_close(tensor, start[name], rtol=2e-3, atol=2e-3)
    loss = student(tmp_path, toy_cases, init=str(shipped)).train_step()
    fresh = student(tmp_path, toy_cases).train_step()
    assert loss < 0.9 * fresh  # it starts trained (both see the same first batch)


def test_student_refuses_to_fine_tune_another_network(tmp_path: Path, toy_cases) -> None:
    import pytest

    source = student(tmp_path, toy_cases)
    source.save(tmp_path / "source.pt")
    wider = {**TINY_STUDENT.to_dict(), "hidden": [24]}
    with pytest.raises(ValueError, match="another network"):
        student(tmp_path, toy_cases, init=str(tmp_path / "source.pt"), config=wider)
    with pytest.raises(ValueError, match="another network"):  # same layers, other view grid
        student(tmp_path, toy_cases, init=str(tmp_path / "source.pt"), view_px=64)
    teacher_file = tmp_path / "teacher.pt"
    torch.save({"kind": "teacher-training", "model": {}}, teacher_file)
    with pytest.raises(ValueError, match="neither"):
        student(tmp_path, toy_cases, init=str(teacher_file))


def test_fine_tuning_is_a_cli_option_recorded_in_the_checkpoint(tmp_path: Path, toy_cases) -> None:
    from reconstruction.training.checkpoints import file_sha256, load_checkpoint
    from reconstruction.training.train_student import export_student, parse_args

    source = student(tmp_path, toy_cases, out=str(tmp_path / "source.pt"))
    source.save()
    tiny = json.dumps(TINY_STUDENT.to_dict())
    start = str(tmp_path / "source.pt")
    run, _, _ = parse_args(["--init", start, "--lr", "3e-4", "--config", tiny])
    assert (run.init, run.lr) == (start, 3e-4)
    assert parse_args([])[0].init is None
    tuned = student(tmp_path, toy_cases, init=str(tmp_path / "source.pt"))
    tuned.save()
    assert load_checkpoint(tmp_path / "student.pt")["run"]["init"] == str(tmp_path / "source.pt")
    # the start's digest survives the start file being replaced (e.g. by its successor)
    digest = file_sha256(tmp_path / "source.pt")
    (tmp_path / "source.pt").unlink()
    shipped = export_student(tmp_path / "student.pt", tmp_path / "shipped.pt")
    assert load_checkpoint(shipped)["metadata"]["init_sha256"] == digest
    source.save(tmp_path / "plain.pt")  # a run from scratch records none
    assert "init_sha256" not in load_checkpoint(tmp_path / "plain.pt")
    # resuming keeps the digest of the start the run began from
    (tmp_path / "source.pt").write_bytes(b"another file now")
    resumed = student(tmp_path, toy_cases)
    resumed.resume(tmp_path / "student.pt")
    assert resumed.init_sha256 == digest


def test_fine_tuning_cli_refuses_a_missing_unreadable_or_other_start(
    tmp_path: Path, toy_cases, capsys
) -> None:
    import pytest

    from reconstruction.training.train_student import export_student, parse_args

    (tmp_path / "garbage.pt").write_text("not a model")
    student(tmp_path, toy_cases, out=str(tmp_path / "source.pt")).save()
    shipped = export_student(tmp_path / "source.pt", tmp_path / "shipped.pt")
    for start, message in [
        (tmp_path / "missing.pt", "No such file"),
        (tmp_path / "garbage.pt", "not a readable model file"),
        (shipped, "another network"),  # the CLI's default network is not the tiny one
    ]:
        with pytest.raises(SystemExit):
            parse_args(["--init", str(start)])
        assert message in capsys.readouterr().err
    run, _, _ = parse_args(["--init", str(shipped), "--config", json.dumps(TINY_STUDENT.to_dict())])
    assert run.init == str(shipped)
