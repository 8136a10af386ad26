"""Check everything a run will read before anything is written or trained.

``benchmark run`` calls :func:`inspect_run` first: the methods and their configuration
(each method is built once, so missing pretrained weights surface now, not after the
other methods trained), folds and cohorts, the run directory's state (exists without
``--resume``; ``--resume`` with other settings), the data root, every split CSV the run
reads and every volume those name (readable, listed files matching the data set's
manifest, 3D, finite, image/mask/label on one grid, mask non-empty, label values as the
cohort declares). Every problem goes into one report; the run then stops with exit status
2 and no run directory. ``run --check`` does only this and prints what the run would do.

Input that is legitimate but odd (``--epochs 0`` for a method that trains, a healthy
training set too small to learn from) is a *warning*: printed once, and recorded in the
run's ``config.json`` (``warnings``), so the numbers carry it.

Metric tables are checked where they are written (scoring) and read (leaderboard):
:func:`metric_problems` names the run, part, row and column of every value outside its
range (:data:`METRIC_RANGES`).

Volumes are checked in a thread pool (zlib, sha256 and numpy release the GIL): all of
them, fully read, every time (docs/failures.md has the timings on the synthetic sets).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .data import layout
from .data.layout import DataLayoutError, VolumeRecord
from .rundir import RunDir

if TYPE_CHECKING:
    from .runconfig import RunConfig

MAX_SHOWN = 50  # problems printed; the rest are counted
# fewer healthy training volumes per fold than this is warned about: the smallest set the
# docs report a working run on is the synthetic quick set (32 per fold; real-mini: 38);
# issue 28's probe trained an AE on 12 subjects to a healthy-test SSIM of 0.07
MIN_TRAIN_VOLUMES = 30


@dataclass(frozen=True)
class Problem:
    """One thing that would make the run fail or mislead. ``culprit``: the file, flag or
    configuration key at fault; ``message`` says what is wrong (and names it again)."""

    culprit: str
    message: str

    def __str__(self) -> str:
        return self.message if self.culprit in self.message else f"{self.culprit}: {self.message}"


class ValidationError(ValueError):
    """The run was not started: the problems found before anything was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(report(problems))


