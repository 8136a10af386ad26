"""``benchmark run``: for each method x sequence x fold, train, infer, score, write.

Before anything is written, :func:`benchmark.validate.inspect_run` reads everything the run
will read; a problem stops the run (exit 2) with no run directory. The launch then holds
the run's lock (a second launch on the same run is refused, or waits with ``--wait``),
and each part is claimed while it runs. Each finished (method, sequence, fold) part is
complete on disk before the next starts (checkpoint, cached maps, per_volume.csv,
timings, then done.json), so a crash loses nothing already finished and ``--resume``
picks up where the run stopped: an unfinished part starts over from an empty folder,
and the run-level tables are rebuilt at the end of every launch. ``--resume`` refuses
settings other than the recorded ones unless ``--allow-config-change`` (docs/failures.md).
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from .cpu import claim_threads, tune_allocator
from .curves import LearningCurves, validation_sets
from .data.module import BenchmarkDataModule
from .data.options import DataOptions
from .environment import hardware
from .inference import infer
from .locks import IncompleteRunError, describe_holder
from .registry import get_method
from .runconfig import RunConfig, TrainerOptions, config_changes
from .rundir import Part, PartClaimedError, RunDir
from .scoring import write_part_results
from .tags import tag_columns
from .train import fit, precision_tags, untrained_stages, uses_gpu

log = logging.getLogger(__name__)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _device(options: TrainerOptions) -> torch.device:
    return torch.device("cuda") if uses_gpu(options) else torch.device("cpu")


def run_part(cfg: RunConfig, part: Part) -> dict | None:
    """Train, infer and score one (method, sequence, fold); returns its timing row."""
    cls = get_method(part.method)
    tune_allocator()  # benchmark.cpu: no page faults for reused activations; same numbers
    # seed before the weights are drawn: a part's numbers must not depend on which parts
    # ran before it in this process (method order, or parts skipped by --resume)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    method = cls(**cfg.hparams(part.method))
    data = BenchmarkDataModule(cfg.data_config(part.sequence, part.fold), sampling=cls.sampling)
    sets = data.evaluation_sets()
    tags = {**method.result_tags(), **data_tags(cfg.data_options),
            **precision_tags(method, cfg.trainer)}
    untrained = untrained_stages(method, cfg.profile, cfg.trainer.epochs)
    if untrained:  # --epochs 0: the rows must not pass for a trained method's
        tags = {**tags, "untrained_stages": "+".join(untrained)}
    ids = part.ids(profile=cfg.profile.name, data_source=cfg.data_source, **tag_columns(tags))
    curves = None
    if cfg.curves.enabled:
        curves = LearningCurves(part.table_path("curves.csv"),
                                validation_sets(sets, cfg.curves.volumes),
                                cfg.curves, ids, batch_size=cfg.profile.eval_batch_size)
    result = fit(method, data, part, cfg.profile, cfg.trainer, curves)
    if result.global_rank != 0:  # under DDP only rank 0 evaluates and writes
        return None
    part.write_hparams(dict(method.hparams))
    timing = infer(method, sets, part, _device(cfg.trainer), cfg.profile.eval_batch_size,
                   cfg.map_dtype, progress=cfg.trainer.progress)
    write_part_results(part, sets, ids)
    row = {**part.ids(), "device": _device(cfg.trainer).type, "hardware": hardware(),
           "n_params": method.n_params(), "train_seconds": result.train_seconds,
           "train_seconds_per_epoch": result.seconds_per_epoch,
           "epochs": sum(result.epochs.values()), "checkpoint_selected_by": cfg.trainer.select,
           **timing}
    part.write_table("timings.csv", pd.DataFrame([{**row, **tag_columns(tags)}]))
    # resumed_from: the stages continued from last-<stage>.ckpt and their epochs done before
    part.mark_done(result.checkpoint, tags, **row,
                   **({"resumed_from": result.resumed_from} if result.resumed_from else {}))
    return row


def data_tags(options: DataOptions) -> dict[str, str]:
    """The result tag of non-default data options (``data_options=authors``), so that a
    leaderboard never averages a run with the authors' data pipeline into a default one;
    none for the defaults (their result rows stay as they were)."""
    label = options.label()
    return {} if label is None else {"data_options": label}


def launch_rank() -> int:
    """Global rank of this process as the launcher's environment gives it (0 if none).

    Under DDP, Lightning re-runs the command in one process per device; only rank 0
    writes the run's files, evaluates and prints.
    """
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(var) is not None:
            return int(os.environ[var])
    return 0


def run_benchmark(cfg: RunConfig) -> Path:
    """Check, lock, record, run every part not finished yet, collect. Raises
    ValidationError (nothing written), RunLockedError, IncompleteRunError (exit 3)."""
    run = RunDir(cfg.run_dir)
    if launch_rank() != 0:  # a DDP worker: rank 0 checked, locked and records
        _run_parts(cfg, run, claim=False)
        return cfg.run_dir
    existing = run.path.is_dir()
    if not existing:
        warnings = checked(cfg)  # a new run: nothing is created unless everything checks out
    with run.launch_lock(wait=cfg.wait):  # an existing run in use is refused at once
        if existing:
            warnings = checked(cfg)
        write_records(cfg, run, warnings)
        try:
            with claim_threads(None, _device(cfg.trainer), say=_say):  # never oversubscribe
                skipped = _run_parts(cfg, run, claim=True)
        finally:
            run.collect()  # on every launch, resumed or not, finished or crashed
    if skipped:
        raise IncompleteRunError(
            f"{len(skipped)} part(s) of {run.path} are being run by other processes and were "
            "skipped: " + "; ".join(f"{e.part.key} by {describe_holder(e.holder)}"
                                    for e in skipped)
            + ". Their results join the run-level tables when they finish; run again with "
            "--resume afterwards to check.")
    return cfg.run_dir


def start_run(cfg: RunConfig) -> RunDir:
    """What every other launcher (benchmark.launch) does before its first part, holding the
    run's launch lock: check everything the run reads (ValidationError, nothing written),
    then refuse to overwrite a run unless resuming with its settings, and write its records."""
    run = RunDir(cfg.run_dir)
    write_records(cfg, run, checked(cfg))
    return run


def checked(cfg: RunConfig) -> list[str]:
    """Check everything the run reads (ValidationError: nothing written); print each
    warning once and return them for the run's records."""
    import sys

    from .validate import ValidationError, inspect_run

    found = inspect_run(cfg)
    if found.problems:
        raise ValidationError(found.problems)
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return [str(w) for w in found.warnings]


