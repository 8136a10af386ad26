"""Learning curves and convergence of every trained part (issue 13; docs/convergence.md).

    python -m benchmark experiment learning-curves RUN [RUN ...] [--out DIR]

Reads the curves the harness recorded while training (``curves.csv``: ``run
--curve-every N`` / ``--curve-points K``, on by default in the reference profile) and
writes, per run (or to ``--out``):

- ``convergence.csv``: per (method, sequence, fold) and curve metric: the plateau (the best
  value of the 3-point running mean), the first step and training CPU-seconds at which the
  running mean reached 90 % of the way from its first value to the plateau, the last
  value, ``late_gain`` (the share of the rise gained in the last third of the curve's
  points) and ``converged`` (late_gain <= 5 %: training had stopped improving);
- ``convergence.md``: the same as a Markdown table per method and sequence (validation
  AUPRC and healthy SSIM; folds summarised: median steps/CPU-s, converged in every fold);
- ``learning_curves_<sequence>.png``: per method, validation AUPRC (mean over the
  unhealthy validation cohorts), healthy-validation SSIM and the losses against optimiser
  steps, one line per fold.

Only validation data is behind these numbers: the curves never read a test split.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.leaderboard.load import entry_names
from benchmark.rundir import RunDir

# metric -> True when higher is better
METRICS = {"val_auprc_mean": True, "val_ssim": True, "val_loss": False, "train_loss": False}
ID = ["method", "sequence", "fold"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default <first run>/experiments/learning-curves)")
    parser.add_argument("--fraction", type=float, default=0.9,
                        help="share of the rise to the plateau that counts as reached (0.9)")


def load_curves(run_dirs: list[Path]) -> pd.DataFrame:
    """Every part's curve, finished or still training (so a run can be watched)."""
    frames = []
    for run in map(RunDir, run_dirs):
        for part in run.parts(done=False):
            table = part.table("curves.csv")
            if table is not None:
                frames.append(table.assign(run_dir=str(run.path), finished=part.is_done()))
    if not frames:
        raise FileNotFoundError(f"no curves.csv in {[str(r) for r in run_dirs]}: train with "
                                "--curve-every N or --curve-points K (reference profile: on)")
    curves = pd.concat(frames, ignore_index=True)
    # variants of a method (other result tags, e.g. an ablation's run) are separate curves,
    # named as the leaderboard names its entries; a method with one variant keeps its name
    entries = entry_names(curves)
    variants = entries.groupby(curves["method"]).transform("nunique")
    curves["method"] = curves["method"].where(variants == 1, entries)
    return curves


def last_stage(curves: pd.DataFrame) -> pd.DataFrame:
    """The rows of each part's final training stage (the model that is evaluated)."""
    last = curves.groupby(ID)["step"].transform("max")
    final_stage = curves.loc[curves["step"] == last, ID + ["stage"]].drop_duplicates(ID)
    return curves.merge(final_stage, on=ID + ["stage"])


def convergence(points: pd.DataFrame, metric: str, higher: bool,
                fraction: float = 0.9) -> dict | None:
    """Plateau, steps/CPU-s to ``fraction`` of the rise, and whether it had converged, for
    one part's curve (rows sorted by step). None when the metric was not recorded."""
    if metric not in points or points[metric].notna().sum() < 2:
        return None
    p = points[points[metric].notna()].sort_values("step")
    smooth = p[metric].rolling(3, min_periods=1).mean().to_numpy()
    best = int(np.argmax(smooth) if higher else np.argmin(smooth))
    plateau, start = smooth[best], smooth[0]
    progress = smooth - start if higher else start - smooth  # >= 0 means better than start
    rise = plateau - start if higher else start - plateau
    reached = progress >= fraction * rise if rise > 0 else np.ones(len(p), bool)
    first = int(np.argmax(reached))
    # share of the rise gained in the last third of training: a curve still climbing
    # there had not converged
    late = round(2 * (len(p) - 1) / 3)
    late_gain = (progress[-1] - progress[late]) / rise if rise > 0 else 0.0
    return {"metric": metric, "first": float(p[metric].iloc[0]), "plateau": float(plateau),
            "last": float(p[metric].iloc[-1]),
            "steps_to_fraction": int(p["step"].iloc[first]),
            "cpu_seconds_to_fraction": float(p["train_cpu_seconds"].iloc[first]),
            "total_steps": int(p["step"].iloc[-1]),
            "total_cpu_seconds": float(p["train_cpu_seconds"].iloc[-1]),
            "late_gain": float(late_gain), "converged": bool(late_gain <= 0.05)}