def report(problems: list[Problem]) -> str:
    lines = [f"{len(problems)} problem(s) found before anything was written or trained:"]
    lines += [f"  - {p}" for p in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        lines.append(f"  ... and {len(problems) - MAX_SHOWN} more")
    return "\n".join(lines)


@dataclass
class RunCheck:
    """What :func:`inspect_run` found: problems, and what the run would do."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)   # legitimate but odd: recorded
    parts: dict[str, str] = field(default_factory=dict)     # part key -> "done" | "to run"
    data: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    # "<seq> fold<k>" -> {dataset: {split: volumes}}
    volumes: int = 0
    seconds: float = 0.0         # every check
    volume_seconds: float = 0.0  # reading and checking the volumes
    workers: int = 1

    def summary(self, cfg: RunConfig) -> str:
        run = RunDir(cfg.run_dir)
        state = ("resume" if cfg.resume else "new run") if run.exists() else "new run"
        todo = sum(s == "to run" for s in self.parts.values())
        lines = [(f"run {cfg.run_dir} ({state}): {len(self.parts)} part(s), {todo} to run, "
                  f"profile {cfg.profile.name}"),
                 f"data: {cfg.data_root} ({cfg.data_source})"
                 + (f", data options: {cfg.data_options.label()}"
                    if cfg.data_options.label() else "")]
        lines += [f"  {key}: {status}" for key, status in self.parts.items()]
        for where, sets in self.data.items():
            sizes = ", ".join(f"{d} " + "/".join(f"{n} {s}" for s, n in splits.items())
                              for d, splits in sets.items())
            lines.append(f"  {where}: {sizes}")
        lines.append(f"checked {self.volumes} volume(s) fully ({self.workers} threads) in "
                     f"{self.volume_seconds:.1f} s; all checks {self.seconds:.1f} s")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def check_run(cfg: RunConfig) -> list[Problem]:
    """Every problem a run with ``cfg`` would meet (empty: it can start)."""
    return inspect_run(cfg).problems


def inspect_run(cfg: RunConfig, workers: int | None = None) -> RunCheck:
    start = time.perf_counter()
    out = RunCheck()
    out.problems += _check_config(cfg)
    out.problems += _check_methods(cfg, out.warnings)
    out.problems += _check_run_dir(cfg)
    records = _check_splits(cfg, out)
    out.workers = max(1, min(workers or os.cpu_count() or 1, 8))
    volumes_start = time.perf_counter()
    out.problems += _check_volumes(records, out.workers)
    out.volume_seconds = time.perf_counter() - volumes_start
    out.volumes = len(records)
    out.parts = _parts(cfg)
    out.problems = list(dict.fromkeys(out.problems))  # one per problem, not per fold
    out.warnings = list(dict.fromkeys(out.warnings))
    out.seconds = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------- configuration
def folds_of(cfg: RunConfig) -> list[int]:
    return cfg.fold_list()


def _check_config(cfg: RunConfig) -> list[Problem]:
    problems = []
    bad = [f for f in folds_of(cfg) if not 0 <= f < layout.N_FOLDS]
    if bad:
        problems.append(Problem("--folds", f"--folds: {bad} out of range; folds are 0.."
                                f"{layout.N_FOLDS - 1}"))
    if len(set(folds_of(cfg))) != len(folds_of(cfg)):
        problems.append(Problem("--folds", f"--folds lists a fold twice: {folds_of(cfg)}"))
    bad = [s for s in cfg.sequences if s not in layout.SEQUENCES]
    if bad or not cfg.sequences:
        problems.append(Problem("--sequences", f"--sequences {bad or '(none)'}: allowed "
                                f"{', '.join(layout.SEQUENCES)}"))
    return problems


def _check_methods(cfg: RunConfig, warnings: list[Problem]) -> list[Problem]:
    from .registry import UnknownMethodError, get_method
    from .train import untrained_stages

    problems = []
    if not cfg.methods:
        problems.append(Problem("--methods", "--methods is empty"))
    for name in cfg.methods:
        try:
            cls = get_method(name)
        except UnknownMethodError as err:
            problems.append(Problem("--methods", str(err)))
            continue
        found = cfg.hparam_problems(name)
        problems += [Problem(f"{name} hyperparameters", p) for p in found]
        if found:
            continue
        try:  # weights that cannot be had, a choice a method checks itself, ...
            method = cls(**cfg.hparams(name))
        except Exception as err:  # noqa: BLE001 - any failure to build is a problem
            problems.append(Problem(f"method {name}", f"method {name} ({cfg.profile.name} "
                                    f"profile) cannot be built: {type(err).__name__}: {err}"))
            continue
        skipped = untrained_stages(method, cfg.profile, cfg.trainer.epochs)
        if skipped:
            warnings.append(Problem("--epochs", (
                f"--epochs {cfg.trainer.epochs}: {name} skips its training stage(s) "
                f"{', '.join(skipped)}, so it is scored with untrained weights there; its "
                f"rows are tagged untrained_stages={'+'.join(skipped)}")))
    return problems


def _check_run_dir(cfg: RunConfig) -> list[Problem]:
    from .runconfig import config_changes

    run = RunDir(cfg.run_dir)
    if not run.exists():
        return []
    if not cfg.resume:
        return [Problem(str(cfg.run_dir), f"{cfg.run_dir} already holds a run; pass --resume "
                        "to continue it or choose another --run-id")]
    try:
        changes = config_changes(run.run_config(), cfg)
    except ValueError as err:
        return [Problem(str(run.config_path), str(err))]
    if changes and not cfg.allow_config_change:
        return [Problem(str(run.config_path), mismatch_message(run, changes))]
    return []


def mismatch_message(run: RunDir, changes: dict[str, tuple[Any, Any]]) -> str:
    shown = "; ".join(f"{k}: recorded {old!r}, now {new!r}"
                      for k, (old, new) in list(changes.items())[:12])
    more = f" (and {len(changes) - 12} more)" if len(changes) > 12 else ""
    return (f"--resume with settings other than the run's {run.config_path}: {shown}{more}. "
            "Resume with the recorded settings, or pass --allow-config-change to continue "
            "anyway (the change is recorded in config.json)")


def _parts(cfg: RunConfig) -> dict[str, str]:
    run = RunDir(cfg.run_dir)
    out = {}
    for method in cfg.methods:
        for sequence in cfg.sequences:
            for fold in folds_of(cfg):
                part = run.part(method, sequence, fold)
                out[part.key] = "done" if cfg.resume and part.is_done() else "to run"
    return out


# ---------------------------------------------------------------------------- data
def _check_splits(cfg: RunConfig, out: RunCheck) -> list[VolumeRecord]:
    """Read every split CSV the run reads; returns the volumes it would load (once each)."""
    from .data.module import BenchmarkDataModule

    try:
        layout.data_dir(cfg.data_root)
    except DataLayoutError as err:
        out.problems.append(Problem(str(cfg.data_root), str(err)))
        return []
    records: dict[tuple, VolumeRecord] = {}
    for sequence in [s for s in cfg.sequences if s in layout.SEQUENCES]:
        for fold in [f for f in folds_of(cfg) if 0 <= f < layout.N_FOLDS]:
            where = f"{sequence} fold{fold}"
            try:
                data = BenchmarkDataModule(cfg.data_config(sequence, fold))
                cohorts = data.test_cohorts()
            except (DataLayoutError, ValueError, OSError) as err:
                out.problems.append(_data_problem(err, sequence))
                continue
            # training reads train and all of val; evaluation the (capped) test sets
            sets = {layout.HEALTHY_COHORT: {"train": data.records["train"],
                                            "val": data.records["val"],
                                            "test": data.healthy_evaluation_set()["test"]}}
            for cohort in cohorts:
                try:
                    sets[cohort] = data.evaluation_set(cohort)
                except (DataLayoutError, ValueError, OSError) as err:
                    out.problems.append(_data_problem(err, cohort))
            if len(cohorts) == 0:
                out.problems.append(Problem(f"--sequences {sequence}", (
                    f"no labelled test set for {sequence} in {cfg.data_root}: a {sequence} part "
                    "would be scored on healthy volumes only")))
            pool = _healthy_pool(cfg, sequence, fold)
            if pool < MIN_TRAIN_VOLUMES:
                out.warnings.append(Problem(str(cfg.data_root), (
                    f"{cfg.data_root}: the healthy training set of {where} has {pool} "
                    f"volume(s), fewer than {MIN_TRAIN_VOLUMES}: too few to learn healthy "
                    "anatomy from; read this run's numbers as a pipeline check, not a result")))
            out.data[where] = {d: {s: len(r) for s, r in splits.items()}
                               for d, splits in sets.items()}
            out.problems += _check_drop_last(cfg, len(data.records["train"]), where)
            for splits in sets.values():
                for recs in splits.values():
                    for rec in recs:
                        records.setdefault((rec.image, rec.mask, rec.seg), rec)
    return list(records.values())


def _check_drop_last(cfg: RunConfig, n_train: int, where: str) -> list[Problem]:
    """drop_last=true with fewer training items per epoch than a batch trains nothing."""
    from .registry import UnknownMethodError, get_method

    if not cfg.data_options.drop_last:
        return []
    batches = []
    for name in cfg.methods:
        try:
            volume = get_method(name).sampling == "volume"
        except UnknownMethodError:
            continue
        batches.append(max(1, min(cfg.profile.batch_size, 4)) if volume
                       else cfg.profile.batch_size)
    items = n_train * cfg.profile.repeats
    if not batches or items >= max(batches):
        return []
    return [Problem("--data-option drop_last", (
        f"--data-option drop_last=true: {where} has {items} training items per epoch, fewer "
        f"than the batch size {max(batches)}, so no batch would be trained"))]


def _healthy_pool(cfg: RunConfig, sequence: str, fold: int) -> int:
    """Healthy training volumes the data root holds for (sequence, fold), before a
    profile's cap (a capped profile is a choice, a small data set is not)."""
    return len(layout.healthy_splits(cfg.data_root, sequence, fold, cfg.fold_scheme)["train"])


def _data_problem(err: Exception, where: str) -> Problem:
    text = str(err).strip('"')
    return Problem(where, text)


def _check_volumes(records: Iterable[VolumeRecord], workers: int) -> list[Problem]:
    from .data.loader import check_volume

    def one(rec: VolumeRecord) -> Problem | None:
        try:
            check_volume(rec)
        except DataLayoutError as err:
            return Problem(str(rec.image), f"{rec.cohort} volume {rec.name}: {err}")
        return None

    records = list(records)
    if workers == 1 or len(records) < 2:
        found = map(one, records)
    else:
        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(one, records))
    return [p for p in found if p is not None]


