"""Checkpoints: the one place they are written and read (Lightning's and ours alike).

A checkpoint holds ``state_dict``, ``hyper_parameters`` and ``uad_method`` (the registered
name), so :func:`load_method` rebuilds the method with no other record. The harness saves
weights only (parts are the unit of ``--resume``; optimiser state is never read back).

Reading never runs code: checkpoints are loaded with ``torch.load(weights_only=True)``,
which unpickles tensors and plain values only, so a checkpoint in a run directory that
came from someone else cannot execute anything on this machine. Everything the harness
writes loads that way (hyperparameters are stored as plain values,
:func:`benchmark.hparams.plain_hparams`). A file that needs more is refused with :class:`UnsafeCheckpointError`;
``trust=True`` (the experiments' ``--trust-checkpoints``) loads it the old, unsafe way,
for checkpoints of your own made before this rule.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .method import AnomalyMethod

from .atomic import atomic_path
from .hparams import plain_hparams
from .registry import get_method


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding objects other than tensors and plain values."""


def save(method: AnomalyMethod, path: Path) -> Path:
    """A checkpoint for methods that never go through a Trainer (statistics only); atomic.

    Written through a file object, not a file name: torch names the zip's inner folder
    after the file it is given, and the temporary name holds a pid and a random token, so
    two identical runs gave different bytes. Through a file object the folder is always
    ``archive``: identical runs give identical checkpoints."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save({"state_dict": method.state_dict(),
                    "hyper_parameters": plain_hparams(method.hparams),
                    "uad_method": method.name}, fh)
    return Path(path)


def _read(path: Path, map_location: str = "cpu", trust: bool = False) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save has written zip files since torch 1.6
        raise CheckpointError(f"cannot read checkpoint {path}: it is not a PyTorch checkpoint "
                              "(damaged, truncated, or another kind of file)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as err:
        if trust or "GLOBAL" not in str(err).upper():  # a damaged pickle, not a foreign type
            raise CheckpointError(f"cannot read checkpoint {path}: "
                                  f"{str(err).strip().splitlines()[-1]}") from None
        detail = str(err).strip().splitlines()
        raise UnsafeCheckpointError(
            f"refusing to load checkpoint {path}: it holds objects other than tensors and "
            f"plain values, and loading those can run code ({detail[-1] if detail else err}). "
            "If you made this file yourself (e.g. before checkpoints were stored as plain "
            "values), pass --trust-checkpoints to load it anyway") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # truncated, not a zip, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a checkpoint (no 'state_dict' entry)")
    return ckpt


def load_weights(method: AnomalyMethod, path: Path, trust: bool = False) -> AnomalyMethod:
    """Load a checkpoint's weights into an existing method (e.g. the best of a stage)."""
    method.load_state_dict(_read(path, trust=trust)["state_dict"])
    return method


def load_method(path: Path, map_location: str = "cpu", trust: bool = False) -> AnomalyMethod:
    """The registered method saved in ``path``, with its hyperparameters and weights."""
    ckpt = _read(path, map_location, trust)
    name = ckpt.get("uad_method")
    if not name:
        raise CheckpointError(f"{path}: not a UAD-Bench checkpoint (no 'uad_method' entry)")
    method = get_method(name)(**ckpt.get("hyper_parameters", {}))
    method.load_state_dict(ckpt["state_dict"])
    return method.eval()
