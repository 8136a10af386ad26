"""The training harness: one Lightning Trainer per training stage, no method-specific code.

Seeds everything, keeps the checkpoint with the lowest val/loss of each stage and loads
it before the next stage (and before evaluation), logs to CSV, and runs on CPU, one GPU
or several GPUs/nodes through Lightning's own strategies (``--strategy ddp``).

Resume: each stage also keeps ``last-<stage>.ckpt`` (weights, optimiser and loop state,
rewritten every epoch). A stage whose last checkpoint exists continues from it (a stage
that had finished trains no further epochs), so a part interrupted by a crash, a time
limit or a preemption loses at most one epoch; the run directory deletes these files
when the part is done (:meth:`benchmark.rundir.Part.mark_done`), so finished parts keep
weights only.
"""
from __future__ import annotations

import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from . import checkpoint
from .curves import LearningCurves
from .method import AnomalyMethod
from .profiles import Profile
from .runconfig import TrainerOptions
from .rundir import Part

# checkpoint selection: --select-checkpoint name -> (logged key, mode)
SELECTION = {"val_loss": ("val/loss", "min"), "val_auprc_mean": ("curve/val_auprc_mean", "max"),
             "val_ssim": ("curve/val_ssim", "max")}


@dataclass
class FitResult:
    checkpoint: Path
    epochs: dict[str, int] = field(default_factory=dict)
    seconds_per_epoch: float | None = None
    train_seconds: float = 0.0            # training time, a resumed part's earlier epochs included
    global_rank: int = 0
    resumed_from: dict[str, int] = field(default_factory=dict)  # stage -> epochs already done


class _EpochTimer(Callback):
    """Seconds per training epoch, by stage. Its state goes into the stage's checkpoints, so
    a stage resumed in another process still counts the epochs trained before (``restored``:
    their seconds)."""

    def __init__(self) -> None:
        self.durations: dict[str, list[float]] = {}
        self.restored = 0.0

    @property
    def all_durations(self) -> list[float]:
        return [d for stage in self.durations.values() for d in stage]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.durations.setdefault(pl_module.stage, []).append(time.perf_counter() - self._start)

    def state_dict(self) -> dict[str, Any]:
        stage = getattr(self, "_stage", None)
        return {"stage": stage, "durations": list(self.durations.get(stage, []))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("stage") is not None:
            self.durations[state["stage"]] = list(state["durations"])
            self.restored += float(sum(state["durations"]))

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._stage = pl_module.stage


def uses_gpu(options: TrainerOptions) -> bool:
    if options.accelerator in ("gpu", "cuda"):
        return True
    return options.accelerator == "auto" and torch.cuda.is_available()


def _precision(method: AnomalyMethod, options: TrainerOptions) -> str:
    if options.precision is not None:
        return options.precision
    return default_precision(method, options)


def default_precision(method: AnomalyMethod, options: TrainerOptions) -> str:
    """The method's precision on a GPU (its reference code's), fp32 on a CPU."""
    return method.precision if uses_gpu(options) else "32-true"


def precision_tags(method: AnomalyMethod, options: TrainerOptions) -> dict[str, str]:
    """{"precision": ...} when --precision trains otherwise than the default (e.g. bf16 on
    a CPU: faster, other numbers), so such rows never pass for the default's."""
    used = _precision(method, options)
    return {} if used == default_precision(method, options) else {"precision": used}


def _logger(kind: str, part: Part, stage: str, resuming: bool = False) -> Any:
    # a resumed stage logs beside the first attempt's logs (the CSV logger would delete them)
    version = part.resumed_log_version(stage) if resuming else stage
    out_dir = part.path
    if kind == "csv":
        return CSVLogger(str(out_dir), name=part.logs_dir.name, version=version)
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out_dir), name="tb", version=version)
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(save_dir=str(out_dir), name=f"{out_dir.name}-{stage}")
    raise ValueError(f"unknown --logger {kind!r}; allowed: csv, tensorboard, wandb")


def stage_epochs(method: AnomalyMethod, stage: str, profile: Profile,
                 override: int | dict[str, int] | None) -> int:
    """Epochs of one stage: the override (for every stage, or this stage by name) or the
    method's own for the profile."""
    if isinstance(override, int):
        return override
    if override and stage in override:
        return int(override[stage])
    return method.stage_epochs(stage, profile.name)


def untrained_stages(method: AnomalyMethod, profile: Profile,
                     override: int | dict[str, int] | None) -> list[str]:
    """Stages an ``--epochs`` override sets to 0 although the method trains them under
    ``profile``: the part is scored with those weights untrained (its rows say so)."""
    if override is None or not method.requires_training:
        return []
    return [s for s in method.stages()
            if stage_epochs(method, s, profile, override) <= 0 < method.stage_epochs(s, profile.name)]


