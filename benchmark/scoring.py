"""Cached anomaly maps + labels -> result rows: the evaluation protocol (issue 3).

``score_part`` turns the cached maps of one (method, sequence, fold) part into
``per_volume.csv`` rows (one per test volume x threshold source) and ``per_dataset.csv``
rows (pooled and mean/std values, long format: metric, value). ``score_reconstruction``
gives ``recon_quality.csv`` (SSIM/PSNR/l1/LPIPS on the healthy test set, l1-ratio and
histogram divergences on every set). Definitions: docs/protocol.md; metric functions:
:mod:`benchmark.metrics`; post-processing: :mod:`benchmark.postprocess`; where thresholds
come from, and why none but the labelled oracle can be chosen on test data:
:mod:`benchmark.thresholds`.

Volumes are (H, W, D) arrays. Every row carries ``postprocess`` (the PostProcess tag),
``auc_region``, ``threshold_source``, ``upper_bound`` and ``protocol_version``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from . import metrics
from .data.layout import HEALTHY_COHORT, VolumeRecord
from .data.loader import load_volume
from .evaluate import maps_path
from .postprocess import PostProcess
from .thresholds import DEFAULT_SOURCES, SOURCES, compute_thresholds

PROTOCOL_VERSION = "1.0"
CONTRAST_LEVELS = (0.3, 0.7, 1.0, 1.5, 2.0)  # paper Sec. 4.5.2: inputs x ** cl at test time
AUC_REGIONS = ("brain", "all")
Sets = dict[str, dict[str, list[VolumeRecord]]]


@dataclass(frozen=True)
class ScoringOptions:
    """How cached maps are scored (defaults: the paper's post-processing, AUCs in the brain).

    auc_region: "brain" (voxels inside the brain mask, the default) or "all" (every voxel
        of the volume, background included, as the authors' code does).
    threshold_sources: names from benchmark.thresholds.SOURCES.
    """

    postprocess: PostProcess = field(default_factory=PostProcess)
    auc_region: Literal["brain", "all"] = "brain"
    threshold_sources: tuple[str, ...] = DEFAULT_SOURCES
    median_backend: Literal["fast", "scipy"] = "fast"  # equal results; not part of the tag

    def __post_init__(self):
        if self.auc_region not in AUC_REGIONS:
            raise ValueError(f"auc_region must be one of {AUC_REGIONS}, got {self.auc_region!r}")
        bad = [s for s in self.threshold_sources if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown threshold source(s) {bad}; allowed: {', '.join(SOURCES)}")

    def describe(self) -> str:
        return str(self.postprocess)

    def tags(self) -> dict:
        return {"postprocess": str(self.postprocess), "auc_region": self.auc_region,
                "protocol_version": PROTOCOL_VERSION}


class PartMaps:
    """Processed maps of one part, loaded lazily per (dataset, split) and kept until dropped.

    maps_dirs: {split: part directory whose maps/ is read}; a contrast-shifted test set
    reads "test" from its own directory and "val" (thresholds) from the unshifted part.
    """

    def __init__(self, sets: Sets, opts: ScoringOptions, maps_dirs: dict[str, Path]):
        self.sets, self.opts, self.maps_dirs = sets, opts, maps_dirs
        self._cache: dict[tuple[str, str], tuple] = {}

    def records(self, dataset: str, split: str) -> list[VolumeRecord]:
        return list(self.sets.get(dataset, {}).get(split) or [])

    def raw(self, dataset: str, split: str,
            keys=("anomaly", "reconstruction")) -> dict[str, np.ndarray] | None:
        """The cached arrays ``keys`` (those present), (V, H, W, D) in ``records`` order."""
        recs = self.records(dataset, split)
        part = self.maps_dirs.get(split)
        path = None if part is None else maps_path(part, dataset, split)
        if not recs or path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as f:  # only the arrays asked for
            names = [str(n) for n in f["names"]]
            index = {n: i for i, n in enumerate(names)}
            missing = [r.name for r in recs if r.name not in index]
            if missing:
                raise KeyError(f"{path} lacks maps for {missing[:3]}")
            order = [index[r.name] for r in recs]
            identity = order == list(range(len(names)))
            return {k: (f[k] if identity else f[k][order]) for k in keys if k in f.files}

    def get(self, dataset: str, split: str):
        """(processed maps, labels or None, brain masks): lists, one (H, W, D) per volume."""
        key = (dataset, split)
        if key not in self._cache:
            raw = self.raw(dataset, split, keys=("anomaly",))
            if raw is None:
                return None
            vols = [load_volume(r) for r in self.records(dataset, split)]
            pp, backend = self.opts.postprocess, self.opts.median_backend
            maps = [pp.apply(a.astype(np.float32), v.mask, backend)
                    for a, v in zip(raw.pop("anomaly"), vols)]
            labels = None if vols[0].seg is None else [v.seg for v in vols]
            self._cache[key] = (maps, labels, [v.mask for v in vols])
        return self._cache[key]

    def drop(self, dataset: str) -> None:
        for key in [k for k in self._cache if k[0] == dataset]:
            del self._cache[key]


# ---------------------------------------------------------------------------- segmentation
def _ranking(maps, labels, masks, opts) -> tuple[list[dict], dict]:
    """Per-volume and pooled AUPRC/AUROC over the ``auc_region`` voxels (one sort each)."""
    if opts.auc_region == "brain":
        return metrics.dataset_ranking_metrics([m[b] for m, b in zip(maps, masks)],
                                               [y[b] for y, b in zip(labels, masks)])
    return metrics.dataset_ranking_metrics(maps, labels)


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
            n_pred, n_gt = c["tp"] + c["fp"], c["tp"] + c["fn"]
            rows.append({
                **common, "threshold_source": source, "threshold": thr,
                "upper_bound": SOURCES[source].upper_bound,
                "dice": 2 * c["tp"] / (n_pred + n_gt) if n_pred + n_gt else np.nan,
                "precision": c["tp"] / n_pred if n_pred else np.nan,
                "recall": c["tp"] / n_gt if n_gt else np.nan,
                "tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "predicted_voxels": n_pred,
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
           *mean_std("none", first, "auprc"), *mean_std("none", first, "auroc")]
    for source, (thr, fit) in thresholds.items():
        sel = rows[rows["threshold_source"] == source]
        if source == "oracle":  # the exact pooled best Dice before the CC filter
            out.append(row(source, "best_dice_pooled", fit))
        tp, fp, fn = (int(sel[c].sum()) for c in ("tp", "fp", "fn"))
        out.append(row(source, "dice_pooled",
                       2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan))
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
               test_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every labelled test set of one (method, sequence, fold) part.

    part: the part directory (its maps/ holds the cached maps); sets: {dataset: {split:
    records}} as from BenchmarkDataModule.evaluation_sets(); ids: columns put on every
    row (method, fold, sequence, tags). test_dir: read the test maps from there instead
    (contrast-shifted copies); thresholds still come from ``part``'s val maps.
    """
    opts = opts or ScoringOptions()
    data = PartMaps(sets, opts, {"val": Path(part), "test": Path(test_dir or part)})
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


# ---------------------------------------------------------------------------- reconstruction
HIST_BINS, HIST_RANGE = 500, (0.0, 1.0)


def _counts(values: np.ndarray) -> np.ndarray:
    """500-bin histogram counts on [0, 1], out-of-range values clipped into the edge bins
    (the same binning as metrics.intensity_histogram, kept as counts so volumes pool)."""
    return np.histogram(np.clip(values, *HIST_RANGE), bins=HIST_BINS, range=HIST_RANGE)[0]


def _divergences(c_in: np.ndarray, c_rec: np.ndarray) -> dict[str, float]:
    n = int(c_in.sum())
    if n == 0:
        return {"kl_divergence": np.nan, "paper_kld": np.nan}
    edges = np.linspace(*HIST_RANGE, HIST_BINS + 1)
    p_in, p_rec = (c / (c.sum() * np.diff(edges)) for c in (c_in, c_rec))
    return {"kl_divergence": metrics.kl_divergence(p_in, p_rec, edges, n_counts=n),
            "paper_kld": metrics.paper_entropy_difference(p_in, p_rec)}


def _recon_volume(x, rec, brain, seg, healthy: bool) -> tuple[dict, np.ndarray, np.ndarray]:
    """One volume's reconstruction metrics and its histogram counts (input, reconstruction)
    over the brain (healthy cohort) or over the healthy part only (brain & ~annotation)."""
    region = brain if healthy or seg is None else brain & ~seg
    c_in, c_rec = _counts(x[region]), _counts(rec[region])
    row = {"hist_region": "brain" if healthy or seg is None else "healthy_part",
           **_divergences(c_in, c_rec)}
    if healthy:
        lp = metrics.lpips_distance(x, rec)
        row.update(ssim=metrics.ssim(x, rec, brain), psnr=metrics.psnr(x, rec),
                   l1=metrics.l1_error(x, rec, brain), lpips=np.nan if lp is None else lp,
                   lpips_status="ok" if lp is not None else "skipped: lpips or weights absent")
    elif seg is not None:
        row.update(metrics.l1_errors(x, rec, seg, brain), l1=metrics.l1_error(x, rec, brain),
                   anomalous_voxels=int(seg.sum()), healthy_voxels=int((brain & ~seg).sum()))
    return row, c_in, c_rec


def _recon_dataset_values(rows: pd.DataFrame) -> dict[str, float]:
    """Means over volumes, and the l1-ratio of voxel-pooled errors (Table 1)."""
    out = {f"{m}_mean": float(rows[m].mean()) for m in
           ("ssim", "psnr", "l1", "lpips", "l1_healthy", "l1_anomalous", "l1_ratio")
           if m in rows and rows[m].notna().any()}
    if "anomalous_voxels" in rows and rows["anomalous_voxels"].sum() > 0:
        ok = rows["l1_anomalous"].notna()
        l1_a = (rows.loc[ok, "l1_anomalous"] * rows.loc[ok, "anomalous_voxels"]).sum() \
            / rows.loc[ok, "anomalous_voxels"].sum()
        l1_h = (rows["l1_healthy"] * rows["healthy_voxels"]).sum() / rows["healthy_voxels"].sum()
        out["l1_ratio_pooled"] = float(l1_a / l1_h) if l1_h > 0 else np.nan
    return out


def score_reconstruction(part, sets: Sets, ids: dict, contrast: float = 1.0,
                         test_dir: Path | None = None, histograms_path: Path | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """recon_quality rows (per test volume) and pooled per-dataset rows for one part.

    Healthy test set: SSIM, PSNR, l1, LPIPS (when available offline), histogram KL.
    Unhealthy test sets: l1 over healthy/anomalous voxels and the l1-ratio (Table 1), and
    the histogram divergences over the healthy part only (paper Sec. 4.5.2, Fig. 4).
    contrast: the inputs were x ** contrast (their maps in ``test_dir``); the comparison
    is against that shifted input. Methods without reconstructions give empty frames.
    histograms_path: also save the pooled histogram counts there (npz: ``edges``,
    ``<dataset>_input``, ``<dataset>_reconstruction``), the data of the paper's Fig. 4.
    """
    data = PartMaps(sets, ScoringOptions(), {"test": Path(test_dir or part)})
    rows, pooled, hists = [], [], {}
    for dataset in sets:
        raw = data.raw(dataset, "test", keys=("reconstruction",))
        if raw is None or "reconstruction" not in raw:
            continue
        total_in, total_rec = np.zeros(HIST_BINS, np.int64), np.zeros(HIST_BINS, np.int64)
        for rec_ref, recon in zip(data.records(dataset, "test"), raw["reconstruction"]):
            vol = load_volume(rec_ref)
            x = vol.image if contrast == 1.0 else vol.image ** contrast
            row, c_in, c_rec = _recon_volume(x, recon.astype(np.float32), vol.mask, vol.seg,
                                             dataset == HEALTHY_COHORT)
            total_in += c_in
            total_rec += c_rec
            rows.append({**ids, "dataset": dataset, "volume": rec_ref.name,
                         **row, "protocol_version": PROTOCOL_VERSION})
        hists.update({f"{dataset}_input": total_in, f"{dataset}_reconstruction": total_rec})
        values = {f"{m}_pooled": v for m, v in _divergences(total_in, total_rec).items()}
        values.update(_recon_dataset_values(pd.DataFrame(
            [r for r in rows if r["dataset"] == dataset])))
        for metric, value in values.items():
            pooled.append({**ids, "dataset": dataset,
                           "threshold_source": "none", "upper_bound": False,
                           "metric": metric, "value": value,
                           "n_volumes": len(raw["reconstruction"]),
                           "protocol_version": PROTOCOL_VERSION})
    if histograms_path is not None and hists:
        np.savez_compressed(histograms_path, edges=np.linspace(*HIST_RANGE, HIST_BINS + 1),
                            **hists)
    return pd.DataFrame(rows), pd.DataFrame(pooled)


# ---------------------------------------------------------------------------- domain shift
def contrast_transform(cl: float):
    """Input transform for evaluate.infer: (D, 1, H, W) in [0, 1] -> x ** cl (Sec. 4.5.2)."""
    if cl <= 0:
        raise ValueError(f"contrast level must be > 0, got {cl}")
    return lambda x: x.clamp(0, 1) ** cl


def contrast_dir(part, cl: float) -> Path:
    """Where the maps of the contrast-shifted test inputs of a part are cached."""
    return Path(part) / f"contrast{cl:g}"


def infer_contrast_levels(method, sets: Sets, part, device, levels=CONTRAST_LEVELS,
                          **infer_kwargs) -> None:
    """Cache maps of every test set with inputs x ** cl (cl != 1) next to the part's own.

    Needs the trained method (an experiment step); ``evaluate`` then scores them.
    """
    from .evaluate import infer

    tests = {d: {"test": s["test"]} for d, s in sets.items() if s.get("test")}
    for cl in levels:
        if cl != 1.0:
            infer(method, tests, contrast_dir(part, cl), device,
                  input_transform=contrast_transform(cl), **infer_kwargs)


def contrast_levels_cached(part) -> list[tuple[float, Path | None]]:
    """[(1.0, None), (cl, dir), ...] for the contrast levels with cached maps in a part."""
    found = [(1.0, None)]
    for d in sorted(Path(part).glob("contrast*")):
        try:
            found.append((float(d.name[len("contrast"):]), d))
        except ValueError:
            continue
    return found


# ---------------------------------------------------------------------------- one part, all
def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score_all(part, sets: Sets, ids: dict, opts: ScoringOptions | None = None):
    """Everything for one part's own maps: (per_volume, per_dataset, recon_quality);
    the pooled intensity histograms go to ``<part>/histograms.npz``."""
    vol, ds = score_part(part, sets, ids, opts)
    rec, rec_ds = score_reconstruction(part, sets, ids,
                                       histograms_path=Path(part) / "histograms.npz")
    return vol, _concat([ds, rec_ds]), rec


def score_domain_shift(part, sets: Sets, ids: dict,
                       opts: ScoringOptions | None = None) -> pd.DataFrame:
    """per-dataset rows (column ``contrast``) for every cached contrast level and 1.0,
    for ``domain_shift.csv``; empty when the part has no contrast-shifted maps. Kept out
    of per_*.csv so those stay one row per key for the leaderboard."""
    levels = contrast_levels_cached(part)
    if len(levels) == 1:
        return pd.DataFrame()
    frames = []
    for cl, cdir in levels:
        _, ds = score_part(part, sets, ids, opts, test_dir=cdir)
        _, rec_ds = score_reconstruction(
            part, sets, ids, contrast=cl, test_dir=cdir,
            histograms_path=Path(part) / f"histograms_contrast{cl:g}.npz")
        frames += [f.assign(contrast=cl) for f in (ds, rec_ds) if not f.empty]
    return _concat(frames)


# ---------------------------------------------------------------------------- CLI: evaluate
def configure_parser(parser) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--postprocess", default=str(PostProcess()),
                        help="post-processing tag, e.g. 'erode3_2d+median5+cc7_26' (default), "
                             "'median5+erode3_2d+cc7_26' (paper's text order), "
                             "'erode3_2d+median5+cc8_26' (authors' code: drop <= 7 voxels), "
                             "'none'")
    parser.add_argument("--auc-region", default="brain", choices=AUC_REGIONS,
                        help="voxels for AUPRC/AUROC: inside the brain mask (default) or all "
                             "voxels (the authors' code)")
    parser.add_argument("--thresholds", default=",".join(DEFAULT_SOURCES),
                        help=f"threshold sources (default: all of {', '.join(SOURCES)})")


def options_from_args(args) -> ScoringOptions:
    from .thresholds import parse_sources

    return ScoringOptions(postprocess=PostProcess.from_string(args.postprocess),
                          auc_region=args.auc_region,
                          threshold_sources=parse_sources(args.thresholds))


def main(args) -> int:
    """Re-score every finished part of a run from its cached maps (no model is run)."""
    import json

    from . import rundir
    from .data.module import BenchmarkDataModule, DataConfig
    from .profiles import get_profile

    opts = options_from_args(args)
    run = Path(args.run_dir)
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run} is not a run directory (no config.json)")
    config = json.loads((run / "config.json").read_text())
    profile = get_profile(config["profile"]["name"])
    for done in sorted(run.glob("*/*/fold*/done.json")):
        part = done.parent
        method, sequence, fold = part.parent.parent.name, part.parent.name, int(part.name[4:])
        data = BenchmarkDataModule(DataConfig(
            root=Path(config["data_root"]), sequence=sequence, fold=fold,
            fold_scheme=config["fold_scheme"], max_test_volumes=profile.max_test_volumes,
            max_train_volumes=profile.max_train_volumes, cohorts=config.get("cohorts")))
        old = pd.read_csv(part / "per_volume.csv") if (part / "per_volume.csv").is_file() \
            else pd.DataFrame()
        tags = {c: old[c].iloc[0] for c in old.columns
                if c in ("profile", "data_source", "pretrained") and len(old)}
        ids = {"method": method, "fold": fold, "sequence": sequence, **tags}
        sets = data.evaluation_sets()
        per_volume, per_dataset, recon = score_all(part, sets, ids, opts)
        rundir.write_csv(part / "per_volume.csv", per_volume)
        rundir.write_csv(part / "per_dataset.csv", per_dataset)
        if not recon.empty:
            rundir.write_csv(part / "recon_quality.csv", recon)
        shift = score_domain_shift(part, sets, ids, opts)
        if not shift.empty:
            rundir.write_csv(part / "domain_shift.csv", shift)
    rundir.collect(run)
    shifts = [pd.read_csv(p) for p in sorted(run.glob("*/*/fold*/domain_shift.csv"))]
    if shifts:
        rundir.write_csv(run / "domain_shift.csv", pd.concat(shifts, ignore_index=True))
    print(f"re-scored {run} with post-processing {opts.describe()}, AUCs over "
          f"{opts.auc_region} voxels, thresholds {','.join(opts.threshold_sources)}")
    return 0
