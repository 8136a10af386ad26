"""AUPRC as a function of the test noise level t, and the ensemble (paper Fig. 6).

    python -m benchmark experiment noise-levels runs/<id> --methods ddpm,pddpm,cddpm

For every diffusion method of the run, every labelled test cohort and every t in --steps
(default 100, 200, ..., 900), each test volume is reconstructed in one step from t with
fresh noise; the map |x - x_rec| is scored as ``benchmark.scoring`` scores it (eroded brain
mask, 3D median filter, voxel AUPRC inside the brain). "ens" is the average of the
reconstructions at 250, 500 and 750 (each with its own noise, as the paper's ENS).
Writes noise_levels.csv (method, dataset, t, auprc [mean over volumes], auprc_std,
l1_lesion and l1_healthy [pooled |x - x_rec| over lesion voxels and over healthy brain
voxels], l1_ratio [their ratio, paper Table 1], n_volumes) and
noise_levels.png (one panel per cohort) under <run>/experiments/noise-levels/.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from benchmark.experiments import common

ENSEMBLE = (250, 500, 750)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, "ddpm,pddpm,cddpm")
    parser.add_argument("--steps", default="100,200,300,400,500,600,700,800,900",
                        help="test noise levels t (1..T), comma-separated")


def _sweep(method, volumes, steps, stride) -> tuple[dict[str, list[float]], dict]:
    """{t or 'ens': [AUPRC per volume]} and {t or 'ens': pooled l1 in the lesions, in
    healthy brain and their ratio}; ENS reuses the sweep's 250/500/750 passes."""
    keys = [str(t) for t in steps] + ["ens"]
    scores: dict[str, list[float]] = {k: [] for k in keys}
    sums = {k: np.zeros(4) for k in keys}
    for vol in volumes:
        x, idx = common.slices_of(vol, stride)
        recs = {t: common.reconstruct(method, x, [t]) for t in sorted(set(steps) | set(ENSEMBLE))}
        recs = {str(t): recs[t] for t in steps} | {
            "ens": sum(recs[t] for t in ENSEMBLE) / len(ENSEMBLE)}
        for key in keys:
            err = common.to_volume((x - recs[key]).abs())
            scores[key].append(common.volume_auprc(err, vol, idx))
            sums[key] += common.l1_sums(err, vol.seg[..., idx], vol.mask[..., idx])
    return scores, {k: common.pooled_l1(v) for k, v in sums.items()}


def _plot(frame: pd.DataFrame, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted(frame["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        sub = frame[frame["dataset"] == dataset]
        for i, (method, rows) in enumerate(sub.groupby("method")):
            color = f"C{i}"
            line = rows[rows["t"] != "ens"]
            ax.plot(line["t"].astype(int), line["auprc"], "o-", color=color, label=method)
            ens = rows[rows["t"] == "ens"]["auprc"]
            if len(ens):
                ax.axhline(float(ens.iloc[0]), color=color, ls="--", label=f"{method}$^{{ens}}$")
        ax.set(title=dataset, xlabel="$t_{test}$", ylabel="AUPRC")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    common.save_figure(fig, path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    import torch

    torch.manual_seed(args.seed)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    parts = common.find_parts(args.run_dir, args.methods.split(","), args.sequence, args.fold)
    rows = []
    for name, part in parts.items():
        method = common.load_diffusion(part, common.device(args.device),
                                        args.trust_checkpoints)
        sets = common.evaluation_sets(args.run_dir, part, args.max_volumes)
        for dataset in sets:
            volumes = [v for v in common.test_volumes(sets, dataset) if v.seg is not None]
            if dataset == common.healthy_dataset() or not volumes:
                continue
            scores, l1 = _sweep(method, volumes, steps, args.slice_stride)
            for t, values in scores.items():
                arr = np.array(values, dtype=float)
                rows.append({"method": name, "sequence": part.sequence, "fold": part.fold,
                             "dataset": dataset, "t": t, "auprc": np.nanmean(arr),
                             "auprc_std": np.nanstd(arr), **l1[t],
                             "n_volumes": int(np.isfinite(arr).sum())})
            print(f"{name} {dataset}: done", flush=True)
    frame = pd.DataFrame(rows)
    out = common.out_dir(args, "noise-levels")
    common.save_table(frame, out / "noise_levels.csv")
    _plot(frame, out / "noise_levels.png")
    print(frame.pivot_table(index=["method", "dataset"], columns="t", values="auprc",
                            sort=False).round(3).to_string())
    print(f"\nwrote {out / 'noise_levels.csv'} and {out / 'noise_levels.png'}")
    return 0
