"""Pairwise permutation tests between leaderboard entries (paper Sec. 4.5.4).

The paper uses mlxtend's permutation test, 10,000 rounds, alpha = 5 %. What is permuted:
- unit "fold" (default, as the paper): the per-fold values of the two entries
  (n = number of folds each). Unpaired label exchange by default, which is mlxtend's
  default and what the paper's significant results with 5 folds imply: a paired
  sign-flip test over 5 folds can never go below p = 2/32 = 0.0625 (two-sided).
  `fold_pairing="paired"` pairs fold k with fold k instead.
- unit "volume": the per-volume values, paired by (fold, volume): the two entries
  scored the same test volume. Far more samples, hence far more power. Pooled
  per-dataset metrics have no per-volume values; they fall back to unit "fold" and the
  `unit` column says so.
The statistic is the difference of means (entry_a - entry_b); the p-value is two-sided
(|mean difference|, mlxtend's 'x_mean != y_mean').
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd

Unit = Literal["fold", "volume"]
Correction = Literal["none", "holm", "bonferroni"]
UNITS = ("fold", "volume")
CORRECTIONS = ("none", "holm", "bonferroni")
Engine = Literal["auto", "mlxtend", "replica"]
ENGINES = ("auto", "mlxtend", "replica")
# mlxtend loops over rounds (and, paired, over samples) in Python: ~15 us per round
# unpaired, ~4 us per sample and round paired. Above this many samples x rounds the
# vectorised replica (bit-identical p-values, see tests) is used under engine "auto".
REPLICA_ABOVE = 20_000

SIGNIFICANCE_COLUMNS = [
    "dataset", "sequence", "metric", "level", "threshold_source", "entry_a", "entry_b",
    "mean_a", "mean_b", "statistic", "n_a", "n_b", "unit", "paired", "alternative",
    "rounds", "seed", "engine", "p_value", "correction", "p_adjusted", "alpha",
    "significant", "better"]

LOWER_IS_BETTER = ("l1", "l1_all", "l1_healthy", "lpips", "mse", "kld", "kl", "kl_divergence",
                   "entropy_difference", "hausdorff", "hd95", "fp", "fn")
NOT_A_SCORE = ("lesion_voxels", "threshold", "n_voxels", "tp", "n_volumes")


def direction(metric: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if the metric is not a score."""
    m = metric.lower()
    if m in NOT_A_SCORE:
        return 0
    if m in LOWER_IS_BETTER or any(m.startswith(p + "_") or m.endswith("_" + p)
                                   for p in ("lpips", "kld", "kl", "hausdorff")):
        return -1
    return 1


@dataclass(frozen=True)
class SignificanceSettings:
    """What the tests do; every field is written into significance.csv."""

    unit: Unit = "fold"
    correction: Correction = "none"
    rounds: int = 10_000
    alpha: float = 0.05
    seed: int = 0
    fold_pairing: Literal["unpaired", "paired"] = "unpaired"
    engine: Engine = "auto"

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unknown paired unit {self.unit!r}; allowed: {UNITS}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"unknown correction {self.correction!r}; "
                             f"allowed: {CORRECTIONS}")
        if self.fold_pairing not in ("unpaired", "paired"):
            raise ValueError(f"unknown fold pairing {self.fold_pairing!r}; "
                             "allowed: ('unpaired', 'paired')")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; allowed: {ENGINES}")
        if self.rounds < 1 or not 0 < self.alpha < 1:
            raise ValueError(f"rounds must be >= 1 and 0 < alpha < 1, got "
                             f"rounds={self.rounds}, alpha={self.alpha}")


def _count_extreme(sx: np.ndarray, sy: np.ndarray, reference: float) -> int:
    """Rounds at least as extreme as the observed |mean difference|, mlxtend's rule."""
    diff = np.abs(sx.mean(axis=1) - sy.mean(axis=1))
    return int(np.count_nonzero((diff > reference) | np.isclose(diff, reference)))


