"""Read, validate and merge run directories (the results contract) into one `RunSet`.

A run directory holds `per_volume.csv` and/or `per_dataset.csv`, and optionally
`recon_quality.csv`, `timings.csv`, `noise_levels.csv`, `config.json`,
`environment.json`. Every row gets a `run_dir` column so that any number can be traced
back to the directory it came from.

Merging never hides a problem: duplicates with equal numbers are dropped with a flag,
duplicates with different numbers are a hard error naming both run directories, and
disagreements on protocol tags are flagged (see `consistency_flags`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..runconfig import RunConfig
from ..rundir import RunDir
from ..tags import TAGS_COLUMN, decode_tags

# Columns that identify a result row (never metrics, even when numeric).
ID_COLUMNS = ("method", "fold", "dataset", "sequence", "volume", "threshold_source")
# Numeric columns that describe a row instead of scoring it.
NON_METRIC_NUMERIC = frozenset({
    "fold", "threshold", "seed", "protocol_version", "epoch", "step", "t", "contrast",
    "n_volumes", "fpr_target", "run_dir",
    # voxel counts written by the protocol: context for a row, not something to rank by
    "tp", "fp", "fn", "predicted_voxels", "lesion_voxels", "anomalous_voxels", "healthy_voxels",
    "n_lesions", "lesions_detected",
})
# A method's result tags (its result_tags(): e.g. pretrained=False, ens=True) make two
# result rows different leaderboard entries, so variants are never averaged together.
# Rows carry them in the `tags` column (a JSON object, written by the runner from the
# part's record); which columns are tags is read from there, never from a list here.
# Tags that must agree across everything that is compared in one table.
CONSISTENCY_TAGS = ("protocol_version", "postprocess", "profile", "auc_region", "data_source")

# File name -> required columns.
SCHEMAS = {
    "per_volume.csv": ("method", "fold", "dataset", "volume", "threshold_source"),
    "per_dataset.csv": ("method", "fold", "dataset", "threshold_source", "metric", "value"),
    "recon_quality.csv": ("method", "fold", "dataset"),
    "timings.csv": ("method", "fold"),
    "noise_levels.csv": ("method", "fold", "dataset", "t"),
}
# Keys under which one row may appear only once in a merged table.
KEYS = {
    "per_volume.csv": ("entry", "fold", "dataset", "sequence", "volume", "threshold_source"),
    "per_dataset.csv": ("entry", "fold", "dataset", "sequence", "threshold_source", "metric"),
    # the healthy IXI test set is scored once per sequence under the same volume names
    "recon_quality.csv": ("entry", "fold", "dataset", "sequence", "volume"),
    "timings.csv": ("entry", "sequence", "fold", "hardware"),
    "noise_levels.csv": ("entry", "fold", "dataset", "sequence", "t"),
}


@dataclass
class Flag:
    """One problem found while merging: `kind` is machine-readable, `message` says it."""

    kind: str
    message: str
    entry: str | None = None
    dataset: str | None = None

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


@dataclass
class RunSet:
    """All tables of the merged runs (empty DataFrames where no run had the file)."""

    run_dirs: list[Path]
    tables: dict[str, pd.DataFrame]
    configs: dict[str, RunConfig] = field(default_factory=dict)  # runs with config.json
    environments: dict[str, dict] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns that score a row: anything numeric that is not an id or a tag."""
    skip = set(ID_COLUMNS) | NON_METRIC_NUMERIC | set(tag_keys(df)) | set(CONSISTENCY_TAGS)
    skip |= {"entry", "hardware", "device", "run_dir", "flags", TAGS_COLUMN}
    return [c for c in df.columns
            if c not in skip and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def row_tags(df: pd.DataFrame) -> pd.Series:
    """Each row's result tags ({} for rows without any), from the `tags` column."""
    if TAGS_COLUMN not in df.columns:
        return pd.Series([{}] * len(df), index=df.index, dtype=object)
    cache: dict = {}
    return df[TAGS_COLUMN].map(lambda t: cache.setdefault(t, decode_tags(t)))


def tag_keys(df: pd.DataFrame) -> list[str]:
    """Every tag name recorded on some row, in first-seen order."""
    seen: dict[str, None] = {}
    for tags in row_tags(df).drop_duplicates().tolist() if TAGS_COLUMN in df.columns else []:
        seen.update(dict.fromkeys(tags))
    return list(seen)


def entry_names(df: pd.DataFrame) -> pd.Series:
    """Leaderboard entry per row: the method name plus each of its recorded result tags,
    e.g. `rd [pretrained=False] [backbone=wide_resnet50_2]`, so that variants are never
    averaged together."""
    suffix = row_tags(df).map(lambda tags: "".join(f" [{k}={_tag_text(v)}]"
                                                   for k, v in tags.items()))
    return df["method"].astype(str) + suffix


def _tag_text(value) -> str:
    # an integer tag read from a column with gaps (other methods lack it) comes back as 128.0
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _read_csv(path: Path, name: str, run_dir: Path) -> pd.DataFrame:
    """One results table, checked: its columns, integer folds, readable tags, and every
    metric in its range (:func:`benchmark.validate.metric_problems`), so that a damaged
    or hand-edited number never reaches a table."""
    from ..validate import MetricError, metric_problems

    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path}: file is empty") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV table ({err})") from None
    missing = [c for c in SCHEMAS[name] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}; "
                         f"found {list(df.columns)}")
    if TAGS_COLUMN in df.columns:
        for i, text in enumerate(df[TAGS_COLUMN]):
            try:
                ok = isinstance(decode_tags(text), dict)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{path} line {i + 2}: column {TAGS_COLUMN} {text!r} is not "
                                 "a JSON object of result tags")
    if name == "per_volume.csv" and not metric_columns(df):
        raise ValueError(f"{path}: no numeric metric column (e.g. auprc, dice)")
    for col in ("method", "dataset", "sequence", "threshold_source", "hardware", "volume"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    if "fold" in df.columns:
        folds = pd.to_numeric(df["fold"], errors="coerce")
        bad = folds.isna() | (folds % 1 != 0) | (folds < 0) | (folds > 999)
        if bad.any():
            raise ValueError(f"{path} line {int(bad.to_numpy().argmax()) + 2}: fold "
                             f"{df['fold'][bad].iloc[0]!r} is not a fold number")
        df["fold"] = folds.astype(int)
    problems = metric_problems(df, name, str(run_dir))
    if problems:
        raise MetricError("; ".join(str(p) for p in problems))
    return df


def load_run(run_dir: str | Path) -> RunSet:
    """Read one run directory; a missing optional file gives an empty table."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    tables, run = {}, RunDir(run_dir)
    for name in SCHEMAS:
        path = run.find_table(name)
        if path is not None:
            df = _read_csv(path, name, run_dir)
            df["run_dir"] = str(run_dir)
            df["entry"] = entry_names(df)
            tables[name] = df
    if "per_volume.csv" not in tables and "per_dataset.csv" not in tables:
        raise FileNotFoundError(f"{run_dir}: neither per_volume.csv nor per_dataset.csv "
                                "found; is this a run directory?")
    configs = {str(run_dir): run.run_config()} if run.exists() else {}
    environment = run.environment()
    if "timings.csv" in tables:
        tables["timings.csv"] = _fill_hardware(tables["timings.csv"], environment)
    return RunSet([run_dir], tables, configs, {str(run_dir): environment})


def _fill_hardware(timings: pd.DataFrame, env: dict) -> pd.DataFrame:
    """Timings without a hardware column take it from environment.json (or 'unknown')."""
    fallback = str(env.get("hardware") or env.get("device_name") or env.get("device")
                   or "unknown")
    if "hardware" not in timings.columns:
        timings["hardware"] = fallback
    timings["hardware"] = timings["hardware"].replace("", fallback)
    return timings


def _drop_duplicates(df: pd.DataFrame, name: str, flags: list[Flag]) -> pd.DataFrame:
    """Rows with the same key: equal numbers -> keep the first and flag (one flag per
    entry, dataset and set of run dirs); different numbers -> ValueError naming the two
    run directories."""
    key = [c for c in KEYS[name] if c in df.columns]
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return df
    values = ["value"] if name == "per_dataset.csv" else metric_columns(df)
    rows = df[dup]
    grouped = rows.groupby(key, sort=False, dropna=False)
    mine = rows[values].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    first = grouped[values].transform("first").apply(pd.to_numeric, errors="coerce")
    same = np.isclose(mine, first.to_numpy(float), rtol=1e-9, atol=1e-12, equal_nan=True)
    if not same.all() and name == "timings.csv":
        # two measurements of one fold on the same hardware differ naturally: keep the
        # first, but say so
        flags.append(Flag("duplicate_timing", f"{name}: repeated (method, fold, hardware) "
                          f"rows with different timings in {sorted(set(rows['run_dir']))}; "
                          "kept the first of each"))
        return df.drop_duplicates(key, keep="first")
    if not same.all():
        i = int(np.flatnonzero(~same.all(axis=1))[0])
        bad = rows.iloc[i]
        origin = grouped["run_dir"].transform("first").iloc[i]
        raise ValueError(
            f"conflicting results in {name} for "
            f"{', '.join(f'{k}={v}' for k, v in zip(key, bad[key]))}: "
            f"{origin} and {bad['run_dir']} report different numbers")
    dirs = grouped["run_dir"].transform(lambda d: ";".join(sorted(set(d))))
    summary = rows.assign(dirs=dirs).groupby(
        ["entry", "dirs"] + (["dataset"] if "dataset" in rows.columns else []), sort=False)
    for k, g in summary:
        entry, where = k[0], k[1]
        dataset = k[2] if len(k) > 2 else None
        n = len(g.drop_duplicates(key))
        flags.append(Flag("duplicate", f"{name}: {n} row(s) of {entry}"
                          + (f" on {dataset}" if dataset else "")
                          + f" appear in several runs ({where}); identical numbers, kept one",
                          entry=entry, dataset=dataset))
    return df.drop_duplicates(key, keep="first")


def merge_runs(runs: list[RunSet]) -> RunSet:
    """Concatenate runs; drop exact duplicates (flagged), raise on conflicts."""
    flags = [f for r in runs for f in r.flags]
    tables = {}
    for name in SCHEMAS:
        parts = [r.tables[name] for r in runs if name in r.tables]
        if parts:
            tables[name] = _drop_duplicates(pd.concat(parts, ignore_index=True), name, flags)
    merged = RunSet([d for r in runs for d in r.run_dirs], tables, flags=flags)
    for r in runs:
        merged.configs.update(r.configs)
        merged.environments.update(r.environments)
    merged.flags.extend(consistency_flags(merged))
    return merged


def load_runs(run_dirs: list[str | Path]) -> RunSet:
    """Read and merge run directories; the same directory given twice is an error."""
    resolved = [Path(d).resolve() for d in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"the same run directory was given twice: {run_dirs}")
    return merge_runs([load_run(d) for d in run_dirs])


def select_folds(rs: RunSet, folds: list[int] | None) -> RunSet:
    """Only the rows of ``folds`` (None: ``rs`` as it is); a fold no run has is an error."""
    if folds is None:
        return rs
    have = {int(f) for t in rs.tables.values() if "fold" in t.columns for f in t["fold"]}
    missing = sorted(set(folds) - have)
    if missing:
        raise ValueError(f"--folds: fold(s) {missing} are in none of the runs "
                         f"(they have {sorted(have)})")
    tables = {name: (t[t["fold"].isin(folds)].reset_index(drop=True)
                     if "fold" in t.columns else t) for name, t in rs.tables.items()}
    kept = RunSet(rs.run_dirs, tables, rs.configs, rs.environments,
                  [f for f in rs.flags if f.kind != "fewer_folds"])
    kept.flags += [f for f in consistency_flags(kept) if f.kind == "fewer_folds"]
    return kept


def consistency_flags(rs: RunSet) -> list[Flag]:
    """Protocol tags that disagree, entries with fewer folds, missing datasets."""
    flags = []
    scored = [rs.table(n) for n in ("per_volume.csv", "per_dataset.csv") if n in rs.tables]
    rows = pd.concat(scored, ignore_index=True) if scored else pd.DataFrame()
    for tag in [c for c in rows.columns if c in CONSISTENCY_TAGS]:
        seen = rows.groupby(rows[tag].astype(str))["run_dir"].unique()
        if len(seen) > 1:
            where = "; ".join(f"{v!r} in {sorted(d)}" for v, d in seen.items())
            flags.append(Flag(f"mixed_{tag}", f"runs disagree on {tag}: {where}"))
    if rows.empty:
        return flags
    folds = rows.groupby(["entry", "dataset"])["fold"].nunique()
    for dataset, per_entry in folds.groupby(level="dataset"):
        most = per_entry.max()
        for (entry, _), n in per_entry.items():
            if n < most:
                flags.append(Flag("fewer_folds", f"{entry} has {n} fold(s) on {dataset}, "
                                  f"others have {most}", entry=entry, dataset=dataset))
    datasets = set(rows["dataset"])
    for entry, have in rows.groupby("entry")["dataset"].unique().items():
        for dataset in sorted(datasets - set(have)):
            flags.append(Flag("missing_dataset", f"{entry} has no results on {dataset}",
                              entry=entry))
    return flags
