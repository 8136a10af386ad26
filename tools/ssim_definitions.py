"""How much the SSIM and l1 definitions move the numbers (docs/protocol.md, Sec. 5).

    python tools/ssim_definitions.py [--root DATA_ROOT] [--sigma 2] [--volumes 8]

For a stand-in reconstruction, the input blurred in-plane by a Gaussian of ``--sigma``
voxels and re-masked, on the healthy IXI T2 test volumes of fold 0 (default root: the
quick synthetic set, generated if missing), prints the mean over volumes of our SSIM
(2-D per axial slice, slices with brain) beside a 3-D whole-volume SSIM (MONAI, same
window), and our brain-only l1 beside the l1 over all voxels (``l1_all``, the authors').
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from monai.metrics import SSIMMetric
from scipy.ndimage import gaussian_filter

from benchmark import metrics
from benchmark.data import layout
from benchmark.data.loader import load_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--sigma", type=float, default=2.0)
    parser.add_argument("--volumes", type=int, default=8)
    args = parser.parse_args()
    if args.root is None:
        from benchmark.data.synth import ensure_synthetic

        args.root = ensure_synthetic(size="quick", progress=False)
    ssim3d = SSIMMetric(spatial_dims=3, data_range=1.0)
    rows = []
    for rec in layout.healthy_splits(args.root, "t2", 0)["test"][:args.volumes]:
        vol = load_volume(rec)
        x = vol.image
        rec_x = (gaussian_filter(x, (args.sigma, args.sigma, 0)) * vol.mask).astype(np.float32)
        whole = ssim3d(torch.from_numpy(rec_x)[None, None], torch.from_numpy(x)[None, None])
        rows.append((metrics.ssim(x, rec_x, vol.mask), float(whole.item()),
                     metrics.l1_error(x, rec_x, vol.mask), metrics.l1_error(x, rec_x),
                     float(vol.mask.mean())))
    ours, whole, l1, l1_all, brain = np.mean(rows, axis=0)
    print(f"{len(rows)} IXI T2 test volumes, in-plane blur sigma {args.sigma:g}, brain "
          f"{brain:.0%} of the grid: SSIM ours (2-D per slice) {ours:.3f}, 3-D whole volume "
          f"{whole:.3f}; l1 brain {l1:.3f}, all voxels {l1_all:.3f}")


if __name__ == "__main__":
    main()
