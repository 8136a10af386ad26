"""The benchmark's metrics: plain functions on numpy arrays (public API).

Every number in a UAD-Bench result file comes from these functions, so anomaly maps
made elsewhere can be scored with exactly the same definitions::

    from benchmark.metrics import auprc, auroc, best_dice
    ap = auprc(scores, labels)               # scores: float array, labels: 0/1 array
    dice, threshold = best_dice(scores, labels)

Conventions (docs/protocol.md gives the full definitions):

* ``scores`` and ``labels`` are arrays of the same shape, flattened inside; higher score =
  more anomalous; ``labels`` is binary (bool or 0/1). NaN scores raise.
* Binarisation is ``pred = scores >= threshold`` everywhere (``binarize``). Best-Dice
  thresholds are therefore always scores that occur in the data.
* Undefined values are NaN, never a silent 0 or 1: AUPRC/AUROC/best Dice with no positive
  label (AUROC also with no negative), Dice with empty prediction AND empty ground truth,
  precision with an empty prediction, recall with empty ground truth. Means over volumes
  use ``nanmean`` and report how many values were defined.
* Ties in scores are handled exactly as scikit-learn does (all voxels of one score value
  enter or leave the prediction together; AUROC counts a tie as half a pair).

Pooled (per data set) values: pass lists of arrays, one per volume.

Speed: one ``np.sort`` of the scores above the lowest positive score (numpy's vectorised
sort) plus work on the positive voxels only: the three ranking metrics only change at
scores of positive voxels, so the curve is evaluated there and nowhere else (see
``ranking_curve``). Pooled values merge the per-volume sorted copies into counts at the
pooled thresholds (``dataset_ranking_metrics`` gives both at the cost of one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LesionDetection", "RankingCurve", "auprc", "auroc", "best_dice", "binarize", "confusion",
    "dataset_ranking_metrics", "dice", "fpr_threshold", "intensity_histogram",
    "kl_divergence", "l1_error", "l1_errors", "lesion_detection", "lpips_distance",
    "paper_entropy_difference",
    "precision", "psnr", "ranking_curve", "ranking_metrics", "recall", "ssim",
]


def _as_scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must have the same shape")
    if s.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.ravel()
    if s.dtype.kind == "f" and np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be binary (bool or 0/1)")
        y = y.astype(bool)
    return s, y.ravel()


@dataclass(frozen=True)
class RankingCurve:
    """Counts of the binarisation ``scores >= t`` at every distinct score t of a positive.

    thresholds: (K,) distinct scores of positive voxels, descending.
    tp: (K,) positives with score >= threshold (cumulative, int64).
    predicted: (K,) voxels with score >= threshold (int64).
    tied: (K,) voxels (positive or negative) whose score equals the threshold.
    n_pos, n_total: number of positive voxels and of all voxels.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    predicted: np.ndarray
    tied: np.ndarray
    n_pos: int
    n_total: int