def convergence_table(curves: pd.DataFrame, fraction: float = 0.9) -> pd.DataFrame:
    rows = []
    for key, part in last_stage(curves).groupby(ID, sort=True):
        for metric, higher in METRICS.items():
            found = convergence(part, metric, higher, fraction)
            if found is not None:
                done = bool(part["finished"].all()) if "finished" in part else True
                rows.append({**dict(zip(ID, key)), **found, "finished": done})
    return pd.DataFrame(rows)


def markdown_summary(table: pd.DataFrame, fraction: float = 0.9) -> str:
    """Per method and sequence, for validation AUPRC and SSIM: plateau (mean over folds),
    median steps and training CPU-s to ``fraction`` of the rise, steps trained, and
    whether every fold had converged."""
    pct = f"{fraction:.0%}"
    head = (f"| method | sequence | folds | metric | plateau | steps to {pct} | CPU-s to {pct} "
            "| steps trained | converged |\n|---|---|---:|---|---:|---:|---:|---:|---|\n")
    rows = []
    picked = table[table["metric"].isin(["val_auprc_mean", "val_ssim"])]
    for (method, sequence, metric), g in picked.groupby(["method", "sequence", "metric"]):
        conv = "yes" if g["converged"].all() else f"no ({(~g['converged']).sum()} of {len(g)})"
        if "finished" in g and not g["finished"].all():
            conv += ", unfinished"  # no done.json: training now, or stopped
        rows.append(f"| {method} | {sequence} | {len(g)} | {metric} | {g['plateau'].mean():.3f} "
                    f"| {g['steps_to_fraction'].median():.0f} "
                    f"| {g['cpu_seconds_to_fraction'].median():.0f} "
                    f"| {g['total_steps'].median():.0f} | {conv} |")
    return head + "\n".join(rows) + "\n"


def _plot(curves: pd.DataFrame, sequence: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = last_stage(curves)
    data = data[data["sequence"] == sequence]
    methods = sorted(data["method"].unique())
    shown = [m for m in METRICS if m in data and data[m].notna().any()]
    fig, axes = plt.subplots(len(methods), len(shown), squeeze=False,
                             figsize=(3.0 * len(shown), 1.9 * len(methods)))
    for r, method in enumerate(methods):
        for c, metric in enumerate(shown):
            ax = axes[r][c]
            for fold, g in data[data["method"] == method].groupby("fold"):
                g = g[g[metric].notna()].sort_values("step")
                ax.plot(g["step"], g[metric], "-o", ms=2, lw=1, label=f"fold {fold}")
            ax.set_title(f"{method}: {metric}", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
        axes[r][0].set_ylabel(method, fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("optimiser steps", fontsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    if not 0 < args.fraction < 1:
        raise ValueError(f"--fraction must be in (0, 1), got {args.fraction}")
    curves = load_curves(args.run_dirs)
    out = args.out or RunDir(args.run_dirs[0]).experiment_dir("learning-curves")
    out.mkdir(parents=True, exist_ok=True)
    table = convergence_table(curves, args.fraction)
    table.to_csv(out / "convergence.csv", index=False)
    for sequence in sorted(curves["sequence"].unique()):
        _plot(curves, sequence, out / f"learning_curves_{sequence}.png")
    (out / "convergence.md").write_text(markdown_summary(table, args.fraction))
    auprc = table[table["metric"] == "val_auprc_mean"]
    if not auprc.empty:
        print(auprc.groupby(["method", "sequence"])[
            ["plateau", "steps_to_fraction", "cpu_seconds_to_fraction", "total_steps",
             "converged"]].agg({"plateau": "mean", "steps_to_fraction": "median",
                                "cpu_seconds_to_fraction": "median", "total_steps": "median",
                                "converged": "all"}).round(3).to_string())
    print(f"\nwrote {out / 'convergence.csv'} and the learning_curves_*.png plots")
    return 0