def _checkpoint(part: Part, stage: str, select: str, curves: LearningCurves | None
                ) -> ModelCheckpoint:
    if select not in SELECTION:
        raise ValueError(f"unknown checkpoint selection {select!r}; allowed: {', '.join(SELECTION)}")
    if select != "val_loss" and (curves is None or not curves.evaluate_maps):
        if curves is None:
            raise ValueError(f"--select-checkpoint {select} needs learning curves (--curve-every N)")
        select = "val_loss"  # an earlier stage (e.g. pre-training) has no map metrics
    monitor, mode = SELECTION[select]
    best = part.best_checkpoint(stage)
    return ModelCheckpoint(dirpath=str(best.parent), filename=best.stem, monitor=monitor,
                           mode=mode, save_top_k=1, enable_version_counter=False,
                           # a curve metric exists only on the curve's epochs
                           every_n_epochs=curves.every if select != "val_loss" else None,
                           # weights only: parts are the unit of --resume, so optimiser
                           # state is never read back and would double the file (RD: 1.3 GB)
                           save_weights_only=True)


def _resume_checkpoint(part: Part, stage: str) -> ModelCheckpoint:
    """``last-<stage>.ckpt`` after every epoch: everything ``trainer.fit(ckpt_path=...)``
    needs to continue the stage where it stopped."""
    # no monitor, top 1: the latest epoch, overwriting the file in place (Lightning writes
    # it atomically); save_last would only write at the end when top-k saves nothing
    last = part.resume_checkpoint(stage)
    return ModelCheckpoint(dirpath=str(last.parent), filename=last.stem,
                           monitor=None, save_top_k=1, enable_version_counter=False)


class _StartEpoch(Callback):
    """The epoch a stage starts training at (after a resume: the epochs already done)."""

    epoch: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.epoch = trainer.current_epoch


def fit(method: AnomalyMethod, data: L.LightningDataModule, part: Part, profile: Profile,
        options: TrainerOptions, curves: LearningCurves | None = None) -> FitResult:
    """Train ``method`` through all its stages in ``part``'s folder; returns the best
    checkpoint of the last one.

    curves: record learning curves (benchmark.curves) in every stage; map metrics in the
    last stage only.
    """
    out_dir = part.path
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(options.seed, workers=True, verbose=False)
    method.fit_statistics(data.statistics_dataloader())
    result = FitResult(checkpoint=part.best_checkpoint("main"))
    timer = _EpochTimer()
    start = time.perf_counter()
    if not method.requires_training:
        result.checkpoint = checkpoint.save(method, part.best_checkpoint("main"))
        return result
    stages = method.stages()
    for stage in stages:
        method.stage = stage
        epochs = stage_epochs(method, stage, profile, options.epochs)
        result.epochs[stage] = epochs
        if epochs <= 0:
            continue
        if curves is not None:
            curves.evaluate_maps = stage == stages[-1]
            curves.every = curves.opts.every(epochs)
        ckpt = _checkpoint(part, stage, options.select, curves)
        resume = part.resume_checkpoint(stage)
        resuming = resume.is_file()
        if resuming and not zipfile.is_zipfile(resume):  # torn or overwritten: not unsafe
            raise checkpoint.CheckpointError(
                f"{resume}: damaged, not a PyTorch checkpoint; delete it to train this stage "
                "from the start")
        first_epoch = _StartEpoch()
        trainer = L.Trainer(
            max_epochs=epochs, accelerator=options.accelerator, devices=options.devices,
            strategy=options.strategy, num_nodes=options.num_nodes,
            precision=_precision(method, options),
            callbacks=[ckpt, _resume_checkpoint(part, stage), first_epoch, timer]
            + ([curves] if curves is not None else []),
            logger=_logger(options.logger, part, stage, resuming),
            default_root_dir=str(out_dir),
            enable_progress_bar=options.progress, enable_model_summary=False,
            limit_train_batches=profile.limit_train_batches,
            limit_val_batches=profile.limit_val_batches, log_every_n_steps=1,
            num_sanity_val_steps=0,
        )
        # the resume state is read without running code (weights_only), as every checkpoint
        # is: a run directory may come from someone else
        device = torch.device("cuda" if uses_gpu(options) else "cpu")
        try:
            with method.memory_layout("train", device):  # benchmark.cpu: CPU layout choice
                trainer.fit(method, datamodule=data, ckpt_path=resume if resuming else None,
                            weights_only=True)
        except pickle.UnpicklingError as err:
            raise checkpoint.UnsafeCheckpointError(
                f"{resume}: refused, it is not plain data ({str(err).splitlines()[0]}); delete "
                "it to train this stage from the start") from None
        if resuming:
            # no train start when the stage had finished before the interruption
            result.resumed_from[stage] = (epochs if first_epoch.epoch is None
                                          else first_epoch.epoch)
        result.global_rank = trainer.global_rank
        best = Path(ckpt.best_model_path) if ckpt.best_model_path else None
        if best is None or not best.is_file():
            raise RuntimeError(f"{method.name}: stage {stage!r} produced no checkpoint in {out_dir}")
        checkpoint.load_weights(method, best)
        result.checkpoint = best
    if not result.checkpoint.is_file():  # every stage skipped (--epochs 0): the weights as
        result.checkpoint = checkpoint.save(method, result.checkpoint)  # built, on record
    result.train_seconds = time.perf_counter() - start + timer.restored
    if timer.all_durations:
        result.seconds_per_epoch = sum(timer.all_durations) / len(timer.all_durations)
    return result
