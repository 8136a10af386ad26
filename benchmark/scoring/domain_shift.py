"""Domain shift (paper Sec. 4.5.2): test inputs x ** cl, cl in 0.3..2.0.

An experiment step with the trained method caches the maps of every test set for each
contrast level under the part's ``contrast<cl>/maps/`` (:func:`infer_contrast_levels`);
scoring them needs no model (:func:`score_domain_shift`, also run by ``evaluate``).
"""
from __future__ import annotations

import pandas as pd

from . import ScoringOptions, Sets, concat
from .reconstruction import score_reconstruction
from .segmentation import score_part

CONTRAST_LEVELS = (0.3, 0.7, 1.0, 1.5, 2.0)


def contrast_transform(cl: float):
    """Input transform for inference.infer: (D, 1, H, W) in [0, 1] -> x ** cl."""
    if cl <= 0:
        raise ValueError(f"contrast level must be > 0, got {cl}")
    return lambda x: x.clamp(0, 1) ** cl


def infer_contrast_levels(method, sets: Sets, part, device, levels=CONTRAST_LEVELS,
                          **infer_kwargs) -> None:
    """Cache maps of every test set with inputs x ** cl (cl != 1) beside the part's own."""
    from ..inference import infer

    tests = {d: {"test": s["test"]} for d, s in sets.items() if s.get("test")}
    for cl in levels:
        if cl != 1.0:
            infer(method, tests, part, device, contrast=cl,
                  input_transform=contrast_transform(cl), **infer_kwargs)


def score_domain_shift(part, sets: Sets, ids: dict,
                       opts: ScoringOptions | None = None) -> pd.DataFrame:
    """per-dataset rows (column ``contrast``) for every cached contrast level and 1.0,
    for ``domain_shift.csv``; empty when the part has no contrast-shifted maps. Kept out
    of per_*.csv so those stay one row per key for the leaderboard."""
    levels = part.contrast_levels()
    if len(levels) == 1:
        return pd.DataFrame()
    frames = []
    for cl in levels:
        _, ds = score_part(part, sets, ids, opts, contrast=cl)
        _, rec_ds = score_reconstruction(part, sets, ids, contrast=cl,
                                         histograms_path=part.histograms_path(cl))
        frames += [f.assign(contrast=cl) for f in (ds, rec_ds) if not f.empty]
    return concat(frames)
