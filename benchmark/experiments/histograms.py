"""Input vs reconstruction intensity histograms and their divergence (paper Fig. 4).

    python -m benchmark experiment histograms runs/<id> --methods ddpm,cddpm

For each contrast level cl (default 0.3, 0.7, 1.0, 1.5, 2.0; the input is x**cl, paper
Sec. 4.5.2) the healthy IXI test volumes and the healthy tissue of an unhealthy cohort's
test volumes (brain mask minus the lesion; default the first cohort of the run) are
reconstructed by every method with the ensemble t in (250, 500, 750) as the paper does.
Histograms: 500 bins on [0, 1] over healthy brain voxels, counts / total / bin width.

Divergence: the paper's "KLD" formula is the difference of the two entropies
H(p_input) - H(p_rec), which is not a divergence (it can be negative and is zero for two
different distributions of equal entropy). Reported here, with the protocol's own
definitions (benchmark.metrics, the same as recon_quality.csv): ``kl`` = KL(p_input ||
p_rec) (metrics.kl_divergence: 0.5 pseudo-counts per bin, a true divergence, >= 0), and
``entropy_difference`` = the paper's formula (metrics.paper_entropy_difference).
Writes histograms.csv and histograms.png under <run>/experiments/histograms/.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from benchmark.experiments import common

BINS = 500


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, "ddpm,cddpm")
    parser.add_argument("--contrasts", default="0.3,0.7,1.0,1.5,2.0")
    parser.add_argument("--steps", default="250,500,750",
                        help="test t's averaged (the paper uses the ensemble for Fig. 4)")
    parser.add_argument("--cohort", default=None,
                        help="unhealthy cohort for the out-of-domain panel (default: first)")


def histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges): 500 bins on [0, 1], values clipped into the edge bins."""
    from benchmark import metrics

    return metrics.histogram_counts(values, bins=BINS, value_range=(0.0, 1.0))


def divergences(x: np.ndarray, r: np.ndarray) -> dict[str, float]:
    """KL(p_input || p_rec) and the paper's entropy difference, as benchmark.metrics
    defines them for recon_quality.csv."""
    from benchmark import metrics

    (c_in, edges), (c_rec, _) = histogram(x), histogram(r)
    p, q = metrics.density(c_in, edges), metrics.density(c_rec, edges)
    return {"kl": metrics.kl_divergence(p, q, edges, n_counts=int(c_in.sum())),
            "entropy_difference": metrics.paper_entropy_difference(p, q)}


def _collect(method, volumes, cl: float, steps, stride, healthy_only: bool):
    """Healthy brain voxels of the inputs x**cl and of their reconstructions."""
    inputs, recs = [], []
    for vol in volumes:
        x, idx = common.slices_of(vol, stride)
        x = x.clamp(0, 1) ** cl
        rec = common.reconstruct(method, x, steps)
        region = vol.mask[..., idx]
        if healthy_only and vol.seg is not None:
            region = region & ~vol.seg[..., idx]
        inputs.append(common.to_volume(x)[region])
        recs.append(common.to_volume(rec)[region])
    return np.concatenate(inputs), np.concatenate(recs)


def _plot(hists: dict, frame: pd.DataFrame, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(m, d) for m, d, _ in hists})
    contrasts = sorted({c for _, _, c in hists})
    fig, axes = plt.subplots(len(keys), len(contrasts), squeeze=False,
                             figsize=(2.6 * len(contrasts), 2.2 * len(keys)))
    centres = (np.arange(BINS) + 0.5) / BINS
    for r, (method, dataset) in enumerate(keys):
        for c, cl in enumerate(contrasts):
            ax = axes[r][c]
            p_in, p_rec = hists[(method, dataset, cl)]
            ax.plot(centres, p_in, lw=0.8, label="input")
            ax.plot(centres, p_rec, lw=0.8, label="reconstruction")
            kl = frame[(frame.method == method) & (frame.dataset == dataset)
                       & (frame.contrast == cl)]["kl"].iloc[0]
            ax.set_title(f"{method} {dataset} cl={cl}\nKL={kl:.3f}", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    common.save_figure(fig, path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    import torch

    from benchmark import metrics

    torch.manual_seed(args.seed)
    contrasts = [float(c) for c in args.contrasts.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    parts = common.find_parts(args.run_dir, args.methods.split(","), args.sequence, args.fold)
    rows, hists = [], {}
    for name, part in parts.items():
        method = common.load_diffusion(part, common.device(args.device),
                                        args.trust_checkpoints)
        sets = common.evaluation_sets(args.run_dir, part, args.max_volumes)
        unhealthy = [d for d in sets if d != common.healthy_dataset() and sets[d].get("test")]
        cohort = args.cohort or (unhealthy[0] if unhealthy else None)
        panels = [(common.healthy_dataset(), False)] + ([(cohort, True)] if cohort else [])
        for dataset, healthy_only in panels:
            volumes = common.test_volumes(sets, dataset)
            for cl in contrasts:
                x, r = _collect(method, volumes, cl, steps, args.slice_stride, healthy_only)
                hists[(name, dataset, cl)] = tuple(metrics.density(*histogram(v)) for v in (x, r))
                rows.append({"method": name, "sequence": part.sequence, "fold": part.fold,
                             "dataset": dataset, "region": "healthy brain", "contrast": cl,
                             **divergences(x, r), "l1": float(np.abs(x - r).mean()),
                             "n_voxels": int(x.size)})
            print(f"{name} {dataset}: done", flush=True)
    frame = pd.DataFrame(rows)
    out = common.out_dir(args, "histograms")
    common.save_table(frame, out / "histograms.csv")
    _plot(hists, frame, out / "histograms.png")
    table = frame.pivot_table(index=["dataset", "contrast"], columns="method", values="kl")
    if {"ddpm", "cddpm"} <= set(table.columns):
        table["ddpm/cddpm"] = table["ddpm"] / table["cddpm"]
    print(table.round(4).to_string())
    print(f"\nwrote {out / 'histograms.csv'} and {out / 'histograms.png'}")
    return 0
