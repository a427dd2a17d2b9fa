"""What the teacher's and the student's trainers share: the step counter, the wall time, the
loss history, atomic checkpoints that resume to the identical next step, and the logged,
checkpointed, time-limited fit loop. A trainer sets `kind`, `run`, `model`, `optimiser` and
`rng` and implements `train_step`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from reconstruction.training.checkpoints import (
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)


class LoopRun(Protocol):
    """The fields of a run (a dataclass) that the loop reads."""

    out: str
    steps: int
    log_every: int
    checkpoint_every: int
    time_limit_min: float


class TrainingLoop:
    kind: str
    run: LoopRun
    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    rng: np.random.Generator

    def _start(self) -> None:
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []

    def train_step(self) -> float:
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """What a trainer stores besides the loop's own state (e.g. the network config)."""
        return {}

    def restore_extra_state(self, state: dict[str, Any]) -> None:
        """Take back what extra_state stored (on resume)."""

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run": asdict(self.run),  # type: ignore[call-overload]
            **self.extra_state(),
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed,
            "rng": rng_state(self.rng),
            "history": self.history,
        }

    def save(self, path: str | Path | None = None) -> Path:
        return save_checkpoint(path or self.run.out, self.state())

    def resume(self, path: str | Path) -> None:
        state = load_checkpoint(path)
        if state.get("kind") != self.kind:  # e.g. a teacher's checkpoint given to the student
            raise ValueError(f"{path} is a {state.get('kind')!r} checkpoint, not {self.kind!r}")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_s"])
        self.history = list(state["history"])
        self.rng = restore_rng(state["rng"])
        self.restore_extra_state(state)

    def resume_if_saved(self) -> bool:
        """Resume from run.out when a checkpoint is there (the CLIs' --resume)."""
        if not Path(self.run.out).exists():
            return False
        self.resume(self.run.out)
        return True

    def fit(self, log: Callable[[str], Any] = print) -> None:
        """Steps until run.steps or run.time_limit_min of training wall time (counted across
        resumes), a history entry and a log line every log_every steps, a checkpoint every
        checkpoint_every and at the end."""
        start = time.perf_counter() - self.elapsed
        window: list[float] = []
        while self.step < self.run.steps:
            window.append(self.train_step())
            self.elapsed = time.perf_counter() - start
            if self.step % self.run.log_every == 0 or self.step == self.run.steps:
                mean = float(np.mean(window))
                window.clear()
                self.history.append({"step": self.step, "loss": mean, "elapsed_s": self.elapsed})
                rate = self.elapsed / self.step
                log(
                    f"step {self.step}/{self.run.steps} loss {mean:.4f} "
                    f"{rate:.2f} s/step eta {(self.run.steps - self.step) * rate / 60:.1f} min"
                )
            if self.step % self.run.checkpoint_every == 0:
                self.save()
            if self.elapsed > self.run.time_limit_min * 60:
                log(f"time limit reached at step {self.step}")
                break
        self.save()
