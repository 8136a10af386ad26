"""Segmentation scores of one part: ``per_volume.csv`` and ``per_dataset.csv`` rows.

Per test volume x threshold source: AUPRC/AUROC (over the ``auc_region`` voxels), Dice,
precision, recall, confusion counts and lesion-level detection of the binarised map;
per data set: the pooled values (one ranking over all voxels, summed counts) and the
mean/std over volumes, long format (metric, value). On the healthy test set: the share
of healthy brain voxels flagged at each healthy-data threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import metrics
from ..data.layout import HEALTHY_COHORT
from ..thresholds import SOURCES, compute_thresholds
from . import ScoringOptions, Sets
from .maps import PartMaps


def _ranking(maps, labels, masks, opts) -> tuple[list[dict], dict]:
    """Per-volume and pooled AUPRC/AUROC over the ``auc_region`` voxels (one sort each);
    the pooled dict also holds ``prevalence``, the share of lesion voxels in the region:
    the expected AUPRC of a random map (chance level)."""
    if opts.auc_region == "brain":
        labels = [y[b] for y, b in zip(labels, masks)]
        maps = [m[b] for m, b in zip(maps, masks)]
    per_volume, pooled = metrics.dataset_ranking_metrics(maps, labels)
    n = sum(y.size for y in labels)
    pooled = {**pooled, "prevalence": sum(int(np.count_nonzero(y)) for y in labels) / n
              if n else np.nan}
    return per_volume, pooled


def _volume_rows(records, maps, labels, ranking, thresholds, opts, base) -> list[dict]:
    rows = []
    for rec, amap, seg, r in zip(records, maps, labels, ranking):
        common = {**base, "volume": rec.name, "auprc": r["auprc"], "auroc": r["auroc"],
                  "lesion_voxels": int(np.count_nonzero(seg)),
                  **({"site": rec.site} if rec.site else {})}
        if not thresholds:  # no threshold source had data: AUCs still count
            rows.append({**common, "threshold_source": "none", "threshold": np.nan,
                         "upper_bound": False, "dice": np.nan})
        for source, (thr, _) in thresholds.items():
            pred = opts.postprocess.binarize(amap, thr)
            c, found = metrics.confusion(pred, seg), metrics.lesion_detection(pred, seg)
            rows.append({
                **common, "threshold_source": source, "threshold": thr,
                "upper_bound": SOURCES[source].upper_bound,
                **metrics.overlap_scores(c["tp"], c["fp"], c["fn"]),
                "tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "predicted_voxels": c["tp"] + c["fp"],
                "n_lesions": found.n_lesions, "lesions_detected": found.detected,
                "detection_rate": found.rate})
    return rows


def _dataset_rows(rows: pd.DataFrame, pooled: dict, thresholds, base) -> list:
    n_volumes = rows["volume"].nunique()

    def row(source, metric, value, n=n_volumes):
        ub = SOURCES[source].upper_bound if source in SOURCES else False
        return {**base, "threshold_source": source, "upper_bound": ub, "metric": metric,
                "value": float(value), "n_volumes": n}

    def mean_std(source, frame, metric):
        """Mean and population std over the volumes where the value is defined."""
        v = frame[metric].to_numpy(dtype=float)
        ok = int(np.isfinite(v).sum())
        return [row(source, f"{metric}_mean", np.nanmean(v) if ok else np.nan, ok),
                row(source, f"{metric}_std", np.nanstd(v) if ok else np.nan, ok)]

    first = rows.drop_duplicates("volume")
    out = [row("none", "auprc_pooled", pooled["auprc"]),
           row("none", "auroc_pooled", pooled["auroc"]),
           row("none", "prevalence", pooled["prevalence"]),
           *mean_std("none", first, "auprc"), *mean_std("none", first, "auroc")]
    for source, (thr, fit) in thresholds.items():
        sel = rows[rows["threshold_source"] == source]
        if source == "oracle":  # the exact pooled best Dice before the CC filter
            out.append(row(source, "best_dice_pooled", fit))
        tp, fp, fn = (int(sel[c].sum()) for c in ("tp", "fp", "fn"))
        out.append(row(source, "dice_pooled", metrics.overlap_scores(tp, fp, fn)["dice"]))
        n_lesions = int(sel["n_lesions"].sum())  # lesions pool over volumes, rates do not
        out.append(row(source, "detection_rate_pooled",
                       sel["lesions_detected"].sum() / n_lesions if n_lesions else np.nan))
        for m in ("dice", "precision", "recall"):
            out += mean_std(source, sel, m)
        out.append(row(source, "threshold", thr))
    return out


def _healthy_fpr_rows(data: PartMaps, thresholds_by_source, opts, base) -> list[dict]:
    """Share of healthy brain voxels flagged on the healthy TEST set (after CC filter)."""
    got = data.get(HEALTHY_COHORT, "test")
    if got is None:
        return []
    maps, _, masks = got
    out = []
    for source, (thr, _) in thresholds_by_source.items():
        flagged = sum(int(np.count_nonzero(opts.postprocess.binarize(m, thr) & b))
                      for m, b in zip(maps, masks))
        out.append({**base, "threshold_source": source, "upper_bound": False,
                    "metric": "healthy_fpr", "value": flagged / sum(int(b.sum()) for b in masks),
                    "n_volumes": len(maps)})
    return out


def score_part(part, sets: Sets, ids: dict, opts: ScoringOptions | None = None,
               contrast: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every labelled test set of one (method, sequence, fold) part.

    part: a benchmark.rundir.Part (its cached maps are read); sets: {dataset: {split:
    records}} as from BenchmarkDataModule.evaluation_sets(); ids: columns put on every
    row (method, fold, sequence, tags). contrast: score the test maps of inputs x **
    contrast (cached by domain_shift); thresholds still come from the part's own val maps.
    """
    opts = opts or ScoringOptions()
    data = PartMaps(sets, opts, part, contrast)
    rows, per_dataset = [], []
    fpr_sources = [s for s in opts.threshold_sources if SOURCES[s].cohort == "healthy"]
    for dataset in sets:
        if dataset == HEALTHY_COHORT:
            continue
        got = data.get(dataset, "test")
        if got is None or got[1] is None:
            continue
        maps, labels, masks = got
        thresholds = compute_thresholds(opts.threshold_sources, data.get, dataset, HEALTHY_COHORT)
        base = {**ids, "dataset": dataset, **opts.tags()}
        per_volume_ranking, pooled = _ranking(maps, labels, masks, opts)
        volume_rows = _volume_rows(data.records(dataset, "test"), maps, labels,
                                   per_volume_ranking, thresholds, opts, base)
        rows += volume_rows
        per_dataset += _dataset_rows(pd.DataFrame(volume_rows), pooled, thresholds, base)
        data.drop(dataset)
    if fpr_sources:
        healthy = compute_thresholds(fpr_sources, data.get, HEALTHY_COHORT, HEALTHY_COHORT)
        per_dataset += _healthy_fpr_rows(data, healthy, opts,
                                         {**ids, "dataset": HEALTHY_COHORT, **opts.tags()})
    return pd.DataFrame(rows), pd.DataFrame(per_dataset)
