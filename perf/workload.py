"""Scoring workloads shared by the benchmark suite (perf/test_metrics.py) and the
paper-scale script (perf/bench_metrics.py).

A volume is a synthetic BraTS-sized 96 x 96 x 50 case: an ellipsoid brain, 1-3 ellipsoid
lesions covering 0.1-10 % of the brain (log-uniform), an anomaly map in float32 that is
higher in the lesion and exactly 0 outside the eroded brain (ties, as in masked maps).
The baseline is what a user would write with scikit-learn: average_precision_score +
roc_auc_score per volume and a Dice sweep over 100 evenly spaced thresholds on the pool.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark import metrics as M
from benchmark.postprocess import erode_brain_mask

SHAPE = (96, 96, 50)


def make_volume(rng: np.random.Generator):
    """(scores float32, labels bool, brain bool), each (96, 96, 50)."""
    g = np.indices(SHAPE, dtype=np.float32)
    c = np.array([48, 48, 25], np.float32)
    axes = np.array([40, 34, 30], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    brain = sum(((g[i] - c[i]) / axes[i]) ** 2 for i in range(3)) < 1
    n_brain = brain.sum()
    target = n_brain * np.exp(rng.uniform(np.log(0.001), np.log(0.10)))
    lesion = np.zeros(SHAPE, bool)
    n_les = int(rng.integers(1, 4))
    for _ in range(n_les):
        r = (3 * target / n_les / (4 * np.pi)) ** (1 / 3) * rng.uniform(0.7, 1.3, 3)
        centre = c + rng.uniform(-0.4, 0.4, 3) * axes
        lesion |= sum(((g[i] - centre[i]) / max(r[i], 0.8)) ** 2 for i in range(3)) < 1
    lesion &= brain
    noise = np.abs(rng.normal(0.0, 0.05, SHAPE)).astype(np.float32)
    signal = np.abs(rng.normal(0.12, 0.08, SHAPE)).astype(np.float32)
    scores = (noise + lesion * signal) * erode_brain_mask(brain, 3)
    return scores.astype(np.float32), lesion, brain


def make_volumes(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [make_volume(rng) for _ in range(n)]


def region_lists(vols, region: str):
    """Scores and labels of the scored voxels ("all" or "brain"), one array per volume."""
    if region == "brain":
        return [s[b] for s, _, b in vols], [y[b] for _, y, b in vols]
    if region == "all":
        return [s for s, _, _ in vols], [y for _, y, _ in vols]
    raise ValueError(f"region must be 'all' or 'brain', got {region!r}")


def sklearn_baseline(vols, region: str):
    """([(AUPRC, AUROC) per volume], (best Dice, threshold) of a 100-threshold pooled sweep)."""
    s_list, y_list = region_lists(vols, region)
    per_vol = [(average_precision_score(y.ravel(), s.ravel()), roc_auc_score(y.ravel(), s.ravel()))
               for s, y in zip(s_list, y_list)]
    s_all = np.concatenate([s.ravel() for s in s_list])
    y_all = np.concatenate([y.ravel() for y in y_list])
    n_y, best = np.count_nonzero(y_all), (0.0, None)
    for t in np.linspace(s_all.min(), s_all.max(), 100):
        p = s_all >= t
        d = 2 * np.count_nonzero(p & y_all) / (np.count_nonzero(p) + n_y)
        best = max(best, (d, t), key=lambda z: z[0])
    return per_vol, best


def ours(vols, region: str):
    """benchmark.metrics.dataset_ranking_metrics: (per-volume dicts, pooled dict)."""
    return M.dataset_ranking_metrics(*region_lists(vols, region))


def agreement(vols, region: str, base, mine) -> dict:
    """How far our numbers are from the baseline's (the checks both callers assert)."""
    (b_vol, b_best), (o_vol, o_pool) = base, mine
    s_list, y_list = region_lists(vols, region)
    pred = np.concatenate([M.binarize(s, o_pool["best_threshold"]).ravel() for s in s_list])
    recomputed = M.dice(pred, np.concatenate([y.ravel() for y in y_list]))
    return {
        "auprc_max_diff": max(abs(b[0] - o["auprc"]) for b, o in zip(b_vol, o_vol)),
        "auroc_max_diff": max(abs(b[1] - o["auroc"]) for b, o in zip(b_vol, o_vol)),
        "best_dice": o_pool["best_dice"], "sweep_dice": b_best[0],
        "best_dice_recomputed": recomputed,
    }
