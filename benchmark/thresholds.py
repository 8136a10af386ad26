"""Where a binarisation threshold comes from: part of every result (``threshold_source``).

    oracle   best pooled Dice on the TEST set itself (the paper's [DICE]). An upper bound,
             not a result a user could obtain: rows carry ``upper_bound=True``.
    val      best pooled Dice on the labelled unhealthy validation split of the same data
             set, applied to its test set (what the authors' code does).
    fpr1/5/10  the threshold flagging at most 1/5/10 % of the healthy brain voxels of the
             healthy validation volumes (IXI val of the same fold): no labels needed, the
             only fully unsupervised choice.

The protocol guarantee lives here: a source reads data only through a ``MapSource``
restricted to the split it declares, and only ``oracle`` (labelled as an upper bound)
declares ``test``. Post-processing is chosen by the user, never searched, and checkpoints
are chosen on the healthy validation loss by the harness, so nothing else can be tuned on
test data through this code.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import metrics

Split = Literal["val", "test"]


class ProtocolError(RuntimeError):
    """An attempt to choose something on data the protocol does not allow."""


@dataclass(frozen=True)
class ThresholdSource:
    name: str
    split: Split                      # the only split this source may read
    cohort: Literal["same", "healthy"]  # the scored data set itself, or the healthy cohort
    fpr: float | None = None          # for fpr sources
    upper_bound: bool = False

    def describe(self) -> str:
        where = "test set itself" if self.split == "test" else (
            "labelled val split" if self.cohort == "same" else "healthy val split")
        what = f"{self.fpr:.0%} FPR" if self.fpr is not None else "best pooled Dice"
        return f"{what} on the {where}" + (" (upper bound)" if self.upper_bound else "")


SOURCES: dict[str, ThresholdSource] = {
    "oracle": ThresholdSource("oracle", "test", "same", upper_bound=True),
    "val": ThresholdSource("val", "val", "same"),
    "fpr1": ThresholdSource("fpr1", "val", "healthy", fpr=0.01),
    "fpr5": ThresholdSource("fpr5", "val", "healthy", fpr=0.05),
    "fpr10": ThresholdSource("fpr10", "val", "healthy", fpr=0.10),
}
DEFAULT_SOURCES = tuple(SOURCES)


def parse_sources(text: str | None) -> tuple[str, ...]:
    """``"oracle,val,fpr5"`` -> names; unknown names raise listing the allowed ones."""
    if not text:
        return DEFAULT_SOURCES
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in SOURCES]
    if bad or not names:
        raise ValueError(f"--thresholds: unknown source(s) {bad}; allowed: {', '.join(SOURCES)}")
    return names


# A loader: (cohort name, split) -> (processed maps, labels or None, brain masks), one
# entry per volume, or None when that split does not exist.
Loader = Callable[[str, str], "tuple[list, list | None, list] | None"]


class MapSource:
    """Gives a threshold source the data of its own split and nothing else."""

    def __init__(self, loader: Loader, source: ThresholdSource, cohort: str, healthy: str):
        self._loader, self._source = loader, source
        self._cohort = cohort if source.cohort == "same" else healthy

    def get(self, split: str):
        if split != self._source.split:
            raise ProtocolError(f"threshold source {self._source.name!r} may only read the "
                                f"{self._source.split} split, not {split!r}")
        return self._loader(self._cohort, split)


def compute_threshold(source: ThresholdSource, data: MapSource) -> tuple[float, float] | None:
    """(threshold, fit value) of one source, or None when its data is missing (no val split).

    fit value: the pooled Dice reached on the data searched (Dice sources) or the share of
    healthy voxels flagged (FPR sources). Dice sources search over every voxel of the
    volumes (Dice is a whole-volume measure); FPR sources use the brain voxels of the
    healthy volumes.
    """
    got = data.get(source.split)
    if got is None or not got[0]:
        return None
    maps, labels, masks = got
    if source.fpr is not None:
        healthy = np.concatenate([m[b] for m, b in zip(maps, masks)])
        t = metrics.fpr_threshold(healthy, source.fpr)
        return t, float(np.count_nonzero(healthy >= t) / healthy.size)
    if labels is None:
        raise ProtocolError(f"threshold source {source.name!r} needs labelled volumes")
    dice, threshold = metrics.best_dice(list(maps), list(labels))
    return None if np.isnan(dice) else (threshold, dice)


def compute_thresholds(names, loader: Loader, cohort: str,
                       healthy: str) -> dict[str, tuple[float, float]]:
    """{source name: (threshold, fit value)} for one scored data set; sources without
    data (e.g. a cohort without a val split) are left out."""
    out = {}
    for name in names:
        source = SOURCES[name]
        got = compute_threshold(source, MapSource(loader, source, cohort, healthy))
        if got is not None:
            out[name] = got
    return out
