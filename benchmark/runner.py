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

from . import rundir, scoring
from .curves import CURVES_FILE, CurveOptions, LearningCurves, validation_sets
from .data.module import BenchmarkDataModule, DataConfig
from .evaluate import infer
from .profiles import Profile
from .registry import get_method
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


def run_part(cfg: RunConfig, method_name: str, sequence: str, fold: int) -> dict | None:
    """Train, infer and score one (method, sequence, fold); returns its timing row."""
    cls = get_method(method_name)
    part = rundir.part_dir(cfg.run_dir, method_name, sequence, fold)
    # seed before the weights are drawn: a part's numbers must not depend on which parts
    # ran before it in this process (method order, or parts skipped by --resume)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    method = cls.from_profile(cfg.profile.name, cfg.overrides.get(method_name))
    data = BenchmarkDataModule(DataConfig(
        root=cfg.data_root, sequence=sequence, fold=fold, fold_scheme=cfg.fold_scheme,
        batch_size=cfg.profile.batch_size, num_workers=cfg.num_workers, augment=cfg.augment,
        repeats=cfg.profile.repeats, val_slices=cfg.profile.val_slices,
        max_train_volumes=cfg.profile.max_train_volumes,
        max_test_volumes=cfg.profile.max_test_volumes, progress=cfg.trainer.progress,
        cohorts=cfg.cohorts,
    ), sampling=cls.sampling)
    sets = data.evaluation_sets()
    ids = {"method": method_name, "fold": fold, "sequence": sequence,
           "profile": cfg.profile.name, "data_source": cfg.data_source, **method.result_tags()}
    curves = None
    if cfg.curves.enabled:
        curves = LearningCurves(part / CURVES_FILE, validation_sets(sets, cfg.curves.volumes),
                                cfg.curves, ids, batch_size=cfg.profile.eval_batch_size)
    result = fit(method, data, part, cfg.profile, cfg.trainer, curves)
    if result.global_rank != 0:  # under DDP only rank 0 evaluates and writes
        return None
    rundir.write_json(part / "hparams.json", dict(method.hparams))
    timing = infer(method, sets, part, _device(cfg.trainer), cfg.profile.eval_batch_size,
                   cfg.map_dtype, progress=cfg.trainer.progress)
    per_volume, per_dataset, recon = scoring.score_all(part, sets, ids)
    rundir.write_csv(part / "per_volume.csv", per_volume)
    rundir.write_csv(part / "per_dataset.csv", per_dataset)
    if not recon.empty:
        rundir.write_csv(part / "recon_quality.csv", recon)
    row = {"method": method_name, "fold": fold, "sequence": sequence,
           "device": _device(cfg.trainer).type, "hardware": rundir.hardware(),
           "n_params": method.n_params(), "train_seconds": result.train_seconds,
           "train_seconds_per_epoch": result.seconds_per_epoch,
           "epochs": sum(result.epochs.values()), "checkpoint_selected_by": cfg.trainer.select,
           **timing}
    rundir.write_csv(part / "timings.csv", pd.DataFrame([row]))
    rundir.write_json(part / "done.json", {"checkpoint": str(result.checkpoint.name), **row})
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


def run_benchmark(cfg: RunConfig) -> Path:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    config_path = cfg.run_dir / "config.json"
    rank = launch_rank()
    if rank == 0 and config_path.is_file() and not cfg.resume:
        raise FileExistsError(f"{cfg.run_dir} already holds a run; pass --resume to continue "
                              "it or choose another --run-id")
    if rank == 0:
        rundir.write_json(config_path, cfg.to_json())
        rundir.write_json(cfg.run_dir / "environment.json", rundir.environment())
    folds = cfg.folds if cfg.folds is not None else list(cfg.profile.folds)
    for method_name in cfg.methods:
        for sequence in cfg.sequences:
            for fold in folds:
                if cfg.resume and rundir.is_done(cfg.run_dir, method_name, sequence, fold):
                    log.info("resume: %s/%s/fold%d already done", method_name, sequence, fold)
                    continue
                if run_part(cfg, method_name, sequence, fold) is not None:
                    rundir.collect(cfg.run_dir)
    return cfg.run_dir


def summary_table(run: Path) -> pd.DataFrame:
    """Mean over test volumes (and folds) per method x dataset: AUPRC, AUROC and Dice at
    each threshold source. ``dice[oracle]`` is chosen on the test set: an upper bound."""
    path = Path(run) / "per_volume.csv"
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_csv(path)
    keys = ["method", "sequence", "dataset"]
    ranking = df.groupby(keys)[["auprc", "auroc"]].mean()
    dice = df.pivot_table(index=keys, columns="threshold_source", values="dice", aggfunc="mean")
    order = [s for s in ("oracle", "val", "fpr1", "fpr5", "fpr10") if s in dice.columns]
    dice = dice[order + [c for c in dice.columns if c not in order]]
    dice.columns = [f"dice[{c}]" for c in dice.columns]
    return ranking.join(dice).round(3)