# ---------------------------------------------------------------------------- metric tables
_UNIT = (0.0, 1.0)
# the range of every metric the protocol writes (benchmark.scoring); per_dataset.csv's
# `<name>_pooled` / `<name>_mean` take the range of `<name>`, `<name>_std` [0, width]
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("auprc", "auroc", "dice", "best_dice", "precision", "recall",
                     "detection_rate", "prevalence", "healthy_fpr", "lpips"), _UNIT),
    "ssim": (-1.0, 1.0),
    **dict.fromkeys(("l1", "l1_healthy", "l1_anomalous", "l1_ratio", "kl_divergence"),
                    (0.0, np.inf)),
}
# per_dataset.csv metrics that are never NaN for a scored labelled test set (NaN: it has no
# lesion voxel, or no healthy one, in the scored region)
DEFINED = ("auprc_pooled", "auroc_pooled", "prevalence")


class MetricError(ValueError):
    """Result values outside their range; the message names run, part, line and column."""


def check_metrics(tables: dict[str, pd.DataFrame], where: str) -> None:
    """Raise :class:`MetricError` listing every bad value of ``tables`` ({file name: table})."""
    problems = [p for name, frame in tables.items() for p in metric_problems(frame, name, where)]
    if problems:
        raise MetricError("; ".join(str(p) for p in problems[:MAX_SHOWN]))


