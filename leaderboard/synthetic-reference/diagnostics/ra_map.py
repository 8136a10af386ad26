"""Why RA is at chance on the reference board's T2 tumours: its map, or its reconstructions?

    python leaderboard/synthetic-reference/diagnostics/ra_map.py [t2|t1] [VOLUMES]

Loads the board's trained RA (fold 0) and scores the first VOLUMES (default 4) test volumes
of each unhealthy cohort with RA's own map and with simpler maps of the same
reconstruction, each through the protocol's post-processing; prints mean per-volume AUPRC
in %. Maps: ra_map = |CLAHE(x_hat) - CLAHE(x)| x S(x, x_hat) x S(CLAHE x_hat, CLAHE x)
(S = 1 - SSIM here: LPIPS cannot load offline), abs_residual = |x - x_hat|,
pos_residual = max(x - x_hat, 0), clahe_residual = |CLAHE(x_hat) - CLAHE(x)|,
residual_x_saliency = |x - x_hat| x S(x, x_hat).
"""
from __future__ import annotations

import sys

import torch
from _common import cohorts, report

from benchmark.experiments.common import slices_of, to_volume, volume_auprc
from methods.ra.anomaly_map import Saliency, clahe


def main(sequence: str = "t2", volumes: int = 4) -> None:
    saliency = Saliency("ssim")
    for method, dataset, vols in cohorts("ra", sequence, volumes):
        scores: dict[str, list[float]] = {}
        for volume in vols:
            x, idx = slices_of(volume)
            with torch.no_grad():
                out = method.anomaly(x)
            xc, rec = x.clamp(0, 1), out.reconstruction.clamp(0, 1)
            residual = (xc - rec).abs()
            maps = {"ra_map": out.anomaly_map, "abs_residual": residual,
                    "pos_residual": (xc - rec).clamp(min=0),
                    "clahe_residual": (clahe(rec) - clahe(xc)).abs(),
                    "residual_x_saliency": residual * saliency(xc, rec)}
            for name, amap in maps.items():
                scores.setdefault(name, []).append(
                    100 * volume_auprc(to_volume(amap), volume, idx))
        report("ra", sequence, dataset, vols, scores)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "t2", int(sys.argv[2]) if len(sys.argv) > 2 else 4)