def planned_parts(cfg: RunConfig) -> list[Part]:
    """Every (method, sequence, fold) part of the run, in run order."""
    run = RunDir(cfg.run_dir)
    return [run.part(m, s, f) for m in cfg.methods for s in cfg.sequences
            for f in cfg.fold_list()]


def write_records(cfg: RunConfig, run: RunDir, warnings: list[str] | None = None) -> None:
    """config.json (typed, with this launch's ``warnings``) + environment.json; under the
    lock, so the checks are authoritative."""
    from .validate import mismatch_message

    history: list[dict] = []
    if run.exists():
        if not cfg.resume:
            raise FileExistsError(f"{cfg.run_dir} already holds a run; pass --resume to "
                                  "continue it or choose another --run-id")
        recorded = run.run_config()
        changes = config_changes(recorded, cfg)
        if changes and not cfg.allow_config_change:
            raise ValueError(mismatch_message(run, changes))
        history = list(recorded.config_changes)
        if changes:  # allowed: keep what earlier parts ran with
            history.append({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "parts_done_before": [p.key for p in run.parts()],
                            "changed": {k: {"recorded": old, "now": new}
                                        for k, (old, new) in changes.items()}})
            log.warning("resume with changed settings (recorded in config.json): %s",
                        ", ".join(changes))
            # an unfinished part's training state was made with the old settings: it
            # starts over rather than continue under the new ones
            for part in run.parts(done=False):
                if not part.is_done():
                    for path in part.resume_checkpoints():
                        path.unlink(missing_ok=True)
    run.write_records(replace(cfg.typed(), warnings=list(warnings or []),
                              config_changes=history))