def metric_range(name: str) -> tuple[float, float] | None:
    """The allowed [low, high] of a metric column or per_dataset.csv metric name."""
    if name in METRIC_RANGES:
        return METRIC_RANGES[name]
    for suffix in ("_pooled", "_mean"):
        if name.endswith(suffix) and name[: -len(suffix)] in METRIC_RANGES:
            return METRIC_RANGES[name[: -len(suffix)]]
    if name.endswith("_std") and name[:-4] in METRIC_RANGES:
        low, high = METRIC_RANGES[name[:-4]]
        return 0.0, high - low
    return None


def metric_problems(frame: pd.DataFrame, table: str, where: str) -> list[Problem]:
    """Every metric value of a result table outside its range: not a number, +-inf, below
    or above its :data:`METRIC_RANGES` bounds, or NaN where it must be defined (``DEFINED``).
    NaN elsewhere is a metric undefined for that row (e.g. a volume without lesion voxels
    has no per-volume AUPRC): allowed. ``where``: the run directory (or part) named."""
    if frame.empty:
        return []
    long = "metric" in frame.columns and "value" in frame.columns
    checks = ([(m, frame.index[frame["metric"].astype(str) == m], "value")
               for m in frame["metric"].astype(str).unique()] if long else
              [(c, frame.index, c) for c in frame.columns])
    problems = []
    for name, rows, column in checks:
        bounds = metric_range(name)
        if bounds is None or len(rows) == 0:
            continue
        raw = frame.loc[rows, column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        bad = (raw.notna().to_numpy() & np.isnan(values)) | np.isinf(values) \
            | (values < bounds[0]) | (values > bounds[1])
        if long and name in DEFINED:
            bad |= np.isnan(values)
        for i in np.flatnonzero(bad)[:3]:
            problems.append(Problem(where, _metric_message(frame, rows[i], name, column,
                                                           raw.iloc[i], bounds, where, table)))
        if bad.sum() > 3:
            problems.append(Problem(where, f"{where}: {table}: {int(bad.sum()) - 3} more "
                                    f"bad value(s) of {name}"))
    return problems


def _metric_message(frame, row, name, column, value, bounds, where, table) -> str:
    r = frame.loc[row]
    part = "/".join(str(r[c]) if c != "fold" else f"fold{r[c]}"
                    for c in ("method", "sequence", "fold") if c in frame.columns)
    what = ", ".join(f"{c} {r[c]}" for c in ("dataset", "volume", "threshold_source")
                     if c in frame.columns and str(r[c]) not in ("", "nan"))
    label = f"metric {name} (column value)" if column == "value" else f"column {name}"
    low, high = bounds
    shown = repr(value) if isinstance(value, str) else f"{float(value):g}"
    return (f"{where}: {table} line {int(frame.index.get_loc(row)) + 2}: {label} = {shown} "
            f"is outside its range [{low:g}, {high:g}] (must be a finite number there"
            f"{', never NaN' if name in DEFINED else ''}); part {part or '?'}"
            f"{', ' + what if what else ''}")


__all__ = ["METRIC_RANGES", "MetricError", "Problem", "RunCheck", "ValidationError",
           "check_metrics", "check_run", "inspect_run", "metric_problems", "report"]
