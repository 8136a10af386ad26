"""``benchmark run``: for each method x sequence x fold, train, infer, score, write.

Each finished (method, sequence, fold) part is complete on disk before the next starts
(checkpoint, cached maps, per_volume.csv, timings, then done.json), so a crash loses
nothing already finished and ``--resume`` picks up where the run stopped.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from .curves import CURVES_FILE, CurveOptions, LearningCurves, validation_sets
from .data.module import BenchmarkDataModule, DataConfig
from .inference import infer
from .profiles import Profile
from .registry import get_method
from .rundir import Part, RunDir, hardware, tag_columns
from .scoring import write_part_results
from .train import TrainerOptions, fit, uses_gpu

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    methods: list[str]
    profile: Profile
    data_root: Path
    run_dir: Path
    sequences: list[str] = field(default_factory=lambda: ["t2", "t1"])
    folds: list[int] | None = None           # None: the profile's folds
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    trainer: TrainerOptions = field(default_factory=TrainerOptions)
    fold_scheme: str = "disjoint"
    augment: bool = True
    num_workers: int = 0
    cohorts: list[str] | None = None
    map_dtype: str = "float32"
    resume: bool = False
    data_source: str = "user"                # "user" or "synthetic-<size>"
    curves: CurveOptions = field(default_factory=CurveOptions)

    def to_json(self) -> dict:
        out = asdict(self)
        out["profile"] = asdict(self.profile)
        return out


def _device(options: TrainerOptions) -> torch.device:
    return torch.device("cuda") if uses_gpu(options) else torch.device("cpu")


def run_part(cfg: RunConfig, part: Part) -> dict | None:
    """Train, infer and score one (method, sequence, fold); returns its timing row."""
    cls = get_method(part.method)
    # seed before the weights are drawn: a part's numbers must not depend on which parts
    # ran before it in this process (method order, or parts skipped by --resume)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    method = cls.from_profile(cfg.profile.name, cfg.overrides.get(part.method))
    data = BenchmarkDataModule(DataConfig(
        root=cfg.data_root, sequence=part.sequence, fold=part.fold, fold_scheme=cfg.fold_scheme,
        batch_size=cfg.profile.batch_size, num_workers=cfg.num_workers, augment=cfg.augment,
        repeats=cfg.profile.repeats, val_slices=cfg.profile.val_slices,
        max_train_volumes=cfg.profile.max_train_volumes,
        max_test_volumes=cfg.profile.max_test_volumes,
        max_val_volumes=cfg.profile.max_val_volumes, progress=cfg.trainer.progress,
        cohorts=cfg.cohorts,
    ), sampling=cls.sampling)
    sets = data.evaluation_sets()
    tags = method.result_tags()
    ids = part.ids(profile=cfg.profile.name, data_source=cfg.data_source, **tag_columns(tags))
    curves = None
    if cfg.curves.enabled:
        curves = LearningCurves(part.path / CURVES_FILE, validation_sets(sets, cfg.curves.volumes),
                                cfg.curves, ids, batch_size=cfg.profile.eval_batch_size)
    result = fit(method, data, part.path, cfg.profile, cfg.trainer, curves)
    if result.global_rank != 0:  # under DDP only rank 0 evaluates and writes
        return None
    part.write_json("hparams.json", dict(method.hparams))
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


def launch_rank() -> int:
    """Global rank of this process as the launcher's environment gives it (0 if none).

    Under DDP, Lightning re-runs the command in one process per device; only rank 0
    writes the run's files, evaluates and prints.
    """
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(var) is not None:
            return int(os.environ[var])
    return 0


def start_run(cfg: RunConfig) -> RunDir:
    """What every launcher does before the first part: refuse to overwrite a run unless
    resuming, then write its records (config.json, environment.json)."""
    run = RunDir(cfg.run_dir)
    if run.exists() and not cfg.resume:
        raise FileExistsError(f"{cfg.run_dir} already holds a run; pass --resume to continue "
                              "it or choose another --run-id")
    run.write_records(cfg.to_json())
    return run


def planned_parts(cfg: RunConfig) -> list[Part]:
    """Every (method, sequence, fold) part of the run, in run order."""
    run = RunDir(cfg.run_dir)
    folds = cfg.folds if cfg.folds is not None else list(cfg.profile.folds)
    return [run.part(m, s, f) for m in cfg.methods for s in cfg.sequences for f in folds]


def run_benchmark(cfg: RunConfig) -> Path:
    """The in-process launcher: every part in turn in this process."""
    run = RunDir(cfg.run_dir)
    if launch_rank() == 0:
        start_run(cfg)
    for part in planned_parts(cfg):
        if cfg.resume and part.is_done():
            log.info("resume: %s/%s/fold%d already done", part.method, part.sequence, part.fold)
            continue
        if run_part(cfg, part) is not None:
            run.collect()
    return cfg.run_dir


def summary_table(run: Path) -> pd.DataFrame:
    """Per method x dataset: pooled AUPRC beside the test set's chance level (its lesion
    prevalence: the AUPRC of a random map), mean AUROC, and mean Dice at each threshold
    source. ``dice[oracle]`` is chosen on the test set: an upper bound."""
    path = Path(run) / "per_volume.csv"
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_csv(path)
    keys = ["method", "sequence", "dataset"]
    ranking = df.groupby(keys)[["auprc", "auroc"]].mean()
    pooled_path = Path(run) / "per_dataset.csv"
    if pooled_path.is_file():
        pooled = pd.read_csv(pooled_path)
        pooled = pooled[pooled["metric"].isin(["auprc_pooled", "prevalence"])]
        pooled = pooled.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean")
        ranking = pooled.rename(columns={"auprc_pooled": "auprc", "prevalence": "chance"}) \
            .join(ranking[["auroc"]], how="right")
    dice = df.pivot_table(index=keys, columns="threshold_source", values="dice", aggfunc="mean")
    order = [s for s in ("oracle", "val", "fpr1", "fpr5", "fpr10") if s in dice.columns]
    dice = dice[order + [c for c in dice.columns if c not in order]]
    dice.columns = [f"dice[{c}]" for c in dice.columns]
    return ranking.join(dice).round(4)