def _run_parts(cfg: RunConfig, run: RunDir, claim: bool) -> list[PartClaimedError]:
    """Run every part not finished yet; returns the parts other processes hold."""
    skipped = []
    for part in planned_parts(cfg):
        if cfg.resume and part.is_done():
            log.info("resume: %s already done", part.key)
            continue
        if not claim:
            run_part(cfg, part)
            continue
        try:
            run_claimed(cfg, part)
        except PartClaimedError as err:
            log.warning("%s", err)
            skipped.append(err)
    return skipped


def run_claimed(cfg: RunConfig, part: Part) -> bool:
    """One part as any process that runs parts must (the runner, a launcher's job): claim
    it, skip it if finished meanwhile, clear a killed attempt's files, run it, rebuild the
    run-level tables. True if it ran; PartClaimedError if another process holds it."""
    with part.claim():
        if part.is_done():
            return False
        part.clear()
        try:
            if run_part(cfg, part) is not None:
                part.run.collect()
        except OSError as err:  # e.g. a full disk: say which part it stopped in
            if err.filename is None:
                err.filename = str(part.path)
            raise
        return True


SUMMARY_LEGEND = {
    "auprc_pooled": "AUPRC of one ranking of every scored voxel of the data set's test volumes "
                    "(pooled, as Table 2)",
    "auroc_pooled": "AUROC of that same pooled ranking",
    "chance": "the pooled lesion prevalence: the AUPRC of a random map",
    "dice_pooled": "Dice of the summed TP/FP/FN of the test volumes (pooled) at the threshold "
                   "from [source]; oracle: chosen on the test set itself, an upper bound",
    "auprc_mean": "mean over the test volumes of each volume's AUPRC (no per_dataset.csv)",
    "auroc_mean": "mean over the test volumes of each volume's AUROC (no per_dataset.csv)",
    "dice_mean": "mean over the test volumes of each volume's Dice at the threshold from "
                 "[source]; oracle: chosen on the test set itself, an upper bound",
}


def summary_table(run: Path) -> pd.DataFrame:
    """Per method x dataset, one statistic for every column: pooled over the test volumes
    (per_dataset.csv: AUPRC, AUROC, the chance level, Dice at each threshold source), or,
    for a run without per_dataset.csv, the mean over volumes, named ``*_mean``.
    :func:`summary_legend` defines each column."""
    keys = ["method", "sequence", "dataset"]
    pooled_path = RunDir(run).table_path("per_dataset.csv")
    path = RunDir(run).table_path("per_volume.csv")
    if pooled_path.is_file():
        long = pd.read_csv(pooled_path)
        names = {"auprc_pooled": "auprc_pooled", "auroc_pooled": "auroc_pooled",
                 "prevalence": "chance", "dice_pooled": "dice_pooled"}
        long = long[long["metric"].isin(names) & (long["dataset"] != "IXI")]
        long = long.assign(column=[names[m] + (f"[{s}]" if m == "dice_pooled" else "")
                                   for m, s in zip(long["metric"], long["threshold_source"])])
        table = long.pivot_table(index=keys, columns="column", values="value", aggfunc="mean")
        table.columns.name = None
        stat = "pooled"
    elif path.is_file():
        df = pd.read_csv(path)
        table = df.groupby(keys)[["auprc", "auroc"]].mean().add_suffix("_mean")
        dice = df.pivot_table(index=keys, columns="threshold_source", values="dice",
                              aggfunc="mean")
        table = table.join(dice.rename(columns=lambda c: f"dice_mean[{c}]"))
        stat = "mean"
    else:
        return pd.DataFrame()
    first = [c for c in (f"auprc_{stat}", f"auroc_{stat}", "chance") if c in table.columns]
    dice = [f"dice_{stat}[{s}]" for s in ("oracle", "val", "fpr1", "fpr5", "fpr10")
            if f"dice_{stat}[{s}]" in table.columns]
    rest = [c for c in table.columns if c not in first + dice]
    return table[first + dice + rest].round(4)


def summary_legend(table: pd.DataFrame) -> list[str]:
    """One line per column of :func:`summary_table`: what it is (pooled or mean)."""
    names = dict.fromkeys(c.split("[")[0] for c in table.columns)
    return [f"{name}: {SUMMARY_LEGEND[name]}" for name in names if name in SUMMARY_LEGEND]
