"""Reconstruction quality of one part: ``recon_quality.csv`` rows and pooled values.

Healthy test set: SSIM, PSNR, l1 inside the brain, LPIPS (when available offline),
intensity-histogram divergences. Unhealthy test sets: l1 over healthy and anomalous voxels
and the l1-ratio (paper Table 1), and the histogram divergences over the healthy part only
(paper Sec. 4.5.2, Fig. 4). Every test set also gets ``l1_all``, the l1 over all voxels of
the volume, background included, as the authors' code computes it (docs/protocol.md,
Sec. 8). Methods without reconstructions give empty tables.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..atomic import atomic_path
from ..data.layout import HEALTHY_COHORT
from ..data.loader import load_volume
from . import PROTOCOL_VERSION, ScoringOptions, Sets
from .maps import PartMaps

HIST_BINS, HIST_RANGE = 500, (0.0, 1.0)


def _counts(values: np.ndarray) -> np.ndarray:
    return metrics.histogram_counts(values, bins=HIST_BINS, value_range=HIST_RANGE)[0]


def _edges() -> np.ndarray:
    return np.linspace(*HIST_RANGE, HIST_BINS + 1)


def _divergences(c_in: np.ndarray, c_rec: np.ndarray) -> dict[str, float]:
    n = int(c_in.sum())
    if n == 0:
        return {"kl_divergence": np.nan, "paper_kld": np.nan}
    edges = _edges()
    p_in, p_rec = metrics.density(c_in, edges), metrics.density(c_rec, edges)
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
                   l1=metrics.l1_error(x, rec, brain), l1_all=metrics.l1_error(x, rec),
                   lpips=np.nan if lp is None else lp,
                   lpips_status="ok" if lp is not None else "skipped: lpips or weights absent")
    elif seg is not None:
        row.update(metrics.l1_errors(x, rec, seg, brain), l1=metrics.l1_error(x, rec, brain),
                   l1_all=metrics.l1_error(x, rec),
                   anomalous_voxels=int(seg.sum()), healthy_voxels=int((brain & ~seg).sum()))
    return row, c_in, c_rec


def _recon_dataset_values(rows: pd.DataFrame) -> dict[str, float]:
    """Means over volumes, and the l1-ratio of voxel-pooled errors (Table 1)."""
    out = {f"{m}_mean": float(rows[m].mean()) for m in
           ("ssim", "psnr", "l1", "l1_all", "lpips", "l1_healthy", "l1_anomalous", "l1_ratio")
           if m in rows and rows[m].notna().any()}
    if "anomalous_voxels" in rows and rows["anomalous_voxels"].sum() > 0:
        ok = rows["l1_anomalous"].notna()
        l1_a = (rows.loc[ok, "l1_anomalous"] * rows.loc[ok, "anomalous_voxels"]).sum() \
            / rows.loc[ok, "anomalous_voxels"].sum()
        l1_h = (rows["l1_healthy"] * rows["healthy_voxels"]).sum() / rows["healthy_voxels"].sum()
        out["l1_ratio_pooled"] = float(l1_a / l1_h) if l1_h > 0 else np.nan
    return out


def score_reconstruction(part, sets: Sets, ids: dict, contrast: float = 1.0,
                         histograms_path: Path | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """recon_quality rows (per test volume) and pooled per-dataset rows for one part.

    contrast: the inputs were x ** contrast (maps cached by domain_shift); the comparison
    is against that shifted input. histograms_path: also save the pooled histogram counts
    there (npz: ``edges``, ``<dataset>_input``, ``<dataset>_reconstruction``), the data
    of the paper's Fig. 4.
    """
    data = PartMaps(sets, ScoringOptions(), part, contrast)
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
        with atomic_path(histograms_path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, edges=_edges(), **hists)
    return pd.DataFrame(rows), pd.DataFrame(pooled)
