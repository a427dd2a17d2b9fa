"""Teacher calibration: the decision rule, the per-bone offset search and its data split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reconstruction.segmentation.teacher import bone_decision
from reconstruction.training.calibrate_teacher import (
    GATES,
    OFFSETS,
    TEST_CASES,
    Margins,
    best_offsets,
    dice_by_gate,
    dice_by_offset,
    validation_seeds,
    voxel_margins,
    write_offsets,
)
from reconstruction.training.checkpoints import load_checkpoint
from reconstruction.training.data import split_seeds
from reconstruction.training.train_teacher import TeacherRun, load_teacher, teacher_seed_groups

SHIPPED = Path(__file__).resolve().parents[3] / "reconstruction" / "models" / "teacher.pt"


def test_zero_offsets_are_the_argmax_and_an_offset_moves_only_its_bone() -> None:
    logits = torch.randn(5000, 5, generator=torch.Generator().manual_seed(0))
    zero = bone_decision(logits, torch.zeros(4))
    np.testing.assert_array_equal(zero, logits.argmax(-1).numpy())
    femur_up = bone_decision(logits, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    changed = femur_up != zero
    assert changed.any() and (femur_up[changed] == 1).all() and (zero[changed] == 0).all()


def _sphere_case(bias: float, prior_radius: float | None = None) -> Margins:
    """A ball of radius 12 voxels whose margin is its signed depth minus `bias`: a network
    that calls `bias` voxels of the surface background. With `prior_radius`, the classical
    labels are a ball of that radius."""
    grid = np.indices((40, 40, 40)).transpose(1, 2, 3, 0) - 19.5
    radius = np.linalg.norm(grid, axis=-1)
    depth = 12.0 - radius
    logits = np.zeros((*depth.shape, 5), np.float32)
    logits[..., 1] = depth - bias
    logits[..., 2:] = -50.0
    prior = None if prior_radius is None else (radius < prior_radius).astype(np.uint8)
    return voxel_margins(logits, (depth > 0).astype(np.uint8), prior)


def test_the_search_undoes_a_known_bias_and_keeps_zero_when_it_is_flat() -> None:
    tables = [dice_by_offset(_sphere_case(bias), OFFSETS) for bias in (0.9, 1.0, 1.1)]
    chosen, median = best_offsets(tables, OFFSETS)
    assert chosen[0] == pytest.approx(1.0, abs=0.25)
    assert median[np.argmin(np.abs(OFFSETS - chosen[0])), 0] > 0.99
    # Absent bones have a flat (zero) curve: the rule keeps the network's own decision.
    assert chosen[1:].tolist() == [0.0, 0.0, 0.0]


def test_the_gate_search_keeps_good_classical_labels_where_the_network_is_unsure() -> None:
    # The network misses a 2-voxel shell (unsure there: margin within 2 of zero) and the
    # classical labels are right: a gate of at least 2 restores them.
    cases = [_sphere_case(2.0, prior_radius=12.0) for _ in range(3)]
    tables = [dice_by_gate(case, np.zeros(4), GATES) for case in cases]
    gates, median = best_offsets(tables, GATES)
    assert gates[0] >= 2.0 and median[list(GATES).index(gates[0]), 0] == pytest.approx(1.0)
    assert median[0, 0] < 0.9  # no gate: the network's own, too small ball
    assert gates[1:].tolist() == [0.0, 0.0, 0.0]
    # Bad classical labels (a ball of radius 8) and a good network: no gate is best.
    good = [_sphere_case(0.0, prior_radius=8.0)]
    assert best_offsets([dice_by_gate(good[0], np.zeros(4), GATES)], GATES)[0][0] == 0.0


def test_validation_seeds_are_neither_trained_on_nor_in_the_test_table() -> None:
    validation = set(validation_seeds(6))
    split = split_seeds(2026, 64, TEST_CASES)
    assert len(validation) == 6
    assert not validation & set(split["train"]) and not validation & set(split["test"])
    extra = teacher_seed_groups(TeacherRun(n_extra=64))[1][0]
    assert not validation & set(extra)


def test_written_offsets_reach_the_loaded_model(tmp_path: Path) -> None:
    copy = tmp_path / "teacher.pt"
    copy.write_bytes(SHIPPED.read_bytes())
    write_offsets(copy, [0.5, -1.0, 0.25, 0.0], {"validation_seeds": [1, 2]}, [1, 2, 0, 0.5])
    assert load_teacher(copy).config.bone_offsets == (0.5, -1.0, 0.25, 0.0)
    assert load_teacher(copy).config.bone_gates == (1, 2, 0, 0.5)
    assert load_checkpoint(copy)["metadata"]["calibration"] == {"validation_seeds": [1, 2]}


def test_the_shipped_teacher_carries_its_calibration_and_provenance() -> None:
    model = load_teacher(SHIPPED)
    calibration = load_checkpoint(SHIPPED)["metadata"]["calibration"]
    assert len(model.config.bone_offsets) == 4 and any(model.config.bone_offsets)
    assert len(model.config.bone_gates) == 4 and any(model.config.bone_gates)
    assert calibration["validation_seeds"] == validation_seeds(6)
    assert {case.split(":")[0] for case in calibration["cases"]} <= {
        str(seed) for seed in validation_seeds(6)
    }


def test_missing_model_files_are_refused_with_a_clear_message(tmp_path: Path, capsys) -> None:
    from reconstruction.training import calibrate_teacher, train_teacher

    missing = tmp_path / "nothing.pt"
    with pytest.raises(SystemExit) as exit_info:
        calibrate_teacher.main(["--model", str(missing)])
    assert exit_info.value.code == 2 and "no model file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train_teacher.main(["--out", str(tmp_path / "run.pt"), "--init", str(missing)])
    assert exit_info.value.code == 2 and "no model file" in capsys.readouterr().err
