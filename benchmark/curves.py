"""Learning curves: validation metrics recorded while a method trains.

Every ``every_n_epochs`` epochs (and after the last epoch) of a training stage the
:class:`LearningCurves` callback appends one row to ``<part>/curves.csv``:

    stage, epoch, step           where in training (step = optimiser steps so far, all stages)
    train_seconds, train_cpu_seconds   wall and process CPU time spent in training so far
                                 (the curve's own evaluations excluded)
    train_loss                   mean training loss over the steps since the previous row
    val_loss                     the harness's val/loss (healthy validation slices)
    val_ssim, val_l1             reconstruction quality on the healthy validation volumes
    val_auprc[<cohort>]          pooled AUPRC on each cohort's unhealthy VALIDATION split
    val_auprc_mean               their mean

Only validation splits are read: the healthy fold's ``val`` volumes and every labelled
cohort's ``<Set>_val.csv``; a test split is never touched (tests/test_curves.py checks
it). Anomaly maps go through the protocol's post-processing and AUPRC is computed inside
the brain mask, as the leaderboard's pooled AUPRC. Map metrics are recorded in the
method's last stage only (earlier stages, e.g. cDDPM's encoder pre-training, do not
produce the final model); losses are recorded in every stage.

The evaluation runs under forked RNG states, so a run with curves trains exactly the
model a run without them trains.
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from . import metrics
from .data.layout import HEALTHY_COHORT, VolumeRecord
from .data.loader import load_volume
from .method import AnomalyMethod
from .postprocess import PostProcess
from .runconfig import CurveOptions

SELECT_METRICS = ("val_loss", "val_auprc_mean", "val_ssim")  # checkpoint selection choices


def validation_sets(sets: dict[str, dict[str, list[VolumeRecord]]], volumes: int
                    ) -> dict[str, list[VolumeRecord]]:
    """{dataset: records} of the validation splits only, ``volumes`` each at most."""
    out = {}
    for dataset, splits in sets.items():
        records = list(splits.get("val") or [])[:volumes]
        if records:
            out[dataset] = records
    return out


@contextlib.contextmanager
def _private_rng(seed: int, device: torch.device):
    """Run a block with its own seeded RNGs; the training RNG streams are left untouched."""
    devices = [device] if device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@torch.no_grad()
def evaluate_point(method: AnomalyMethod, val_sets: dict[str, list[VolumeRecord]],
                   batch_size: int = 50, postprocess: PostProcess | None = None,
                   seed: int = 0) -> dict[str, float]:
    """Validation metrics of ``method`` as it is now (eval mode, RNG private)."""
    postprocess = postprocess or PostProcess()
    was_training = method.training
    method.eval()
    row: dict[str, float] = {}
    try:
        with _private_rng(seed, method.device):
            for dataset, records in val_sets.items():
                row.update(_dataset_metrics(method, dataset, records, batch_size, postprocess))
    finally:
        method.train(was_training)
    aucs = [v for k, v in row.items() if k.startswith("val_auprc[")]
    if aucs:
        row["val_auprc_mean"] = float(np.mean(aucs))
    return row


def _dataset_metrics(method, dataset, records, batch_size, postprocess) -> dict[str, float]:
    ssim, l1, maps, labels = [], [], [], []
    for rec in records:
        vol = load_volume(rec)
        out = method.predict_volume(vol.slices().to(method.device), batch_size=batch_size)
        amap = out.anomaly_map[:, 0].permute(1, 2, 0).float().cpu().numpy()
        if dataset == HEALTHY_COHORT:
            if out.reconstruction is not None:
                recon = out.reconstruction[:, 0].permute(1, 2, 0).float().cpu().numpy()
                ssim.append(metrics.ssim(vol.image, recon, vol.mask))
                l1.append(metrics.l1_error(vol.image, recon, vol.mask))
        elif vol.seg is not None:
            processed = postprocess.apply(amap, vol.mask)
            maps.append(processed[vol.mask])
            labels.append(vol.seg[vol.mask])
    row = {}
    if ssim:
        row.update(val_ssim=float(np.mean(ssim)), val_l1=float(np.mean(l1)))
    if maps:
        _, pooled = metrics.dataset_ranking_metrics(maps, labels)
        row[f"val_auprc[{dataset}]"] = float(pooled["auprc"])
    return row


class LearningCurves(Callback):
    """Appends a validation row to ``csv`` every ``opts.every_n_epochs`` epochs.

    One instance per part: it is handed to every stage's Trainer so that ``step`` and the
    training time keep counting across stages. ``evaluate_maps``: record the map metrics
    in this stage (the harness sets it for the method's last stage).

    A part interrupted in training continues from its last checkpoint: the rows already in
    ``csv`` up to the epoch that checkpoint holds are kept (later ones, written after it,
    are dropped and recorded again), and the training clocks continue from them.
    """

    def __init__(self, csv: Path, val_sets: dict[str, list[VolumeRecord]], opts: CurveOptions,
                 ids: dict[str, Any] | None = None, batch_size: int = 50) -> None:
        self.csv, self.val_sets, self.opts = Path(csv), val_sets, opts
        self.ids, self.batch_size = dict(ids or {}), batch_size
        self.rows: list[dict] = []
        self.evaluate_maps = True
        self.every = opts.every_n_epochs or 1  # set per stage by the harness
        self.step_offset = 0
        self._wall = self._cpu = 0.0
        self._loss_sum, self._loss_n = 0.0, 0
        if self.csv.is_file():  # an earlier attempt's rows (the harness removes them unless
            self.rows = pd.read_csv(self.csv).to_dict("records")  # the part resumes)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        # epochs restored from a resume checkpoint (0 for a fresh stage): rows of this stage
        # after them belong to training that the checkpoint does not hold
        done = trainer.current_epoch
        self.rows = [r for r in self.rows if r["stage"] != pl_module.stage or r["epoch"] <= done]
        # steps of the stages before this one (each records a row at its last epoch): a
        # stage that resumed already finished never reaches on_train_end to add its steps
        earlier = [r["step"] for r in self.rows if r["stage"] != pl_module.stage]
        self.step_offset = max([self.step_offset, *earlier])
        if self.rows:
            self._wall = max(self._wall, max(r["train_seconds"] for r in self.rows))
            self._cpu = max(self._cpu, max(r["train_cpu_seconds"] for r in self.rows))

    # ------------------------------------------------------------ time and loss bookkeeping
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def _stop_clock(self) -> None:
        if getattr(self, "_t0", None) is not None:
            self._wall += time.perf_counter() - self._t0
            self._cpu += time.process_time() - self._c0
            self._t0 = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # manual optimisation may return nothing (Lightning passes {}): no loss to record
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:
            self._loss_sum += float(loss.detach())
            self._loss_n += 1

    def on_validation_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._stop_clock()  # validation inside an epoch is not training time

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        last = epoch >= (trainer.max_epochs or epoch)
        if epoch % self.every and not last:
            self._restart_clock()
            return
        val_loss = trainer.callback_metrics.get("val/loss")
        row = {**self.ids, "stage": pl_module.stage, "epoch": epoch,
               "step": self.step_offset + trainer.global_step,
               "train_seconds": self._wall, "train_cpu_seconds": self._cpu,
               "train_loss": self._loss_sum / self._loss_n if self._loss_n else np.nan,
               "val_loss": float(val_loss) if val_loss is not None else np.nan}
        self._loss_sum, self._loss_n = 0.0, 0
        if self.evaluate_maps and trainer.is_global_zero:
            start = time.perf_counter()
            row.update(evaluate_point(pl_module, self.val_sets, self.batch_size,
                                      seed=self.opts.seed))
            row["curve_eval_seconds"] = time.perf_counter() - start
        self.rows.append(row)
        for key, value in row.items():  # lets ModelCheckpoint monitor a curve metric
            if key.startswith("val_") and isinstance(value, float):
                trainer.callback_metrics[f"curve/{key}"] = torch.tensor(value)
        if trainer.is_global_zero:
            self.write()
        self._restart_clock()

    def _restart_clock(self) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._stop_clock()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._stop_clock()
        self.step_offset += trainer.global_step

    def write(self) -> None:
        from .atomic import write_csv

        write_csv(self.csv, pd.DataFrame(self.rows))
