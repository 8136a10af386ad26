"""Results broken down by lesion size and by site: `stratified.csv` (issue 18).

A single number per data set hides what matters most in anomaly detection: whether a
method finds small lesions at all, and whether it holds up on another scanner. Here the
per-volume results are split into strata and every stratum goes through the same
machinery as the whole leaderboard (per-fold values, mean and std over folds,
`significance.run_tests`).

Strata, chosen per data set from the data so that each holds enough volumes:
- `lesion_size`: volumes binned by their annotated lesion volume (`lesion_voxels`),
  equal-count quantile bins. The number of bins is `size_bins`, fewer when there are
  fewer than `min_volumes` volumes per bin; volumes with the same lesion volume stay in
  one bin; a data set with fewer than 2 x `min_volumes` lesion volumes is not binned.
  Volumes without any lesion voxel are left out (Dice and detection are undefined).
- `site`: the volume's site or scanner (`site` column of per_volume.csv, else of the
  split CSV under the run's data root), sites with at least `min_volumes` volumes; a data
  set with fewer than two such sites is not split.
Which bins and sites were used, and what was left out, is written to `stratified.md`
and to the stratum columns of `stratified.csv`.

Beyond the per-volume metrics, every stratum gets the pooled lesion detection rate per
fold (`detection_rate_pooled`, level `dataset`): detected lesions / lesions of all its
volumes, so a volume with ten lesions weighs ten times one with a single lesion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import LEADERBOARD_COLUMNS, fold_values, summarise
from .load import RunSet, metric_columns
from .significance import SIGNIFICANCE_COLUMNS, SignificanceSettings, run_tests

STRATUM_COLUMNS = ["stratify_by", "stratum", "stratum_index", "stratum_low", "stratum_high",
                   "stratum_volumes"]
STRATIFIED_COLUMNS = LEADERBOARD_COLUMNS[:4] + STRATUM_COLUMNS + LEADERBOARD_COLUMNS[4:9] \
    + ["std_volumes"] + LEADERBOARD_COLUMNS[9:]
# (metric, level, threshold source) tested per stratum unless all metrics are asked for
TESTED = (("auprc", "volume", "any"), ("dice", "volume", "oracle"),
          ("detection_rate", "volume", "oracle"), ("detection_rate_pooled", "dataset", "oracle"))
SIZE_NAMES = {2: ("small", "large"), 3: ("small", "medium", "large")}


@dataclass(frozen=True)
class StrataSettings:
    """size_bins: at most this many lesion-size bins; min_volumes: the fewest volumes a
    stratum (size bin or site) may hold."""

    size_bins: int = 3
    min_volumes: int = 5

    def __post_init__(self):
        if self.size_bins < 2 or self.min_volumes < 1:
            raise ValueError(f"size_bins must be >= 2 and min_volumes >= 1, got "
                             f"size_bins={self.size_bins}, min_volumes={self.min_volumes}")


@dataclass
class Strata:
    """The result: tidy rows, their tests, which volume went where, and notes."""

    results: pd.DataFrame      # STRATIFIED_COLUMNS
    significance: pd.DataFrame  # SIGNIFICANCE_COLUMNS + stratify_by, stratum
    assignment: pd.DataFrame   # dataset, sequence, volume, lesion_voxels, site, strata
    notes: list[str]


# ---------------------------------------------------------------------------- binning
def size_bins(voxels: pd.Series, n_bins: int, min_volumes: int) -> list[np.ndarray]:
    """Equal-count bins of lesion volumes; returns the sorted distinct values of each bin.

    voxels: one lesion volume per volume (> 0). Bins are cut between distinct values only
    (ties stay together), at the quantile ranks i * n / k; a bin left with fewer than
    `min_volumes` volumes is merged into its smaller neighbour. [] when fewer than two
    bins of `min_volumes` volumes fit.
    """
    v = np.sort(np.asarray(voxels, dtype=float))
    k = min(n_bins, len(v) // min_volumes)
    if k < 2:
        return []
    distinct, counts = np.unique(v, return_counts=True)
    ends = np.cumsum(counts)  # volumes up to and including each distinct value
    cuts = sorted({int(np.searchsorted(ends, len(v) * i / k)) for i in range(1, k)})
    groups = [g for g in np.split(np.arange(len(distinct)), [c + 1 for c in cuts]) if g.size]
    sizes = [int(counts[g].sum()) for g in groups]
    while len(groups) > 1 and min(sizes) < min_volumes:
        i = int(np.argmin(sizes))
        j = i - 1 if i == len(groups) - 1 or (i > 0 and sizes[i - 1] <= sizes[i + 1]) else i + 1
        lo, hi = sorted((i, j))
        groups[lo:hi + 1] = [np.concatenate([groups[lo], groups[hi]])]
        sizes[lo:hi + 1] = [sizes[lo] + sizes[hi]]
    return [distinct[g] for g in groups] if len(groups) > 1 else []


def _size_names(k: int) -> tuple[str, ...]:
    return SIZE_NAMES.get(k, tuple(f"Q{i + 1}" for i in range(k)))


def volume_table(rs: RunSet) -> pd.DataFrame:
    """One row per test volume: dataset, sequence, volume, lesion_voxels, site."""
    pv = rs.table("per_volume.csv")
    if pv.empty or "lesion_voxels" not in pv.columns:
        return pd.DataFrame(columns=["dataset", "sequence", "volume", "lesion_voxels", "site"])
    cols = ["dataset", "sequence", "volume", "lesion_voxels"] + \
        (["site"] if "site" in pv.columns else [])
    vols = pv[cols].drop_duplicates(["dataset", "sequence", "volume"]).copy()
    if "site" not in vols.columns or vols["site"].isna().all():
        found = sites_from_data_roots(rs, set(vols["dataset"]))
        vols["site"] = [found.get((d, v)) for d, v in zip(vols["dataset"], vols["volume"])]
    vols["site"] = vols["site"].where(vols["site"].notna() & (vols["site"].astype(str) != ""))
    return vols.reset_index(drop=True)


def sites_from_data_roots(rs: RunSet, datasets: set[str]) -> dict[tuple[str, str], str]:
    """(dataset, volume) -> site from the `site` column of the split CSVs under each run's
    data root (config.json), for runs scored before per_volume.csv carried the site."""
    from ..data.layout import DataLayoutError, data_dir, split_file

    found = {}
    for config in rs.configs.values():
        root = config.data_root
        try:
            splits = data_dir(Path(root)) / "splits" if root else None
        except DataLayoutError:
            continue
        for dataset in datasets if splits else ():
            csv = split_file(splits, f"{dataset}_test")
            if not csv.is_file():
                continue
            df = pd.read_csv(csv)
            if "site" in df.columns and "img_name" in df.columns:
                found.update({(dataset, str(n)): s for n, s in zip(df["img_name"], df["site"])
                              if isinstance(s, str) and s})
    return found


def assign_strata(vols: pd.DataFrame, settings: StrataSettings
                  ) -> tuple[pd.DataFrame, list[str]]:
    """Which volume goes into which stratum: rows (dataset, sequence, volume, +
    STRATUM_COLUMNS), one per volume and stratification; plus notes saying what was
    binned how and what was left out."""
    rows, notes = [], []
    n_min = settings.min_volumes
    for (dataset, sequence), g in vols.groupby(["dataset", "sequence"], sort=True):
        where = f"{dataset}" + (f" ({sequence})" if sequence else "")
        lesion = g[g["lesion_voxels"] > 0]
        if len(lesion) < len(g):
            notes.append(f"{where}: {len(g) - len(lesion)} volume(s) without lesion voxels "
                         "left out of the lesion-size bins")
        bins = size_bins(lesion["lesion_voxels"], settings.size_bins, n_min)
        if not bins:
            notes.append(f"{where}: {len(lesion)} volume(s) with lesions, fewer than "
                         f"2 x {n_min}: not binned by lesion size")
        for i, (name, values) in enumerate(zip(_size_names(len(bins)), bins)):
            sel = lesion[lesion["lesion_voxels"].isin(values)]
            low, high = int(values.min()), int(values.max())
            stratum = {"stratify_by": "lesion_size", "stratum": name, "stratum_index": i,
                       "stratum_low": low, "stratum_high": high, "stratum_volumes": len(sel)}
            rows += [{"dataset": dataset, "sequence": sequence, "volume": v, **stratum}
                     for v in sel["volume"]]
        rows += _site_rows(g, dataset, sequence, where, n_min, notes)
    if rows:
        notes.insert(0, f"lesion-size bins: up to {settings.size_bins} equal-count bins of "
                        f"lesion voxels per data set, each with >= {n_min} volumes; sites "
                        f"with >= {n_min} volumes")
    return pd.DataFrame(rows, columns=["dataset", "sequence", "volume"] + STRATUM_COLUMNS), notes


def _site_rows(g: pd.DataFrame, dataset: str, sequence: str, where: str, n_min: int,
               notes: list[str]) -> list[dict]:
    known = g[g["site"].notna()]
    if known.empty:
        return []
    counts = known["site"].value_counts()
    kept = sorted(counts[counts >= n_min].index)
    small = sorted(counts[counts < n_min].index)
    if len(kept) < 2:
        notes.append(f"{where}: sites {dict(sorted(counts.items()))}: fewer than two with "
                     f">= {n_min} volumes, not split by site")
        return []
    if small:
        notes.append(f"{where}: site(s) {small} with < {n_min} volumes left out of the site "
                     "strata")
    return [{"dataset": dataset, "sequence": sequence, "volume": v, "stratify_by": "site",
             "stratum": s, "stratum_index": i, "stratum_low": np.nan, "stratum_high": np.nan,
             "stratum_volumes": int(counts[s])}
            for i, s in enumerate(kept) for v in known.loc[known["site"] == s, "volume"]]


# ---------------------------------------------------------------------------- results
def _pooled_detection(pv: pd.DataFrame) -> pd.DataFrame:
    """Per-fold detected / all lesions of the volumes given (fold_values' layout)."""
    if not {"n_lesions", "lesions_detected"} <= set(pv.columns):
        return pd.DataFrame()
    keys = ["entry", "method", "dataset", "sequence", "threshold_source", "fold"]
    g = pv.dropna(subset=["n_lesions"]).groupby(keys, as_index=False).agg(
        detected=("lesions_detected", "sum"), lesions=("n_lesions", "sum"),
        n_volumes=("volume", "nunique"), run_dir=("run_dir", "first"))
    g = g[g["lesions"] > 0]
    return g.assign(metric="detection_rate_pooled", level="dataset",
                    value=g["detected"] / g["lesions"]).drop(columns=["detected", "lesions"])


def _volume_std(pv: pd.DataFrame, board: pd.DataFrame) -> pd.Series:
    """Sample std of the per-volume values behind each board row (all folds together);
    NaN for pooled rows. With one fold this is the only spread there is."""
    long = pv.melt(id_vars=["entry", "fold", "volume", "threshold_source"],
                   value_vars=metric_columns(pv), var_name="metric").dropna(subset=["value"])
    by_source = long.groupby(["entry", "metric", "threshold_source"])["value"].std()
    anyway = long.drop_duplicates(["entry", "metric", "fold", "volume"]) \
        .groupby(["entry", "metric"])["value"].std()
    out = []
    for e, m, lvl, s in zip(board["entry"], board["metric"], board["level"],
                            board["threshold_source"]):
        if lvl != "volume":
            out.append(np.nan)
        else:
            out.append(anyway.get((e, m), np.nan) if s == "any"
                       else by_source.get((e, m, s), np.nan))
    return pd.Series(out, index=board.index, dtype=float)


def stratify(rs: RunSet, settings: SignificanceSettings | None = None,
             strata: StrataSettings | None = None, test_metrics: str = "tables") -> Strata:
    """Stratified leaderboard rows and their significance tests (module docstring)."""
    settings, strata = settings or SignificanceSettings(), strata or StrataSettings()
    vols = volume_table(rs)
    assignment, notes = assign_strata(vols, strata) if not vols.empty else (pd.DataFrame(), [])
    empty = Strata(pd.DataFrame(columns=STRATIFIED_COLUMNS),
                   pd.DataFrame(columns=SIGNIFICANCE_COLUMNS + ["stratify_by", "stratum"]),
                   assignment, notes)
    if assignment.empty:
        return empty
    pv = rs.table("per_volume.csv")
    results, tests = [], []
    keys = ["dataset", "sequence", "stratify_by", "stratum"]
    for key, members in assignment.groupby(keys, sort=False):
        dataset, sequence, by, name = key
        sub = pv[(pv["dataset"] == dataset) & (pv["sequence"] == sequence)
                 & pv["volume"].isin(set(members["volume"]))]
        folds = fold_values(RunSet([], {"per_volume.csv": sub}))
        folds = pd.concat([f for f in (folds, _pooled_detection(sub)) if not f.empty],
                          ignore_index=True)
        board = summarise(folds, rs.flags)
        board["std_volumes"] = _volume_std(sub, board)
        first = members.iloc[0]
        for col in STRATUM_COLUMNS:
            board[col] = first[col]
        results.append(board)
        groups = list(board[["dataset", "sequence", "metric", "level", "threshold_source"]]
                      .drop_duplicates().itertuples(index=False, name=None))
        if test_metrics != "all":
            groups = [g for g in groups if g[2:] in TESTED]
        sig = run_tests(folds, {"volume": sub}, groups, settings)
        tests.append(sig.assign(stratify_by=by, stratum=name))
    out = pd.concat(results, ignore_index=True)[STRATIFIED_COLUMNS]
    out = out.sort_values(["dataset", "stratify_by", "stratum_index", "metric", "level",
                           "threshold_source", "entry"], kind="stable").reset_index(drop=True)
    sig = pd.concat(tests, ignore_index=True) if tests else empty.significance
    return Strata(out, sig, assignment, notes)


def write_strata(result: Strata, out: Path) -> list[Path]:
    """stratified.csv, stratified_significance.csv, stratified.md (the bins and notes)."""
    out = Path(out)
    paths = [out / "stratified.csv", out / "stratified_significance.csv", out / "stratified.md"]
    result.results.to_csv(paths[0], index=False)
    result.significance.to_csv(paths[1], index=False)
    paths[2].write_text(render_strata_markdown(result))
    return paths


def strata_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x stratification x stratum: its range and volume count."""
    cols = ["dataset", "sequence"] + STRATUM_COLUMNS
    return results[cols].drop_duplicates().sort_values(
        ["dataset", "stratify_by", "stratum_index"]).reset_index(drop=True)


def render_strata_markdown(result: Strata) -> str:
    """What each stratum is (lesion-voxel range, volumes) and what was left out."""
    lines = ["### Stratified results", "",
             ("Per-volume metrics by lesion size and by site (stratified.csv; tests in "
              "stratified_significance.csv)."), ""]
    if result.results.empty:
        lines.append("No strata: " + ("; ".join(result.notes) if result.notes else
                                      "per_volume.csv has no lesion_voxels column."))
        return "\n".join(lines) + "\n"
    lines += ["| data set | by | stratum | lesion voxels | volumes |", "|---|---|---|---|---:|"]
    for r in strata_summary(result.results).itertuples(index=False):
        size = f"{int(r.stratum_low)}–{int(r.stratum_high)}" if r.stratify_by == "lesion_size" \
            else ""
        seq = f" ({r.sequence})" if r.sequence else ""
        lines.append(f"| {r.dataset}{seq} | {r.stratify_by} | {r.stratum} | {size} | "
                     f"{r.stratum_volumes} |")
    lines += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"

