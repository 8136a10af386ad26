"""Run profiles: how much data, compute and how many folds a run uses.

Epochs are the method's own (``Method.epochs[profile]``); a method may also shrink its
network for a profile (``Method.profiles``). A profile with a ``base`` falls back to the
base profile's epochs and network for methods that do not define it (a plug-in method
written before the profile existed still runs). The harness never branches on a method name.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    batch_size: int
    folds: tuple[int, ...]
    synthetic_size: str             # size of the embedded default data set
    repeats: int = 1                # random slices per training volume per epoch
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    val_slices: int = 10
    max_train_volumes: int | None = None
    max_test_volumes: int | None = None
    max_val_volumes: int | None = None   # validation volumes per set for thresholds
                                         # (None: max_test_volumes)
    eval_batch_size: int = 50
    slice_step: int = 1             # every k-th axial slice of every volume (1: all)
    curve_every: int = 0            # learning-curve point every N epochs (0: none)
    curve_points: int = 0           # or about this many points per stage (0: none)
    curve_volumes: int = 4          # validation volumes per set for each curve point
    base: str | None = None         # methods without this profile use the base's settings


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        "paper", "the paper's settings: 5 folds, batch 32, paper epochs (for a GPU)",
        batch_size=32, folds=(0, 1, 2, 3, 4), synthetic_size="paper",
    ),
    "reference": Profile(
        "reference", "the published CPU board: 3 folds, quick data and networks, epochs "
        "from the learning curves (docs/convergence.md)",
        batch_size=16, folds=(0, 1, 2), synthetic_size="quick", repeats=4, val_slices=4,
        max_test_volumes=10, max_val_volumes=5, curve_points=5, curve_volumes=2,
        base="quick",
    ),
    "quick": Profile(
        "quick", "the whole pipeline at CPU size: one fold, short training",
        batch_size=16, folds=(0,), synthetic_size="quick", repeats=4, val_slices=4,
        max_test_volumes=8, max_val_volumes=3,
    ),
    # smoke: every 2nd axial slice (25 of 50, 4 mm apart): inference, map files and scoring
    # are half a whole volume's. Not sparser: the protocol's 5x5x5 median filter then
    # erases lesions under ~15 mm (every 3rd slice already did on the toy data's tumours)
    "smoke": Profile(
        "smoke", "seconds, for tests: tiny networks, two batches, two test volumes of "
        "every 2nd slice",
        batch_size=4, folds=(0,), synthetic_size="smoke", limit_train_batches=2,
        limit_val_batches=1, val_slices=2, max_train_volumes=8, max_test_volumes=2,
        eval_batch_size=25, slice_step=2,
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}") from None
