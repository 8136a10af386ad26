"""Checkpoints: the one place they are written and read (Lightning's and ours alike).

A checkpoint holds ``state_dict``, ``hyper_parameters`` and ``uad_method`` (the registered
name), so :func:`load_method` rebuilds the method with no other record. The harness saves
weights only (parts are the unit of ``--resume``; optimiser state is never read back).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .method import AnomalyMethod
from .registry import get_method


def save(method: AnomalyMethod, path: Path) -> Path:
    """A checkpoint for methods that never go through a Trainer (statistics only)."""
    torch.save({"state_dict": method.state_dict(), "hyper_parameters": dict(method.hparams),
                "uad_method": method.name}, path)
    return Path(path)


def _read(path: Path, map_location: str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def load_weights(method: AnomalyMethod, path: Path) -> AnomalyMethod:
    """Load a checkpoint's weights into an existing method (e.g. the best of a stage)."""
    method.load_state_dict(_read(path)["state_dict"])
    return method


def load_method(path: Path, map_location: str = "cpu") -> AnomalyMethod:
    """The registered method saved in ``path``, with its hyperparameters and weights."""
    ckpt = _read(path, map_location)
    name = ckpt.get("uad_method")
    if not name:
        raise ValueError(f"{path}: not a UAD-Bench checkpoint (no 'uad_method' entry)")
    method = get_method(name)(**ckpt.get("hyper_parameters", {}))
    method.load_state_dict(ckpt["state_dict"])
    return method.eval()
