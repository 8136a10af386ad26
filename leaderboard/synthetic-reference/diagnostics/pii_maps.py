"""Why PII's score swings between folds: what its map says inside and outside the lesions.

    python leaderboard/synthetic-reference/diagnostics/pii_maps.py [FOLDS...]

Reads the board's cached PII test maps (`maps/<set>_test.npz`, the raw map before the
protocol's post-processing; kept on the machine that ran the part, not in git) and the
test volumes' lesion and brain masks, and prints per fold and cohort the map's mean and
median inside the lesions and in the healthy brain. PII's map is the pasted-patch blending
factor it predicts; it was trained on labels alpha ~ U(0.05, 0.95) inside pasted patches.
"""
from __future__ import annotations

import sys

import numpy as np
from _common import BASELINES

from benchmark.experiments.common import evaluation_sets, test_volumes
from benchmark.rundir import RunDir

COHORTS = {"t2": ("Brats21", "MSLUB"), "t1": ("ATLAS_v2", "WMH")}


def main(folds: list[int]) -> None:
    for sequence, cohorts in COHORTS.items():
        for fold in folds:
            part = RunDir(BASELINES).part("pii", sequence, fold)
            if not (part.path / "maps").is_dir():
                print(f"pii {sequence} fold {fold}: no cached maps here, skipped")
                continue
            sets = evaluation_sets(BASELINES, part, None)
            for dataset in cohorts:
                cached = np.load(part.path / "maps" / f"{dataset}_test.npz")
                volumes = {v.name: v for v in test_volumes(sets, dataset)}
                lesion, healthy = [], []
                for name, amap in zip(cached["names"], cached["anomaly"]):
                    v = volumes[str(name)]
                    brain, seg = v.mask.astype(bool), v.seg.astype(bool)
                    lesion.append(amap[brain & seg])
                    healthy.append(amap[brain & ~seg])
                lesion, healthy = np.concatenate(lesion), np.concatenate(healthy)
                print(f"pii {sequence} fold {fold} {dataset}: lesion mean {lesion.mean():.4f} "
                      f"(median {np.median(lesion):.4f}), healthy brain mean {healthy.mean():.4f} "
                      f"(median {np.median(healthy):.4f}, 99th percentile "
                      f"{np.quantile(healthy, 0.99):.4f}), lesion / healthy "
                      f"{lesion.mean() / healthy.mean():.2f}")


if __name__ == "__main__":
    main([int(f) for f in sys.argv[1:]] or [0, 1, 2])