def paired_permutation_replica(x, y, rounds: int, seed: int | None) -> float:
    """mlxtend's approximate paired two-sided test, vectorised over rounds.

    Draws the same random stream as mlxtend (RandomState(seed).randn(m) per round; a
    pair is swapped where the draw is > 0) and counts with the same rule, so the
    p-value equals mlxtend's exactly (tested). x, y: (m,) paired samples.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    m = len(x)
    rng = np.random.RandomState(seed)
    reference = np.abs(np.mean(x) - np.mean(y))
    extreme = 0
    chunk = max(1, 2_000_000 // max(m, 1))
    for start in range(0, rounds, chunk):
        flip = rng.randn(min(chunk, rounds - start), m) > 0.0
        extreme += _count_extreme(np.where(flip, y, x), np.where(flip, x, y), reference)
    return (extreme + 1.0) / (rounds + 1.0)


def unpaired_permutation_replica(x, y, rounds: int, seed: int | None) -> float:
    """mlxtend's approximate unpaired two-sided test with the statistic vectorised.

    mlxtend shuffles the pooled sample in place once per round (the shuffles compound);
    shuffling an index array with the same RandomState gives the same permutations, so
    only the cheap shuffles stay in a Python loop. x: (m,), y: (n,).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    m = len(x)
    combined = np.hstack((x, y))
    rng = np.random.RandomState(seed)
    reference = np.abs(np.mean(x) - np.mean(y))
    index = np.arange(len(combined))
    extreme = 0
    chunk = max(1, 2_000_000 // len(combined))
    for start in range(0, rounds, chunk):
        perms = np.empty((min(chunk, rounds - start), len(combined)), dtype=np.intp)
        for r in range(len(perms)):
            rng.shuffle(index)
            perms[r] = index
        sample = combined[perms]
        extreme += _count_extreme(sample[:, :m], sample[:, m:], reference)
    return (extreme + 1.0) / (rounds + 1.0)


def permutation_pvalue(x, y, *, paired: bool, rounds: int, seed: int | None,
                       engine: Engine = "auto") -> tuple[float, str]:
    """Two-sided approximate permutation test; returns (p-value, engine used).

    engine "mlxtend" calls mlxtend.evaluate.permutation_test; "replica" the vectorised
    replicas above (same p-values, 10-100x faster); "auto" uses mlxtend for small
    problems (samples x rounds <= REPLICA_ABOVE) and the replica otherwise.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {ENGINES}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if engine == "replica" or (engine == "auto" and (len(x) + len(y)) * rounds > REPLICA_ABOVE):
        replica = paired_permutation_replica if paired else unpaired_permutation_replica
        return replica(x, y, rounds, seed), "replica-of-mlxtend"
    from mlxtend.evaluate import permutation_test  # slow to import: only when used

    p = permutation_test(x, y, func="x_mean != y_mean", method="approximate",
                         num_rounds=rounds, seed=seed, paired=paired)
    return float(p), "mlxtend"


def adjust(p: np.ndarray, correction: Correction) -> np.ndarray:
    """Family-wise correction of p-values (Holm step-down or Bonferroni)."""
    p = np.asarray(p, float)
    if correction == "none" or len(p) == 0:
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(1.0, p * len(p))
    if correction == "holm":
        order = np.argsort(p, kind="stable")
        steps = (len(p) - np.arange(len(p))) * p[order]
        out = np.empty_like(p)
        out[order] = np.minimum(1.0, np.maximum.accumulate(steps))
        return out
    raise ValueError(f"unknown correction {correction!r}; allowed: {CORRECTIONS}")


def _samples(folds: pd.DataFrame, volumes: pd.DataFrame | None, entry: str,
             unit: str) -> pd.Series:
    """Sample values of one entry indexed by the pairing key (fold or (fold, volume))."""
    if unit == "volume":
        v = volumes[volumes["entry"] == entry]
        return v.set_index(["fold", "volume"])["value"].sort_index()
    return folds[folds["entry"] == entry].set_index("fold")["value"].sort_index()


def compare_group(folds: pd.DataFrame, volumes: pd.DataFrame | None,
               settings: SignificanceSettings) -> pd.DataFrame:
    """All pairwise tests within one dataset x metric x level x threshold source.

    folds: rows of `fold_values` for the group; volumes: per-volume rows (entry, fold,
    volume, value) or None when the metric has no per-volume values.
    """
    unit = settings.unit if volumes is not None and not volumes.empty else "fold"
    paired = unit == "volume" or settings.fold_pairing == "paired"
    first = folds.iloc[0]
    rows = []
    for a, b in combinations(sorted(folds["entry"].unique()), 2):
        sa, sb = _samples(folds, volumes, a, unit), _samples(folds, volumes, b, unit)
        if paired:
            common = sa.index.intersection(sb.index).sort_values()
            sa, sb = sa.loc[common], sb.loc[common]
        if len(sa) < 2 or len(sb) < 2:
            p, engine = np.nan, "too-few-samples"
        else:
            p, engine = permutation_pvalue(sa.to_numpy(), sb.to_numpy(), paired=paired,
                                           rounds=settings.rounds, seed=settings.seed,
                                           engine=settings.engine)
        rows.append({
            "dataset": first["dataset"], "sequence": first["sequence"], "metric": first["metric"],
            "level": first["level"], "threshold_source": first["threshold_source"],
            "entry_a": a, "entry_b": b, "mean_a": sa.mean(), "mean_b": sb.mean(),
            "statistic": sa.mean() - sb.mean(), "n_a": len(sa), "n_b": len(sb), "unit": unit,
            "paired": paired, "alternative": "two-sided", "rounds": settings.rounds,
            "seed": settings.seed, "engine": engine, "p_value": p})
    return pd.DataFrame(rows)


def run_tests(folds: pd.DataFrame, raw: dict[str, pd.DataFrame],
              groups: list[tuple], settings: SignificanceSettings) -> pd.DataFrame:
    """Pairwise tests for each (dataset, sequence, metric, level, threshold_source) group;
    the correction is applied within each group (the family of its pairwise tests).

    raw: level -> table with one row per volume ("volume": per_volume.csv,
    "healthy": recon_quality.csv), used when settings.unit == "volume".
    """
    keys = ["dataset", "sequence", "metric", "level", "threshold_source"]
    out = []
    for group in groups:
        sel = folds
        for k, v in zip(keys, group):
            sel = sel[sel[k] == v]
        if sel["entry"].nunique() < 2:
            continue
        volumes = _volume_rows(raw, dict(zip(keys, group))) \
            if settings.unit == "volume" else None
        res = compare_group(sel, volumes, settings)
        res["correction"] = settings.correction
        res["p_adjusted"] = adjust(res["p_value"].to_numpy(), settings.correction)
        res["alpha"] = settings.alpha
        res["significant"] = res["p_adjusted"] < settings.alpha
        sign = direction(group[2]) * np.sign(res["statistic"])
        res["better"] = np.where(res["significant"] & (sign > 0), res["entry_a"],
                                 np.where(res["significant"] & (sign < 0), res["entry_b"], ""))
        out.append(res)
    if not out:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    return pd.concat(out, ignore_index=True)[SIGNIFICANCE_COLUMNS]


def _volume_rows(raw: dict[str, pd.DataFrame], group: dict) -> pd.DataFrame | None:
    """Per-volume values of one group, or None for pooled (level 'dataset') metrics."""
    pv = raw.get(group["level"])
    if pv is None or pv.empty or group["metric"] not in pv.columns \
            or "volume" not in pv.columns:
        return None
    mask = pv["dataset"] == group["dataset"]
    for col in ("sequence", "threshold_source"):
        # "any": the metric does not depend on the threshold source (aggregate.py)
        if col in pv.columns and group[col] != "any":
            mask &= pv[col] == group[col]
    sel = pv.loc[mask, ["entry", "fold", "volume", group["metric"]]]
    sel = sel.drop_duplicates(["entry", "fold", "volume"])
    return sel.rename(columns={group["metric"]: "value"}).dropna(subset=["value"])


GROUP_KEYS = ("dataset", "sequence", "metric", "level", "threshold_source")


def group_rows(sig: pd.DataFrame, group: tuple) -> pd.DataFrame:
    """The tests of one (dataset, sequence, metric, level, threshold_source) group."""
    sel = sig
    for k, v in zip(GROUP_KEYS, group):
        sel = sel[sel[k] == v]
    return sel


def best_is_significant(sig: pd.DataFrame, group: tuple, best: str) -> bool:
    """True if `best` is significantly better than every other entry in the group."""
    sel = group_rows(sig, group)
    sel = sel[(sel["entry_a"] == best) | (sel["entry_b"] == best)]
    return bool(len(sel)) and bool((sel["better"] == best).all())
