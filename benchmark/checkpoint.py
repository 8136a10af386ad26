"""Rebuild a method from a checkpoint written by the harness (Lightning's or ours)."""
from __future__ import annotations

from pathlib import Path

import torch

from .method import AnomalyMethod
from .registry import get_method


def load_method(path: Path, map_location: str = "cpu") -> AnomalyMethod:
    """The registered method saved in ``path``, with its hyperparameters and weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    name = ckpt.get("uad_method")
    if not name:
        raise ValueError(f"{path}: not a UAD-Bench checkpoint (no 'uad_method' entry)")
    method = get_method(name)(**ckpt.get("hyper_parameters", {}))
    method.load_state_dict(ckpt["state_dict"])
    return method.eval()
