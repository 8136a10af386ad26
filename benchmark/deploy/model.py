"""A trained model, wherever it comes from: a finished part of a run, or an exported bundle.

:class:`TrainedModel` holds everything ``predict`` and ``export`` need: the method (weights
loaded), its identity, how its inputs are prepared (:class:`~.recipe.Preparation`), how
its maps are post-processed and thresholded (the part's scoring settings and its
healthy-data thresholds), the identity of its training data and the part's results.
``bundle.open_model`` takes either kind of folder; both give the same object, so a bundle
predicts exactly what its part predicts.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import sha256_file
from ..method import AnomalyMethod
from ..runconfig import RunConfig
from ..rundir import Part, RunDir
from ..thresholds import SOURCES
from .recipe import Preparation, from_run_config, manifest_file

# thresholds a user can apply to a new scan: chosen on healthy validation data only
HEALTHY_SOURCES: tuple[str, ...] = tuple(n for n, s in SOURCES.items() if s.cohort == "healthy")
# per-dataset rows of a part kept in a bundle (and shown in its model card)
RESULT_METRICS = ("auprc_pooled", "auroc_pooled", "prevalence", "dice_pooled", "threshold",
                  "healthy_fpr", "ssim_mean", "psnr_mean")
BUNDLE_FILE = "bundle.json"


class ModelSourceError(ValueError):
    """A --model folder that is neither a finished part nor a bundle; names the folder."""


@dataclass
class TrainedModel:
    """identity: method, sequence, fold, tags, hyperparameters, where it came from.
    scoring: {"postprocess", "auc_region", "protocol_version"} of the part's records.
    thresholds: {source: value} on the post-processed map, healthy-data sources only.
    training_data: cohort, fold, data source, manifest sha256, training subjects.
    results: the part's per-dataset rows (RESULT_METRICS); timings: its timing record."""

    method: AnomalyMethod
    identity: dict[str, Any]
    preparation: Preparation
    scoring: dict[str, Any]
    thresholds: dict[str, float]
    training_data: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def sequence(self) -> str:
        return self.identity["sequence"]

    def describe(self) -> str:
        ident = self.identity
        return f"{ident['method']}/{ident['sequence']}/fold{ident['fold']}"


def part_of(path: Path) -> Part:
    """The finished part at ``path`` (RUN/METHOD/SEQ/foldK); a clear error otherwise."""
    path = Path(path)
    run_path = path.parents[2] if len(path.parents) >= 3 else None
    fold = path.name[len("fold"):] if path.name.startswith("fold") else ""
    if not path.is_dir() or run_path is None or not fold.isdigit() \
            or not RunDir(run_path).exists():
        raise ModelSourceError(
            f"--model {path}: neither a model bundle (no {BUNDLE_FILE}; `python -m benchmark "
            "export` writes one) nor a part of a run directory (RUN/METHOD/SEQ/foldK with "
            "RUN/config.json)")
    part = RunDir(run_path).part(path.parent.parent.name, path.parent.name, int(fold))
    if not part.is_done():
        raise ModelSourceError(f"--model {path}: not a finished part (no done.json): the "
                               "part is still running or crashed; finish it with `run --resume`")
    return part


def from_part(part: Part) -> TrainedModel:
    """Everything a finished part's records say about its model (weights-only loading)."""
    from ..checkpoint import load_method

    run, done = part.run, part.done()
    config = run.run_config()
    checkpoint = part.checkpoint()
    method = load_method(checkpoint)
    scoring, thresholds = part_thresholds(part)
    training = training_data(part, config)
    preparation = from_run_config(config, part.sequence, training["train_names"])
    identity = {
        "method": part.method, "sequence": part.sequence, "fold": part.fold,
        "tags": part.tags(), "hparams": dict(method.hparams), "family": method.family,
        "paper": method.paper, "n_params": method.n_params(), "run_id": run.path.name,
        "part": part.key, "profile": config.profile.name,
        "checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint),
        "git_commit": run.environment().get("git_commit"), "source": str(part.path),
    }
    timings = {k: done[k] for k in ("train_seconds", "epochs", "infer_seconds_per_volume",
                                    "hardware", "checkpoint_selected_by") if k in done}
    return TrainedModel(method, identity, preparation, scoring, thresholds, training,
                        part_results(part), timings)


