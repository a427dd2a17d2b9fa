"""The shared training loop on a one-layer regression: cadence, time limit, exact resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from reconstruction.training.checkpoints import load_checkpoint
from reconstruction.training.loop import TrainingLoop


@dataclass
class LineRun:
    out: str
    steps: int = 12
    log_every: int = 5
    checkpoint_every: int = 4
    time_limit_min: float = 60.0


class LineTrainer(TrainingLoop):
    kind = "line-training"

    def __init__(self, run: LineRun, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.run = run
        self.model = torch.nn.Linear(3, 1)
        self.optimiser = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.rng = np.random.default_rng([seed, 1])
        self.saved_at: list[int] = []
        self._start()

    def train_step(self) -> float:
        x = torch.from_numpy(self.rng.normal(size=(16, 3))).float()
        y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(16, 1)
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.step += 1
        return float(loss.detach())

    def extra_state(self) -> dict:
        return {"note": "line"}

    def save(self, path: str | Path | None = None) -> Path:
        self.saved_at.append(self.step)
        return super().save(path)


def test_fit_logs_checkpoints_and_stops_at_the_step_count(tmp_path: Path) -> None:
    trainer = LineTrainer(LineRun(out=str(tmp_path / "line.pt")))
    lines: list[str] = []
    trainer.fit(log=lines.append)
    assert trainer.step == 12
    assert [entry["step"] for entry in trainer.history] == [5, 10, 12]
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    assert trainer.saved_at == [4, 8, 12, 12]  # every 4 steps, then at the end
    assert lines[0].startswith("step 5/12 loss ") and "s/step eta" in lines[0]
    state = load_checkpoint(tmp_path / "line.pt")
    assert state["kind"] == "line-training" and state["note"] == "line"
    assert state["run"]["steps"] == 12 and state["step"] == 12


def test_fit_stops_at_the_time_limit_and_saves(tmp_path: Path) -> None:
    trainer = LineTrainer(LineRun(out=str(tmp_path / "line.pt"), time_limit_min=0.0))
    lines: list[str] = []
    trainer.fit(log=lines.append)
    assert trainer.step == 1 and lines == ["time limit reached at step 1"]
    assert load_checkpoint(tmp_path / "line.pt")["step"] == 1


def test_resume_continues_to_the_identical_run(tmp_path: Path) -> None:
    whole = LineTrainer(LineRun(out=str(tmp_path / "whole.pt")))
    whole.fit(log=lambda _: None)
    half = LineTrainer(LineRun(out=str(tmp_path / "half.pt"), steps=6))
    half.fit(log=lambda _: None)
    resumed = LineTrainer(LineRun(out=str(tmp_path / "half.pt")), seed=9)
    resumed.resume(tmp_path / "half.pt")
    assert resumed.step == 6 and resumed.elapsed > 0.0
    resumed.fit(log=lambda _: None)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the resumed run's history carries on from the saved one
    assert [entry["step"] for entry in resumed.history] == [5, 6, 10, 12]


def test_a_trainer_without_train_step_refuses() -> None:
    with pytest.raises(NotImplementedError):
        TrainingLoop().train_step()


def test_resume_refuses_another_trainers_checkpoint(tmp_path: Path) -> None:
    trainer = LineTrainer(LineRun(out=str(tmp_path / "line.pt"), steps=2))
    trainer.fit(log=lambda _: None)
    other = LineTrainer(LineRun(out=str(tmp_path / "line.pt")))
    other.kind = "teacher-training"
    with pytest.raises(ValueError, match="'line-training' checkpoint, not 'teacher-training'"):
        other.resume(tmp_path / "line.pt")
    assert other.step == 0  # nothing loaded


def test_resume_if_saved_only_when_the_checkpoint_exists(tmp_path: Path) -> None:
    fresh = LineTrainer(LineRun(out=str(tmp_path / "line.pt")))
    assert not fresh.resume_if_saved() and fresh.step == 0
    fresh.run.steps = 3
    fresh.fit(log=lambda _: None)
    again = LineTrainer(LineRun(out=str(tmp_path / "line.pt")))
    assert again.resume_if_saved() and again.step == 3
