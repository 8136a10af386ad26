"""The conditioning experiment (paper Fig. 3): how much of the input c carries.

    python -m benchmark experiment conditioning runs/<id>

On central axial slices of healthy IXI test volumes, at contrast levels cl (the input AND
the conditioning image are x**cl), the image the cDDPM encoder sees is cropped to 0, 50
and 100 % of the slice width (the rest set to 0; 0 % is an empty image, 100 % the input):
- t = 500: cDDPM reconstructions for each crop;
- t = 1000 (pure noise: x_T carries no information about x): cDDPM with the full
  conditioning image vs the unconditioned DDPM.
Quantitatively, the L1 error between reconstruction and input inside the brain is
reported over the whole brain and separately in the left half (covered by a 50 % crop)
and the right half (not covered): the paper's observation is that local intensity is
recovered only where the conditioning image covers it.
Writes conditioning.csv and conditioning.png under <run>/experiments/conditioning/.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benchmark.experiments import common

if TYPE_CHECKING:
    from torch import Tensor


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, "ddpm,cddpm")
    parser.add_argument("--contrasts", default="0.3,1.0,2.0")
    parser.add_argument("--crops", default="0,50,100", help="percent of the width kept")
    parser.add_argument("--slices", type=int, default=4, help="central slices per volume")


def crop_width(x: Tensor, percent: float) -> Tensor:
    """Keep the left ``percent`` % of the columns of (N, 1, H, W), zero the rest."""
    import torch

    keep = round(x.shape[-1] * percent / 100)
    out = torch.zeros_like(x)
    out[..., :keep] = x[..., :keep]
    return out


def _l1(rec: Tensor, x: Tensor, mask: Tensor) -> dict[str, float]:
    """Mean |rec - x| inside the brain: all, left half, right half."""
    err = (rec - x).abs()
    w = x.shape[-1] // 2
    halves = {"l1_brain": mask, "l1_left": mask.clone(), "l1_right": mask.clone()}
    halves["l1_left"][..., w:] = False
    halves["l1_right"][..., :w] = False
    return {k: float(err[m].mean()) if m.any() else float("nan") for k, m in halves.items()}


def _slices(sets, n_volumes: int, per_volume: int) -> tuple[Tensor, Tensor]:
    import torch

    xs, ms = [], []
    for vol in common.test_volumes(sets, common.healthy_dataset())[:n_volumes]:
        d = vol.image.shape[2]
        idx = np.linspace(d * 0.35, d * 0.65, per_volume).round().astype(int)
        xs.append(vol.slices()[idx])
        ms.append(torch.from_numpy(vol.mask[..., idx]).permute(2, 0, 1).unsqueeze(1))
    return torch.cat(xs), torch.cat(ms)


def _plot(images: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted({k[0] for k in images})
    cols = list(dict.fromkeys(k[1] for k in images))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.6 * len(cols), 1.7 * len(rows)),
                             squeeze=False)
    for r, cl in enumerate(rows):
        for c, label in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(images[(cl, label)].T, cmap="gray", vmin=0, vmax=1, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=6)
            if c == 0:
                ax.set_ylabel(f"cl={cl}", fontsize=7)
    fig.tight_layout()
    common.save_figure(fig, path, dpi=130)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    import torch

    torch.manual_seed(args.seed)
    contrasts = [float(c) for c in args.contrasts.split(",")]
    crops = [float(c) for c in args.crops.split(",")]
    parts = common.find_parts(args.run_dir, args.methods.split(","), args.sequence, args.fold)
    if "cddpm" not in parts:
        raise SystemExit("conditioning: the run has no trained cddpm")
    device = common.device(args.device)
    models = {name: common.load_diffusion(part, device, args.trust_checkpoints)
              for name, part in parts.items()}
    sets = common.evaluation_sets(args.run_dir, parts["cddpm"], args.max_volumes)
    x0, mask = _slices(sets, args.max_volumes, args.slices)
    rows, images = [], {}
    for cl in contrasts:
        x = x0.clamp(0, 1) ** cl
        images[(cl, "input")] = x[0, 0].numpy()
        runs = [("cddpm", 500, p) for p in crops] + [("cddpm", 1000, 100.0)]
        runs += [("ddpm", 1000, None)] if "ddpm" in models else []
        for name, t, crop in runs:
            cond_image = crop_width(x, crop) if crop is not None else None
            rec = common.reconstruct(models[name], x, [t], cond_image=cond_image)
            label = f"{name} t={t}" + (f" c={crop:g}%" if crop is not None else "")
            images[(cl, label)] = rec[0, 0].clamp(0, 1).numpy()
            rows.append({"method": name, "t": t, "crop_percent": crop, "contrast": cl,
                         **_l1(rec, x, mask), "n_slices": int(x.shape[0])})
    frame = pd.DataFrame(rows)
    out = common.out_dir(args, "conditioning")
    common.save_table(frame, out / "conditioning.csv")
    _plot(images, out / "conditioning.png")
    print(frame.round(4).to_string(index=False))
    print(f"\nwrote {out / 'conditioning.csv'} and {out / 'conditioning.png'}")
    return 0
