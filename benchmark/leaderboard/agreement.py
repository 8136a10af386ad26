"""Rank agreement between a board and a reference ranking: values, bootstrap, correlations.

The numbers compared per method and cohort (docs/rank-agreement.md):
- the *table* statistic: the number the board's Table 1/2 shows (e.g. pooled AUPRC of a
  fold, mean over folds), read from leaderboard.csv;
- the *volume* statistic: the metric of each test volume (per_volume.csv or
  recon_quality.csv of the board's runs), mean over volumes, then over folds. A pooled
  metric needs the voxel maps, so the bootstrap resamples this one instead.

The bootstrap draws test volumes with replacement, the same draw for every method
(paired) and for every fold that scored the same volumes; folds with other volumes draw
their own. Spearman's rho (average ranks for ties) and Kendall's tau-b come from
scipy.stats.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .tables import ColumnSpec, resolve

REQUIRED = ("leaderboard.csv", "inputs.json")


@dataclass(frozen=True)
class VolumeSource:
    """Where one value per test volume of a metric is found in a run directory."""

    records: str                       # per_volume.csv or recon_quality.csv
    field: str                         # its column
    threshold_source: str | None = None  # rows of this source only (None: any, deduplicated)


@dataclass
class Board:
    """A leaderboard folder: its tidy table and the run directories it was built from."""

    path: Path
    table: pd.DataFrame
    run_dirs: list[str]
    folds: list[int] | None = None   # the folds the board was built from (None: all)

    def entries(self) -> dict[str, str]:
        """{entry: method} in the board's order."""
        pairs = self.table[["entry", "method"]].drop_duplicates("entry")
        return dict(zip(pairs["entry"], pairs["method"]))


def read_board(path: str | Path) -> Board:
    """Read leaderboard.csv and inputs.json of a folder written by ``benchmark leaderboard``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"board folder not found: {path}")
    missing = [n for n in REQUIRED if not (path / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: no {' or '.join(missing)}; BOARD is a folder "
                                "written by `python -m benchmark leaderboard`")
    table = pd.read_csv(path / "leaderboard.csv", keep_default_na=False,
                        na_values={"mean": [""], "std": [""]})
    need = ("entry", "method", "dataset", "sequence", "metric", "level", "threshold_source",
            "mean")
    absent = [c for c in need if c not in table.columns]
    if absent:
        raise ValueError(f"{path / 'leaderboard.csv'}: missing column(s) {absent}")
    for col in ("entry", "method", "dataset", "sequence", "metric", "level",
                "threshold_source"):
        table[col] = table[col].astype(str)
    try:
        inputs = json.loads((path / "inputs.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path / 'inputs.json'}: not valid JSON ({err})") from None
    folds = inputs.get("folds")
    return Board(path, table, [str(r) for r in inputs.get("run_dirs", [])],
                 None if folds is None else [int(f) for f in folds])


def find_run_dir(board: Path, given: str) -> Path:
    """A run directory named in inputs.json: as given (relative to the working directory),
    else the longest tail of it that exists inside the board folder
    (``leaderboard/synthetic-reference/runs/a`` -> ``BOARD/runs/a``)."""
    path = Path(given)
    if path.is_dir():
        return path
    for k in range(len(path.parts)):
        candidate = board.joinpath(*path.parts[k:])
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{board / 'inputs.json'} names run directory {given}, which is "
                            f"not here (as given, nor inside {board}); pass the run "
                            "directories with --runs, or --resamples 0 for no bootstrap")


def table_values(board: Board, dataset: str, sequence: str, spec: ColumnSpec) -> pd.Series:
    """{entry: mean over folds} of the number the board's table shows in this column."""
    group = resolve(board.table, dataset, sequence, spec)
    if group is None:
        raise ValueError(f"{board.path / 'leaderboard.csv'} has no {spec.label} on {dataset} "
                         f"({sequence})")
    t = board.table
    keys = ("dataset", "sequence", "metric", "level", "threshold_source")
    sel = np.logical_and.reduce([t[k] == v for k, v in zip(keys, group)])
    return t.loc[sel].set_index("entry")["mean"].astype(float)


@dataclass
class VolumeValues:
    """One metric per test volume: values (entries, folds, volumes), NaN where a fold did
    not score the volume or the metric is undefined; present (folds, volumes)."""

    entries: list[str]
    folds: list[int]
    volumes: list[str]
    values: np.ndarray
    present: np.ndarray


