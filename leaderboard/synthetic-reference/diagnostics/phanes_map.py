"""Where PHANES' T2 tumour detection is lost: its mask, its inpainting, or its map?

    python leaderboard/synthetic-reference/diagnostics/phanes_map.py [t2|t1] [VOLUMES] [RUN]

Loads a trained PHANES (fold 0 of RUN, default the reference board's baselines lane) and
scores the first VOLUMES (default 4) test volumes of each unhealthy cohort. Per cohort it
prints, as means over the volumes:
- mask_brain: fraction of brain voxels in PHANES' test mask (the likely-anomaly map from
  the coarse VAE reconstruction, thresholded as the method is configured);
- mask_lesion: fraction of lesion voxels in that mask (what the inpainting can correct:
  outside the mask y = x, so PHANES' map is 0 there);
- AUPRC in % (the protocol's post-processing) of: phanes_map (the method's own),
  y_residual = |x - y|, coarse_map (the likely-anomaly map the mask is cut from),
  coarse_residual = |x - x_hat| and coarse_pos_residual = max(x - x_hat, 0) (x_hat the
  coarse VAE reconstruction).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from _common import BASELINES, cohorts, report

from benchmark.experiments.common import slices_of, to_volume, volume_auprc
from methods.ra.anomaly_map import phanes_coarse_map


def main(sequence: str = "t2", volumes: int = 4, run: Path = BASELINES) -> None:
    for method, dataset, vols in cohorts("phanes", sequence, volumes, run):
        scores: dict[str, list[float]] = {}
        for volume in vols:
            x, idx = slices_of(volume)
            with torch.no_grad():
                out = method.anomaly(x)
                coarse = method.vae(x, deterministic=True)[0].clamp(0, 1)
                mask = method.likely_anomalies(x, coarse, method.hparams.mask_threshold_test)
            xc, y = x.clamp(0, 1), out.reconstruction
            brain, lesion = volume.mask[..., idx], volume.seg[..., idx] > 0
            m = to_volume(mask) > 0
            scores.setdefault("mask_brain", []).append(m[brain].mean())
            scores.setdefault("mask_lesion", []).append(m[lesion].mean() if lesion.any()
                                                        else np.nan)
            maps = {"phanes_map": out.anomaly_map, "y_residual": (xc - y).abs(),
                    "coarse_map": phanes_coarse_map(xc, coarse, method.saliency,
                                                    method.hparams.get("clahe", True)),
                    "coarse_residual": (xc - coarse).abs(),
                    "coarse_pos_residual": (xc - coarse).clamp(min=0)}
            for name, amap in maps.items():
                scores.setdefault(name, []).append(
                    100 * volume_auprc(to_volume(amap), volume, idx))
        report("phanes", sequence, dataset, vols, scores)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "t2",
         int(sys.argv[2]) if len(sys.argv) > 2 else 4,
         Path(sys.argv[3]) if len(sys.argv) > 3 else BASELINES)