def part_thresholds(part: Part) -> tuple[dict[str, Any], dict[str, float]]:
    """(scoring settings, {healthy source: threshold}) from the part's per_dataset.csv.

    Healthy-data thresholds are the same for every data set a part scored (they come from
    its healthy validation maps); a part whose rows disagree is an error."""
    table = part.table("per_dataset.csv")
    if table is None:
        raise ModelSourceError(f"{part.path}: no per_dataset.csv (the part was never scored)")
    rows = table[(table["metric"] == "threshold")
                 & table["threshold_source"].isin(HEALTHY_SOURCES)]
    if rows.empty:
        raise ModelSourceError(
            f"{part.path}/per_dataset.csv has no healthy-data threshold "
            f"({', '.join(HEALTHY_SOURCES)}): re-score with `python -m benchmark evaluate "
            f"{part.run.path} --thresholds {','.join(HEALTHY_SOURCES)}`")
    scoring = {}
    for column in ("postprocess", "auc_region", "protocol_version"):
        values = rows[column].astype(str).unique()
        if len(values) != 1:
            raise ModelSourceError(f"{part.path}/per_dataset.csv: several {column} values "
                                   f"{list(values)}")
        scoring[column] = values[0]
    thresholds = {}
    for source, group in rows.groupby("threshold_source", sort=False):
        values = group["value"].unique()
        if len(values) != 1:
            raise ModelSourceError(f"{part.path}/per_dataset.csv: {source} thresholds differ "
                                   f"between data sets: {list(values)}")
        thresholds[str(source)] = float(values[0])
    return scoring, {s: thresholds[s] for s in HEALTHY_SOURCES if s in thresholds}


def part_results(part: Part) -> list[dict[str, Any]]:
    """The part's per-dataset rows worth carrying: pooled AUPRC/AUROC, chance, Dice and
    threshold per source, healthy FPR, reconstruction quality."""
    table = part.table("per_dataset.csv")
    if table is None:
        return []
    keep = table[table["metric"].isin(RESULT_METRICS)]
    cols = ["dataset", "threshold_source", "upper_bound", "metric", "value", "n_volumes"]
    out = keep[cols].to_dict("records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in out]


def training_data(part: Part, config: RunConfig) -> dict[str, Any]:
    """Which data trained the part: cohort, fold, the data root's manifest hash and the
    training/validation subjects (names and a hash of the sorted list)."""
    from ..data.layout import HEALTHY_COHORT
    from ..data.module import BenchmarkDataModule

    root = Path(config.data_root)
    if not root.exists():
        raise FileNotFoundError(f"{part.path}: the run's data root {root} is not on this "
                                "machine (its preparation and identity are read from it)")
    data = BenchmarkDataModule(config.data_config(part.sequence, part.fold))
    records = data.records
    train = sorted(r.name for r in records["train"])
    manifest = manifest_file(root)
    return {
        "cohort": HEALTHY_COHORT, "sequence": part.sequence, "fold": part.fold,
        "fold_scheme": config.fold_scheme, "data_source": config.data_source,
        "data_root": str(root),
        "manifest": None if manifest is None else {"file": manifest.name,
                                                   "sha256": sha256_file(manifest)},
        "n_train": len(train), "n_val": len(records["val"]),
        # the healthy validation volumes the fpr thresholds were chosen on (the profile's cap)
        "n_threshold_volumes": len(data.healthy_evaluation_set()["val"]),
        "train_subjects_sha256": _names_hash(train), "train_names": train,
    }


def _names_hash(names: list[str]) -> str:
    return hashlib.sha256(json.dumps(sorted(names)).encode()).hexdigest()
