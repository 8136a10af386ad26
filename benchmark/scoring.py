"""Cached anomaly maps + labels -> per-volume and per-dataset result rows.

First version for the spine (issue 2): brain-mask erosion and median filter, AUROC/AUPRC
inside the brain mask (scikit-learn), Dice at a pooled best-Dice threshold chosen on the
test set itself (``oracle``, an upper bound) and on the labelled validation split
(``val``). The full protocol (issue 3) replaces the internals, not the interface.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from .data.layout import HEALTHY_COHORT, VolumeRecord
from .data.loader import load_volume
from .evaluate import load_maps

PROTOCOL_VERSION = "0.1-spine"


@dataclass(frozen=True)
class ScoringOptions:
    erode_iterations: int = 3
    median_kernel: int = 5

    def describe(self) -> str:
        return f"erode2d{self.erode_iterations}+median{self.median_kernel}"


def postprocess(anomaly: np.ndarray, mask: np.ndarray, opts: ScoringOptions) -> np.ndarray:
    """(H, W, D) map -> map * mask eroded per axial slice, then a 3D median filter."""
    structure = ndimage.generate_binary_structure(2, 1)[..., None]  # 2D cross per slice
    eroded = ndimage.binary_erosion(mask, structure, iterations=opts.erode_iterations)
    out = anomaly.astype(np.float32) * eroded
    if opts.median_kernel > 1:
        out = ndimage.median_filter(out, size=opts.median_kernel)
    return out


def pooled_best_dice(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Exact best Dice over every distinct score (prediction: score >= threshold)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.int64)
    tp = np.cumsum(y)
    k = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    dice = np.where(last, 2 * tp / (k + y.sum()), -1)
    best = int(np.argmax(dice))
    return float(dice[best]), float(s[best])


def _prepared(part, dataset, split, records, opts):
    maps = load_maps(part, dataset, split)
    by_name = {str(n): i for i, n in enumerate(maps["names"])}
    for rec in records:
        vol = load_volume(rec)
        yield rec, vol, postprocess(maps["anomaly"][by_name[rec.name]], vol.mask, opts)


def _threshold(part, dataset, split, records, opts) -> float:
    scores, labels = [], []
    for _, vol, amap in _prepared(part, dataset, split, records, opts):
        scores.append(amap[vol.mask])
        labels.append(vol.seg[vol.mask])
    return pooled_best_dice(np.concatenate(scores), np.concatenate(labels))[1]


def score_part(part, sets: dict[str, dict[str, list[VolumeRecord]]], ids: dict,
               opts: ScoringOptions = ScoringOptions()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every labelled test set of one (method, sequence, fold) part."""
    rows, pooled = [], []
    for dataset, splits in sets.items():
        if dataset == HEALTHY_COHORT or not splits.get("test"):
            continue
        thresholds = {"oracle": _threshold(part, dataset, "test", splits["test"], opts)}
        if splits.get("val"):
            thresholds["val"] = _threshold(part, dataset, "val", splits["val"], opts)
        all_scores, all_labels = [], []
        for rec, vol, amap in _prepared(part, dataset, "test", splits["test"], opts):
            s, y = amap[vol.mask], vol.seg[vol.mask]
            all_scores.append(s)
            all_labels.append(y)
            has_both = 0 < y.sum() < y.size
            base = {**ids, "dataset": dataset, "volume": rec.name,
                    "auprc": average_precision_score(y, s) if has_both else np.nan,
                    "auroc": roc_auc_score(y, s) if has_both else np.nan,
                    "lesion_voxels": int(vol.seg.sum()), "postprocess": opts.describe(),
                    "auc_region": "brain", "protocol_version": PROTOCOL_VERSION}
            for source, thr in thresholds.items():
                pred = amap >= thr
                denom = pred.sum() + vol.seg.sum()
                dice = 2 * (pred & vol.seg).sum() / denom if denom else 1.0
                rows.append({**base, "dice": float(dice), "threshold": thr,
                             "threshold_source": source})
        s, y = np.concatenate(all_scores), np.concatenate(all_labels)
        pooled.append({**ids, "dataset": dataset, "threshold_source": "oracle",
                       "metric": "dice_pooled", "value": pooled_best_dice(s, y)[0]})
        pooled.append({**ids, "dataset": dataset, "threshold_source": "none",
                       "metric": "auprc_pooled", "value": average_precision_score(y, s)})
    return pd.DataFrame(rows), pd.DataFrame(pooled)


# ---------------------------------------------------------------------------- CLI: evaluate
def configure_parser(parser) -> None:
    from pathlib import Path

    parser.add_argument("run_dir", type=Path, help="a finished run directory")


def main(args) -> int:
    """Re-score every finished part of a run from its cached maps (no model is run)."""
    import json
    from pathlib import Path

    from . import rundir
    from .data.module import BenchmarkDataModule, DataConfig
    from .profiles import get_profile

    run = Path(args.run_dir)
    config = json.loads((run / "config.json").read_text())
    profile = get_profile(config["profile"]["name"])
    for done in sorted(run.glob("*/*/fold*/done.json")):
        part = done.parent
        method, sequence, fold = part.parent.parent.name, part.parent.name, int(part.name[4:])
        data = BenchmarkDataModule(DataConfig(
            root=Path(config["data_root"]), sequence=sequence, fold=fold,
            fold_scheme=config["fold_scheme"], max_test_volumes=profile.max_test_volumes,
            max_train_volumes=profile.max_train_volumes, cohorts=config.get("cohorts")))
        old = pd.read_csv(part / "per_volume.csv")
        tags = {c: old[c].iloc[0] for c in old.columns
                if c in ("profile", "data_source", "pretrained")}
        ids = {"method": method, "fold": fold, "sequence": sequence, **tags}
        per_volume, per_dataset = score_part(part, data.evaluation_sets(), ids)
        rundir.write_csv(part / "per_volume.csv", per_volume)
        rundir.write_csv(part / "per_dataset.csv", per_dataset)
    rundir.collect(run)
    print(f"re-scored {run}")
    return 0
