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


# (metric, level, threshold source, axis label) of the stratified panels
STRATA_PANELS = (("auprc", "volume", "any", "AUPRC (mean over volumes)"),
                 ("dice", "volume", "oracle", "Dice at the oracle threshold"),
                 ("detection_rate_pooled", "dataset", "oracle",
                  "lesions detected (oracle threshold)"))


def _stratum_ticks(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Strata in their order and tick labels that say what each holds."""
    s = rows.drop_duplicates("stratum").sort_values("stratum_index")
    ticks = []
    for r in s.itertuples(index=False):
        size = f"\n{int(r.stratum_low)}–{int(r.stratum_high)} vox" \
            if r.stratify_by == "lesion_size" else ""
        ticks.append(f"{r.stratum}{size}\n(n={int(r.stratum_volumes)})")
    return list(s["stratum"]), ticks


def _panel_source(rows: pd.DataFrame, panel: tuple) -> tuple | None:
    """The panel if its rows exist; a threshold-independent metric ("any") scored under
    a single threshold source keeps that source's name."""
    metric, level, source, label = panel
    sel = rows[(rows["metric"] == metric) & (rows["level"] == level)]
    if sel.empty:
        return None
    if source in set(sel["threshold_source"]):
        return panel
    return (metric, level, min(sel["threshold_source"]), label) if source == "any" \
        else None


def stratified_lines(strat: pd.DataFrame, dataset: str, stratify_by: str = "lesion_size",
                     panels=STRATA_PANELS):
    """A metric per stratum, one line per entry (lesion size: metric vs lesion size).

    strat: stratified.csv rows (benchmark.leaderboard.strata); the mean over folds of
    each entry in each stratum; one panel per (metric, level, threshold source) present.
    """
    rows = strat[(strat["dataset"] == dataset) & (strat["stratify_by"] == stratify_by)]
    panels = [p for p in (_panel_source(rows, p) for p in panels) if p is not None]
    if rows.empty or not panels:
        raise ValueError(f"no {stratify_by} strata for dataset {dataset!r}")
    order, ticks = _stratum_ticks(rows)
    entries = sorted(rows["entry"].unique())
    colours = dict(zip(entries, sns.color_palette("tab20", len(entries))))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 + 3.2 * len(panels), 3.6),
                             squeeze=False)
    for ax, (metric, level, source, label) in zip(axes[0], panels):
        sel = rows[(rows["metric"] == metric) & (rows["level"] == level)
                   & (rows["threshold_source"] == source)]
        for entry in entries:
            means = sel[sel["entry"] == entry].set_index("stratum")["mean"].reindex(order)
            ax.plot(range(len(order)), means.to_numpy(float), marker="o", label=entry,
                    color=colours[entry], ls="-" if stratify_by == "lesion_size" else ":")
        ax.set_xticks(range(len(order)), ticks, fontsize="small")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    axes[0][-1].legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    by = "lesion size" if stratify_by == "lesion_size" else stratify_by
    fig.suptitle(f"{dataset}: by {by} (mean over folds)")
    fig.tight_layout()
    return fig


def detection_by_size(strat: pd.DataFrame, dataset: str, threshold_source: str = "oracle"):
    """Share of lesions detected per lesion-size bin, one bar per entry."""
    rows = strat[(strat["dataset"] == dataset) & (strat["stratify_by"] == "lesion_size")
                 & (strat["metric"] == "detection_rate_pooled")
                 & (strat["threshold_source"] == threshold_source)]
    if rows.empty:
        raise ValueError(f"no pooled detection rate by lesion size for {dataset!r}")
    order, ticks = _stratum_ticks(rows)
    entries = sorted(rows["entry"].unique())
    fig, ax = plt.subplots(figsize=(max(5.0, 2 + 0.25 * len(entries) * len(order)), 3.6))
    sns.barplot(data=rows, x="stratum", y="mean", hue="entry", order=order,
                hue_order=entries, palette="tab20", ax=ax)
    ax.set_xticks(range(len(order)), ticks, fontsize="small")
    ax.set_xlabel("")
    ax.set_ylabel(f"lesions detected ({threshold_source} threshold)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_title(f"{dataset}: detection rate per lesion-size bin")
    fig.tight_layout()
    return fig
