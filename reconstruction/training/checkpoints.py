"""Atomic checkpoints with everything needed for an identical resumed next step."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """torch.save to a temporary file in the same directory, then os.replace (atomic)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        torch.save(payload, temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a model or checkpoint file (provenance)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def rng_state(generator: np.random.Generator) -> dict[str, Any]:
    """Both random streams of a training loop (numpy sampling, torch init/dropout)."""
    return {"numpy": generator.bit_generator.state, "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> np.random.Generator:
    generator = np.random.default_rng()
    generator.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    return generator


def shipped_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights stored as float16 for the shipped file (loaded back as float32)."""
    return {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict({k: v.float() for k, v in state.items()})


def export_model(
    model: torch.nn.Module, config: dict[str, Any], path: str | os.PathLike[str], metadata: dict
) -> Path:
    """The shipped file: float16 weights, the network config and provenance metadata."""
    return save_checkpoint(
        path, {"config": config, "weights": shipped_weights(model), "metadata": metadata}
    )