def volume_values(records: pd.DataFrame, entries: list[str], dataset: str, sequence: str,
                  source: VolumeSource) -> VolumeValues:
    """Gather the per-volume values; every entry of a fold must have the fold's volumes
    (the bootstrap pairs volumes across methods), else a ValueError names the entry."""
    where = f"{source.records} of the board's runs"
    if records.empty or source.field not in records.columns:
        raise ValueError(f"{where}: no {source.field!r} column")
    sel = records[(records["dataset"] == dataset) & records["entry"].isin(entries)]
    if "sequence" in sel.columns:
        sel = sel[sel["sequence"].astype(str) == sequence]
    if source.threshold_source is not None:
        sel = sel[sel["threshold_source"] == source.threshold_source]
    sel = sel.drop_duplicates(["entry", "fold", "volume"])
    absent = [e for e in entries if e not in set(sel["entry"])]
    if absent:
        raise ValueError(f"{where}: no {source.field} of {absent} on {dataset} ({sequence})")
    for fold, g in sel.groupby("fold"):
        full = set(g["volume"])
        for entry, have in g.groupby("entry")["volume"]:
            if set(have) != full:
                lack = sorted(full - set(have))
                raise ValueError(f"{where}: {entry} lacks volume(s) {lack[:5]} of {dataset} "
                                 f"fold {fold} that other entries scored; the bootstrap pairs "
                                 "volumes across methods")
    folds, volumes = sorted(sel["fold"].unique().tolist()), sorted(sel["volume"].unique())
    grid = sel.pivot(index="entry", columns=["fold", "volume"], values=source.field)
    grid = grid.reindex(index=entries,
                        columns=pd.MultiIndex.from_product([folds, volumes]))
    values = grid.to_numpy(float).reshape(len(entries), len(folds), len(volumes))
    scored = sel.groupby(["fold", "volume"]).size()
    present = scored.reindex(pd.MultiIndex.from_product([folds, volumes])).notna()
    return VolumeValues(entries, folds, list(volumes), values,
                        present.to_numpy().reshape(len(folds), len(volumes)))


def resample_counts(present: np.ndarray, resamples: int, rng: np.random.Generator
                    ) -> np.ndarray:
    """How often each volume is drawn: (resamples, folds, volumes). present: (folds,
    volumes) bool. Folds that scored the same volumes share one draw (the test set is one
    sample of volumes, scored by every fold's model); others draw their own."""
    n_folds, n_volumes = present.shape
    counts = np.zeros((resamples, n_folds, n_volumes))
    drawn: dict[bytes, np.ndarray] = {}
    for f in range(n_folds):
        key = present[f].tobytes()
        if key not in drawn:
            idx = np.flatnonzero(present[f])
            picks = idx[rng.integers(0, len(idx), size=(resamples, len(idx)))]
            c = np.zeros((resamples, n_volumes))
            np.add.at(c, (np.arange(resamples)[:, None], picks), 1.0)
            drawn[key] = c
        counts[:, f] = drawn[key]
    return counts


def volume_statistic(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per entry the weighted mean of its per-volume values within each fold (NaN values
    ignored), then the mean over its folds. values: (E, F, V); counts: (B, F, V) -> (B, E)."""
    valid = ~np.isnan(values)
    num = np.einsum("bfv,efv->bef", counts, np.where(valid, values, 0.0))
    den = np.einsum("bfv,efv->bef", counts, valid.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an entry without any value: NaN
        return np.nanmean(num / den, axis=2)


def correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Spearman rho, Kendall tau-b) of paired values; NaN if either has a NaN or is
    constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.isnan(x).any() or np.isnan(y).any() or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    from scipy import stats  # on use: `experiment rank-agreement --help` stays light

    rho = stats.spearmanr(x, y).statistic
    tau = stats.kendalltau(x, y, variant="b").statistic
    return float(rho), float(tau)


def bootstrap_correlations(values: np.ndarray, reference: np.ndarray, resamples: int,
                           present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(resamples, 2): Spearman and Kendall of each resample's volume statistic against
    the reference values (one per entry, in the order of ``values``)."""
    stat = volume_statistic(values, resample_counts(present, resamples, rng))
    return np.array([correlations(s, reference) for s in stat]).reshape(resamples, 2)


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the finite samples (NaN, NaN if there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 50 * (1 - confidence)
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)
