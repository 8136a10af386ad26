"""Figures: per-volume box/strip plots, the noise-level curve (paper Fig. 6) and a
qualitative grid of input, reconstruction, anomaly map and ground truth (Figs. 5, 7).

The backend is left to matplotlib (it falls back to Agg without a display, and a
notebook keeps its own); every function returns the Figure it made, so tests and
notebooks can inspect it, and `save` writes it and closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

GRID_COLUMNS = ("input", "reconstruction", "anomaly_map", "ground_truth")


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def per_volume_boxplots(per_volume: pd.DataFrame, dataset: str,
                        metrics: Sequence[str] = ("dice", "auprc"),
                        threshold_source: str = "oracle", order: list[str] | None = None):
    """Box plot plus one dot per test volume (all folds) of each metric, by entry.

    per_volume: per_volume.csv rows with an `entry` column. Threshold-dependent metrics
    use `threshold_source` when present (oracle: the paper's best-Dice threshold).
    """
    rows = per_volume[per_volume["dataset"] == dataset]
    metrics = [m for m in metrics if m in rows.columns]
    if rows.empty or not metrics:
        raise ValueError(f"no per-volume {list(metrics)} values for dataset {dataset!r}")
    if "threshold_source" in rows.columns and threshold_source in set(rows["threshold_source"]):
        rows = rows[rows["threshold_source"] == threshold_source]
    order = order or sorted(rows["entry"].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.2 + 0.7 * len(order) * len(metrics),
                                                       4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.boxplot(data=rows, x="entry", y=metric, order=order, ax=ax, color="0.85",
                    showfliers=False)
        sns.stripplot(data=rows, x="entry", y=metric, order=order, ax=ax, size=2.5,
                      alpha=0.6, jitter=0.25)
        ax.set_xlabel("")
        ax.set_ylabel(f"{metric} per volume")
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"{dataset}: per-volume scores (threshold source {threshold_source})")
    fig.tight_layout()
    return fig


def noise_level_curve(noise: pd.DataFrame, metric: str = "auprc"):
    """Paper Fig. 6: a metric against the test noise level t, one panel per dataset.

    noise: noise_levels.csv rows (entry, fold, dataset, t, <metric>); numeric t gives
    the curve (mean and sd over folds), a non-numeric t such as "ens" a dashed line.
    """
    if noise.empty or metric not in noise.columns:
        raise ValueError(f"noise_levels.csv has no {metric!r} column")
    noise = noise.copy()
    noise["t_num"] = pd.to_numeric(noise["t"], errors="coerce")
    datasets = sorted(noise["dataset"].unique())
    ncols = min(2, len(datasets))
    nrows = int(np.ceil(len(datasets) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.5 * nrows), squeeze=False)
    palette = dict(zip(sorted(noise["entry"].unique()), sns.color_palette()))
    for ax, dataset in zip(axes.flat, datasets):
        d = noise[noise["dataset"] == dataset]
        curve = d[d["t_num"].notna()]
        if not curve.empty:
            sns.lineplot(data=curve, x="t_num", y=metric, hue="entry", palette=palette,
                         errorbar="sd", marker="o", ax=ax)
        for (entry, t), g in d[d["t_num"].isna()].groupby(["entry", "t"]):
            ax.axhline(g[metric].mean(), ls="--", color=palette[entry],
                       label=f"{entry}$^{{{t}}}$")
        ax.set_title(dataset)
        ax.set_xlabel("$t_{test}$")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def qualitative_grid(rows: Sequence[Mapping[str, np.ndarray | None]],
                     row_labels: Sequence[str] | None = None, cmap_map: str = "inferno"):
    """Grid of input, reconstruction, anomaly map, ground truth (one row per case).

    rows: mappings with keys "input", "reconstruction" (None or missing for methods
    without one), "anomaly_map", "ground_truth"; each an (H, W) array, the axial slice
    to show. Returns the Figure with len(rows) x 4 axes.
    """
    if not rows:
        raise ValueError("qualitative_grid needs at least one row")
    fig, axes = plt.subplots(len(rows), len(GRID_COLUMNS),
                             figsize=(2.2 * len(GRID_COLUMNS), 2.2 * len(rows)),
                             squeeze=False)
    for i, row in enumerate(rows):
        shape = np.asarray(row["input"]).shape
        for j, key in enumerate(GRID_COLUMNS):
            ax = axes[i, j]
            img = row.get(key)
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            else:
                img = np.asarray(img, float)
                if img.shape != shape:
                    raise ValueError(f"row {i}: {key} has shape {img.shape}, "
                                     f"input has {shape}")
                # input and reconstruction share the [0, 1] scale so intensity shifts show
                scale = {} if key == "anomaly_map" else {"vmin": 0.0, "vmax": 1.0}
                ax.imshow(img.T, cmap=cmap_map if key == "anomaly_map" else "gray",
                          origin="lower", **scale)
            if i == 0:
                ax.set_title(key.replace("_", " "))
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i])
    fig.tight_layout()
    return fig
