"""From merged runs to per-fold values and the tidy leaderboard (mean, std over folds).

Three sources give per-fold values, each marked in the `level` column:
- `volume`:  per_volume.csv, the mean over the test volumes of one fold;
- `dataset`: per_dataset.csv, a pooled value of one fold (pooled AUPRC, best Dice);
- `healthy`: recon_quality.csv, the mean over the healthy test rows of one fold.
The std is the sample std over folds (ddof=1), NaN for a single fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .load import Flag, RunSet, metric_columns

FOLD_COLUMNS = ["entry", "method", "dataset", "sequence", "threshold_source", "metric",
                "level", "fold", "value"]
LEADERBOARD_COLUMNS = ["entry", "method", "dataset", "sequence", "metric", "level",
                       "threshold_source", "mean", "std", "n_folds", "fold_values",
                       "n_volumes", "run_dirs", "flags"]


def _melt(df: pd.DataFrame, level: str, by_volume: bool) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=FOLD_COLUMNS + ["n_volumes", "run_dir"])
    df = df.copy()
    for col, default in (("sequence", ""), ("threshold_source", "")):
        if col not in df.columns:
            df[col] = default
    metrics = metric_columns(df)
    long = df.melt(id_vars=["entry", "method", "dataset", "sequence", "threshold_source",
                            "fold", "run_dir"], value_vars=metrics, var_name="metric")
    long = long.dropna(subset=["value"])
    keys = ["entry", "method", "dataset", "sequence", "threshold_source", "metric", "fold"]
    out = long.groupby(keys, as_index=False).agg(
        value=("value", "mean"), n_volumes=("value", "size"),
        run_dir=("run_dir", "first"))
    if not by_volume:
        out["n_volumes"] = np.nan
    out["level"] = level
    return out


def fold_values(rs: RunSet) -> pd.DataFrame:
    """One row per entry x dataset x threshold source x metric x fold (long format)."""
    parts = [_melt(rs.table("per_volume.csv"), "volume", by_volume=True),
             _melt(rs.table("recon_quality.csv"), "healthy", by_volume=True)]
    pdset = rs.table("per_dataset.csv")
    if not pdset.empty:
        pdset = pdset.copy()
        if "sequence" not in pdset.columns:
            pdset["sequence"] = ""
        pdset["value"] = pd.to_numeric(pdset["value"], errors="coerce")
        pdset["level"] = "dataset"
        pdset["n_volumes"] = np.nan
        parts.append(pdset[FOLD_COLUMNS + ["n_volumes", "run_dir"]])
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=FOLD_COLUMNS + ["n_volumes", "run_dir"])
    out = collapse_threshold_independent(pd.concat(parts, ignore_index=True))
    out["fold"] = out["fold"].astype(int)
    return out.sort_values(["dataset", "metric", "level", "threshold_source", "entry",
                            "fold"]).reset_index(drop=True)


ANY_THRESHOLD = "any"


def collapse_threshold_independent(folds: pd.DataFrame) -> pd.DataFrame:
    """Metrics such as AUPRC are repeated on every threshold-source row of
    per_volume.csv. Where a metric's per-fold values are identical across all threshold
    sources for every entry of a dataset, keep one copy with threshold_source "any"."""
    keys = ["dataset", "sequence", "metric", "level"]
    parts = []
    for _, g in folds.groupby(keys, sort=False):
        if g["threshold_source"].nunique() > 1:
            per_fold = g.groupby(["entry", "fold"])
            spread = per_fold["value"].max() - per_fold["value"].min()
            complete = per_fold["threshold_source"].nunique() == g["threshold_source"].nunique()
            if bool((spread <= 1e-12).all()) and bool(complete.all()):
                g = g.drop_duplicates(["entry", "fold"]).assign(threshold_source=ANY_THRESHOLD)
        parts.append(g)
    return pd.concat(parts, ignore_index=True)


def format_fold_values(folds: pd.Series, values: pd.Series) -> str:
    """Per-fold values as a string column: '0:0.531200;1:0.540100'."""
    return ";".join(f"{int(f)}:{v:.6g}" for f, v in zip(folds, values))


def summarise(folds: pd.DataFrame, flags: list[Flag] | None = None) -> pd.DataFrame:
    """The tidy leaderboard: one row per entry x dataset x metric x level x threshold
    source with mean, std (ddof=1) over folds, n_folds and the per-fold values."""
    keys = ["entry", "method", "dataset", "sequence", "metric", "level", "threshold_source"]
    rows = []
    for key, g in folds.groupby(keys, sort=False):
        g = g.sort_values("fold")
        v = g["value"].to_numpy(float)
        rows.append(dict(zip(keys, key), mean=float(np.mean(v)),
                         std=float(np.std(v, ddof=1)) if len(v) > 1 else np.nan,
                         n_folds=len(v), fold_values=format_fold_values(g["fold"], g["value"]),
                         n_volumes=g["n_volumes"].sum(min_count=1),
                         run_dirs=";".join(sorted(set(g["run_dir"])))))
    board = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS[:-1])
    board["n_volumes"] = board["n_volumes"].astype("Int64")
    board["flags"] = [row_flags(flags or [], e, d) for e, d in
                      zip(board["entry"], board["dataset"])]
    return board[LEADERBOARD_COLUMNS]


def row_flags(flags: list[Flag], entry: str, dataset: str) -> str:
    """Flags that concern this entry on this dataset (global flags concern every row)."""
    kinds = [f.kind for f in flags
             if f.entry in (None, entry) and f.dataset in (None, dataset)]
    return ";".join(dict.fromkeys(kinds))