def _volumes(scores, labels) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (scores, labels) pair, or lists of them (one per volume) for pooled metrics."""
    if isinstance(scores, (list, tuple)):
        if not isinstance(labels, (list, tuple)) or len(labels) != len(scores):
            raise ValueError("pooled metrics need equally long lists of scores and labels")
        if not scores:
            raise ValueError("pooled metrics need at least one volume")
        return [_as_scores_labels(s, y) for s, y in zip(scores, labels)]
    return [_as_scores_labels(scores, labels)]


def _distinct_desc(sorted_pos: np.ndarray) -> np.ndarray:
    last_of_run = np.r_[sorted_pos[1:] != sorted_pos[:-1], True]
    return sorted_pos[last_of_run][::-1]


def _curve(sorted_pos, above, n_at_low, low, n_total) -> RankingCurve:
    """Curve of one volume: ``above`` = its sorted scores > ``low`` (a score <= every
    positive score), ``n_at_low`` = its scores equal to ``low``."""
    if sorted_pos.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RankingCurve(sorted_pos, empty, empty, empty, 0, n_total)
    thresholds = _distinct_desc(sorted_pos)
    left = np.searchsorted(above, thresholds, side="left")
    right = np.searchsorted(above, thresholds, side="right")
    at_low = np.where(thresholds == low, n_at_low, 0)
    return RankingCurve(
        thresholds=thresholds,
        tp=(sorted_pos.size - np.searchsorted(sorted_pos, thresholds, side="left")).astype(np.int64),
        predicted=(above.size - left + at_low).astype(np.int64),
        tied=(right - left + at_low).astype(np.int64),
        n_pos=int(sorted_pos.size), n_total=int(n_total))


def _add_runs(counts: np.ndarray, sorted_index: np.ndarray) -> None:
    """counts[i] += occurrences of i in the sorted ``sorted_index``: O(len), not
    O(len(counts)) as a bincount with minlength would be for every volume."""
    if sorted_index.size == 0:
        return
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    counts[sorted_index[starts]] += np.diff(np.r_[starts, sorted_index.size])


class _Pool:
    """Pooled counts at the pooled thresholds, filled one volume at a time (so only one
    volume's sorted copy is alive): each sorted ``above`` is binned into the thresholds
    (sorted needles) and its run lengths are added; the pool is never sorted."""

    def __init__(self, sorted_pos: np.ndarray, low):
        self.sorted_pos, self.low = sorted_pos, low
        self.t_asc = _distinct_desc(sorted_pos)[::-1]
        self.ge = np.zeros(self.t_asc.size + 1, dtype=np.int64)  # [k]: k thresholds <= score
        self.tied = np.zeros(self.t_asc.size, dtype=np.int64)
        self.n_at_low = self.n_total = 0

    def add(self, above: np.ndarray, n_at_low: int, n_total: int) -> None:
        r = np.searchsorted(self.t_asc, above, side="right")  # thresholds <= each score
        _add_runs(self.ge, r)
        below = np.maximum(r - 1, 0)  # the largest threshold <= the score, if any
        eq = self.t_asc[below] == above
        eq &= r > 0
        _add_runs(self.tied, below[eq])
        self.n_at_low += n_at_low
        self.n_total += n_total

    def curve(self) -> RankingCurve:
        if self.sorted_pos.size == 0:
            return _curve(self.sorted_pos, self.sorted_pos, 0, self.low, self.n_total)
        t = self.t_asc
        predicted = np.cumsum(self.ge[::-1])[::-1][1:]  # scores >= t[j]: r >= j + 1
        at_low = np.where(t == self.low, self.n_at_low, 0)
        tp = self.sorted_pos.size - np.searchsorted(self.sorted_pos, t, side="left")
        return RankingCurve(
            thresholds=t[::-1], tp=tp[::-1].astype(np.int64),
            predicted=(predicted + at_low)[::-1].astype(np.int64),
            tied=(self.tied + at_low)[::-1].astype(np.int64),
            n_pos=int(self.sorted_pos.size), n_total=int(self.n_total))


def _curves(vols) -> tuple[list[RankingCurve], RankingCurve]:
    """Per-volume curves and the pooled curve, sharing one sort per volume.

    Scores at or below ``low`` (the lowest positive score of the pool) are below every
    threshold of every volume, so they are only counted, never sorted.
    """
    pos = [np.sort(s[y]) for s, y in vols]
    low = min((p[0] for p in pos if p.size), default=np.inf)
    pool = _Pool(np.sort(np.concatenate(pos)), low) if len(vols) > 1 else None
    curves = []
    for (s, _), p in zip(vols, pos):
        above = s[s > low]
        above.sort()  # in place: ``above`` is our own copy
        n_low = int(np.count_nonzero(s == low))
        curves.append(_curve(p, above, n_low, low, s.size))
        if pool is not None:
            pool.add(above, n_low, s.size)
    return curves, (pool.curve() if pool is not None else curves[0])


def ranking_curve(scores, labels) -> RankingCurve:
    """Evaluate the precision/recall/ROC curve at the scores of the positive voxels.

    Between two consecutive positive scores only negatives enter the prediction, which
    lowers precision and Dice and leaves recall unchanged, so every AUPRC term, every
    AUROC pair and the Dice maximum sit at these K <= n_pos thresholds.
    scores, labels: arrays of any (same) shape, or lists of them, one pair per volume,
    for the pooled curve of a data set (the pool is never concatenated or sorted).
    Cost: one sort of the scores ABOVE the lowest positive score (everything below it is
    below every threshold and only counted) + O(n_pos log n).
    """
    return _curves(_volumes(scores, labels))[1]


def _auprc(c: RankingCurve) -> float:
    """AP = sum_k (R_k - R_{k-1}) P_k (paper Sec. 4.5.3; sklearn's average_precision)."""
    if c.n_pos == 0:
        return float("nan")
    gained = np.diff(c.tp, prepend=0)
    return float(np.sum(gained / c.n_pos * (c.tp / c.predicted)))


def _auroc(c: RankingCurve) -> float:
    """Mann-Whitney U / (P N): share of (positive, negative) pairs ranked right, ties 1/2."""
    n_neg = c.n_total - c.n_pos
    if c.n_pos == 0 or n_neg == 0:
        return float("nan")
    pos_here = np.diff(c.tp, prepend=0)
    neg_below = (c.n_total - c.predicted) - (c.n_pos - c.tp)
    neg_tied = c.tied - pos_here
    twice_u = int(np.sum(pos_here * (2 * neg_below + neg_tied)))  # exact integer
    return twice_u / (2.0 * c.n_pos * n_neg)


def _best_dice(c: RankingCurve) -> tuple[float, float]:
    if c.n_pos == 0:
        return float("nan"), float("nan")
    d = 2.0 * c.tp / (c.predicted + c.n_pos)
    k = int(np.argmax(d))  # first maximum = highest threshold = fewest voxels predicted
    return float(d[k]), float(c.thresholds[k])


def auprc(scores, labels) -> float:
    """Area under the precision-recall curve, equal to sklearn's average_precision_score.

    NaN when ``labels`` has no positive. All-equal scores give the prevalence.
    Lists of arrays (one per volume) give the pooled value.
    """
    return _auprc(ranking_curve(scores, labels))


def auroc(scores, labels) -> float:
    """Area under the ROC curve, equal to sklearn's roc_auc_score (ties count 1/2).

    NaN when ``labels`` is all 0 or all 1 (sklearn raises). All-equal scores give 0.5.
    Lists of arrays (one per volume) give the pooled value.
    """
    return _auroc(ranking_curve(scores, labels))


def best_dice(scores, labels) -> tuple[float, float]:
    """The best possible Dice [DICE] (paper Sec. 4.5.3), EXACT over every distinct score.

    Returns (dice, threshold) with ``pred = scores >= threshold``; among equal Dice values
    the highest threshold is returned. (nan, nan) when ``labels`` has no positive.
    Pass lists of arrays (one per volume) for the pooled [DICE] of a data set.
    """
    return _best_dice(ranking_curve(scores, labels))


def _summary(c: RankingCurve) -> dict[str, float]:
    d, t = _best_dice(c)
    return {"auprc": _auprc(c), "auroc": _auroc(c), "best_dice": d, "best_threshold": t}


def ranking_metrics(scores, labels) -> dict[str, float]:
    """auprc, auroc, best_dice and best_threshold from a single sort (lists: pooled)."""
    return _summary(ranking_curve(scores, labels))


def dataset_ranking_metrics(scores: list, labels: list) -> tuple[list[dict], dict]:
    """Per-volume and pooled ``ranking_metrics`` of a data set at the cost of the
    per-volume ones: each volume's scores are sorted once and that sorted copy is merged
    into the pooled counts. scores, labels: lists, one (H, W, D) array (or any shape,
    e.g. the voxels inside the brain mask) per volume."""
    curves, pooled = _curves(_volumes(list(scores), list(labels)))
    return [_summary(c) for c in curves], _summary(pooled)


# ---------------------------------------------------------------- binary predictions
def binarize(scores, threshold: float) -> np.ndarray:
    """pred = scores >= threshold (the benchmark's one binarisation rule)."""
    return np.asarray(scores) >= threshold


def confusion(pred, labels) -> dict[str, int]:
    """tp, fp, fn, tn of a binary prediction against binary labels (same shape)."""
    p, y = _as_scores_labels(np.asarray(pred).astype(bool), labels)
    tp = int(np.count_nonzero(p & y))
    n_p, n_y = int(np.count_nonzero(p)), int(np.count_nonzero(y))
    return {"tp": tp, "fp": n_p - tp, "fn": n_y - tp, "tn": p.size - n_p - n_y + tp}


def dice(pred, labels) -> float:
    """DICE = 2|A n B| / (|A| + |B|) (paper Sec. 4.5.3); NaN when both are empty."""
    c = confusion(pred, labels)
    denom = 2 * c["tp"] + c["fp"] + c["fn"]
    return 2.0 * c["tp"] / denom if denom else float("nan")


def precision(pred, labels) -> float:
    """tp / (tp + fp); NaN for an empty prediction."""
    c = confusion(pred, labels)
    return c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else float("nan")


def recall(pred, labels) -> float:
    """tp / (tp + fn); NaN for empty ground truth."""
    c = confusion(pred, labels)
    return c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")


@dataclass(frozen=True)
class LesionDetection:
    """Lesions (connected components of the annotation) and how many a prediction hit.

    Counts, not rates, so volumes pool: the pooled detection rate of a data set is
    sum(detected) / sum(n_lesions), not the mean of the per-volume rates.
    """

    n_lesions: int
    detected: int

    @property
    def rate(self) -> float:
        """detected / n_lesions; NaN for a volume without lesions."""
        return self.detected / self.n_lesions if self.n_lesions else float("nan")


def lesion_detection(pred, labels, connectivity: int = 26,
                     min_overlap: int = 1) -> LesionDetection:
    """Lesion-level detection: which annotated lesions a binary prediction touches.

    pred, labels: binary arrays of the same shape, e.g. (H, W, D); pred is the binarised,
    post-processed map (``PostProcess.binarize``). A lesion is one connected component of
    ``labels`` (connectivity 6, 18 or 26 in 3D, the protocol's 26 by default; 4 or 8 in
    2D); it counts as detected when at least ``min_overlap`` of its voxels are predicted.
    Dice hides a missed small lesion next to a found large one; this does not.
    """
    from scipy import ndimage as ndi

    p, y = (np.asarray(a).astype(bool) for a in (pred, labels))
    if p.shape != y.shape:
        raise ValueError(f"pred {p.shape} and labels {y.shape} must have the same shape")
    rank = {6: 1, 18: 2, 26: 3, 4: 1, 8: 2}.get(connectivity)
    if rank is None or (y.ndim == 2) != (connectivity in (4, 8)) or rank > y.ndim:
        raise ValueError(f"connectivity {connectivity} does not fit {y.ndim}D labels "
                         "(3D: 6, 18, 26; 2D: 4, 8)")
    if min_overlap < 1:
        raise ValueError(f"min_overlap must be >= 1, got {min_overlap}")
    components, n = ndi.label(y, structure=ndi.generate_binary_structure(y.ndim, rank))
    if n == 0:
        return LesionDetection(0, 0)
    hits = np.bincount(components[p & y], minlength=n + 1)[1:]
    return LesionDetection(int(n), int(np.count_nonzero(hits >= min_overlap)))


def fpr_threshold(healthy_scores, fpr: float) -> float:
    """Smallest threshold t with share(healthy_scores >= t) <= fpr.

    healthy_scores: scores of healthy voxels (e.g. inside the brain masks of the healthy
    validation volumes), any shape. t is a healthy score (the smallest one above the
    (k+1)-th largest, k = floor(fpr * n)); if none exists, the next float above the max,
    so nothing healthy is flagged. Uses np.partition: O(n).
    """
    h = np.asarray(healthy_scores).ravel()
    if h.size == 0:
        raise ValueError("fpr_threshold: healthy_scores is empty")
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    k = int(np.floor(fpr * h.size))
    cut = np.partition(h, h.size - k - 1)[h.size - k - 1]  # (k+1)-th largest
    above = h[h > cut]
    if above.size:
        return float(above.min())
    if h.dtype.kind == "f":  # stay in the scores' own precision so >= compares exactly
        return float(np.nextafter(cut, np.asarray(np.inf, dtype=h.dtype)))
    return float(cut) + 1.0


# ---------------------------------------------------------------- reconstruction errors
def l1_errors(x, reconstruction, labels, brain_mask=None) -> dict[str, float]:
    """l1 error over healthy and anomalous voxels and their ratio (paper Sec. 4.5.1, Table 1).

    x, reconstruction: (H, W, D) input and reconstruction in [0, 1]; labels: annotation
    (same shape); brain_mask: healthy voxels are brain & ~labels (all ~labels if None).
    l1_ratio = l1_anomalous / l1_healthy; NaN when either region is empty.
    """
    x = np.asarray(x, dtype=np.float64)
    err = np.abs(x - np.asarray(reconstruction, dtype=np.float64))
    y = np.asarray(labels).astype(bool)
    healthy = ~y if brain_mask is None else (np.asarray(brain_mask).astype(bool) & ~y)
    l1_h = float(err[healthy].mean()) if healthy.any() else float("nan")
    l1_a = float(err[y].mean()) if y.any() else float("nan")
    ratio = l1_a / l1_h if l1_h > 0 else float("nan")
    return {"l1_healthy": l1_h, "l1_anomalous": l1_a, "l1_ratio": ratio}


def l1_error(x, reconstruction, mask=None) -> float:
    """Mean |x - reconstruction| over ``mask`` (all voxels if None); Table 1's l1-error."""
    err = np.abs(np.asarray(x, dtype=np.float64) - np.asarray(reconstruction, dtype=np.float64))
    if mask is not None:
        err = err[np.asarray(mask).astype(bool)]
    return float(err.mean()) if err.size else float("nan")


# ---------------------------------------------------------------- intensity alignment
def intensity_histogram(x, mask=None, bins: int = 500, value_range=(0.0, 1.0)):
    """Density-normalised histogram of intensities inside ``mask`` (paper Sec. 4.5.2).

    "We partition the intensity values into 500 bins and divide the raw count by the total
    number of counts and the bin width." Values outside ``value_range`` are clipped into
    the edge bins so every voxel is counted. Returns (density (bins,), edges (bins+1,)).
    """
    v = np.asarray(x, dtype=np.float64)
    if mask is not None:
        v = v[np.asarray(mask).astype(bool)]
    v = np.clip(v.ravel(), *value_range)
    if v.size == 0:
        raise ValueError("intensity_histogram: no voxels inside the mask")
    counts, edges = np.histogram(v, bins=bins, range=value_range)
    return counts / (counts.sum() * np.diff(edges)), edges


def kl_divergence(p_density, q_density, edges, pseudo_count: float = 0.5,
                  n_counts: int | None = None) -> float:
    """True KL(P || Q) in nats between two histograms on the same bins.

    The densities are turned back into bin probabilities (density * bin width); empty bins
    would make KL infinite, so each bin gets ``pseudo_count`` extra counts (Jeffreys prior,
    0.5) before renormalising; ``n_counts`` (voxels per histogram) sets their weight, and
    with n_counts=None a pseudo-probability of 1e-10 per bin is used instead.
    """
    w = np.diff(np.asarray(edges, dtype=np.float64))
    p = np.asarray(p_density, dtype=np.float64) * w
    q = np.asarray(q_density, dtype=np.float64) * w
    eps = pseudo_count / n_counts if n_counts else 1e-10
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float(np.sum(p * np.log(p / q)))


def paper_entropy_difference(p_input, p_reconstruction) -> float:
    """The paper's "KLD" (Sec. 4.5.2) exactly as its equation reads:

    [-sum_i p_in log p_in] - [-sum_i p_rec log p_rec], p = the density-normalised
    histogram values, 0 log 0 = 0. This is a difference of entropies, not a
    Kullback-Leibler divergence (it can be negative and is 0 for any two histograms of
    equal entropy); it is reported under this name only to compare with the paper.
    """
    def neg_entropy_sum(p):
        p = np.asarray(p, dtype=np.float64)
        p = p[p > 0]
        return float(-np.sum(p * np.log(p)))
    return neg_entropy_sum(p_input) - neg_entropy_sum(p_reconstruction)


# ---------------------------------------------------------------- reconstruction quality
def _as_slices(v):
    """(H, W, D) numpy volume -> (D, 1, H, W) float32 torch tensor (axial slices)."""
    import torch
    t = torch.as_tensor(np.asarray(v, dtype=np.float32))
    if t.ndim == 2:
        t = t[..., None]
    return t.permute(2, 0, 1).unsqueeze(1).contiguous()


def ssim(x, reconstruction, mask=None, data_range: float = 1.0) -> float:
    """Mean 2D SSIM over axial slices (MONAI SSIMMetric: 11x11 Gaussian window, sigma 1.5).

    x, reconstruction: (H, W, D) in [0, 1]. With ``mask`` (brain mask) only slices that
    contain brain are averaged, so empty background slices (SSIM 1) do not inflate it.
    """
    from monai.metrics import SSIMMetric
    per_slice = SSIMMetric(spatial_dims=2, data_range=data_range, reduction="none")(
        _as_slices(reconstruction), _as_slices(x)).numpy().ravel()
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        per_slice = per_slice[m.reshape(m.shape[0], m.shape[1], -1).any(axis=(0, 1))]
    return float(per_slice.mean()) if per_slice.size else float("nan")


def psnr(x, reconstruction, data_range: float = 1.0) -> float:
    """PSNR = 10 log10(data_range^2 / MSE) over the whole volume (MONAI PSNRMetric)."""
    from monai.metrics import PSNRMetric
    a = _as_slices(x).permute(1, 0, 2, 3).unsqueeze(0)  # whole volume as one item
    b = _as_slices(reconstruction).permute(1, 0, 2, 3).unsqueeze(0)
    return float(PSNRMetric(max_val=data_range, reduction="mean")(b, a).item())


def lpips_distance(x, reconstruction) -> float | None:
    """LPIPS over axial slices, only if the ``lpips`` package AND its backbone weights are
    already on this machine (nothing is ever downloaded). Returns None when skipped.
    """
    import importlib.util
    import os

    if importlib.util.find_spec("lpips") is None:
        return None
    import torch
    ckpt = os.path.join(torch.hub.get_dir(), "checkpoints", "alexnet-owt-7be5be79.pth")
    if not os.path.exists(ckpt):
        return None
    import lpips
    net = lpips.LPIPS(net="alex", verbose=False).eval()
    with torch.no_grad():
        a = _as_slices(x).repeat(1, 3, 1, 1) * 2 - 1  # lpips expects 3 channels in [-1, 1]
        b = _as_slices(reconstruction).repeat(1, 3, 1, 1) * 2 - 1
        return float(net(a, b).mean().item())
