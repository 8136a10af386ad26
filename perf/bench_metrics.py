"""Speed of the benchmark's scoring path against the obvious baseline, at paper scale
(the numbers quoted in README.md and docs/protocol.md; the pytest-benchmark suite in
perf/test_metrics.py runs the same comparison on 20 volumes).

Workload and baseline: perf/workload.py (``--volumes`` synthetic BraTS-sized volumes,
default 200; scikit-learn per volume + a 100-threshold pooled Dice sweep).
Ours: benchmark.metrics.dataset_ranking_metrics: per volume AUPRC, AUROC and best Dice
from one sort each, and from the same sorted copies the pooled AUPRC, AUROC and the
EXACT pooled best Dice (the pool is never concatenated or sorted).
Both are timed in this one process; the script checks the numbers agree (per-volume
AUPRC/AUROC to 1e-9, our exact pooled best Dice >= the 100-threshold sweep's and equal to
the Dice recomputed from its threshold) and measures our peak extra memory with
tracemalloc as a multiple of the pooled score array. A second section times the 5x5x5
median filter, scipy against benchmark.postprocess's exact fast path.

    OMP_NUM_THREADS=1 python -m perf.bench_metrics --volumes 200 --region all
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy import ndimage as ndi

from benchmark import metrics as M
from benchmark.postprocess import median_filter
from perf.workload import SHAPE, agreement, make_volumes, ours, region_lists, sklearn_baseline


def timed(fn, *args):
    """(result, CPU seconds of this process, wall seconds). The CPU time is the fair
    measure on a shared machine; the wall time is printed as well."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - c0, time.perf_counter() - w0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volumes", type=int, default=200)
    ap.add_argument("--region", choices=["all", "brain"], default="all")
    ap.add_argument("--median-volumes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    vols = make_volumes(a.volumes, a.seed)
    frac = np.array([y.sum() / b.sum() for _, y, b in vols])
    print(f"workload: {a.volumes} volumes {SHAPE}, region={a.region}, lesion fraction of brain "
          f"median {np.median(frac):.3%} (min {frac.min():.3%}, max {frac.max():.3%})")

    base, t_base, w_base = timed(sklearn_baseline, vols, a.region)
    mine, t_ours, w_ours = timed(ours, vols, a.region)
    agree = agreement(vols, a.region, base, mine)
    print(f"per-volume max |diff| vs sklearn: AUPRC {agree['auprc_max_diff']:.1e}, "
          f"AUROC {agree['auroc_max_diff']:.1e}")
    print(f"pooled best Dice: exact {agree['best_dice']:.6f} (threshold "
          f"{mine[1]['best_threshold']:.6g}, recomputed {agree['best_dice_recomputed']:.6f}); "
          f"100-threshold sweep {agree['sweep_dice']:.6f}; pooled AUPRC {mine[1]['auprc']:.6f}")
    ok = agree["auprc_max_diff"] < 1e-9 and agree["auroc_max_diff"] < 1e-9 \
        and agree["best_dice"] >= agree["sweep_dice"] \
        and abs(agree["best_dice_recomputed"] - agree["best_dice"]) < 1e-12
    print(f"numbers agree: {ok}")
    print(f"CPU time: baseline {t_base:.2f} s, ours {t_ours:.2f} s -> speed-up "
          f"{t_base / t_ours:.1f}x (wall: {w_base:.2f} s vs {w_ours:.2f} s -> {w_base / w_ours:.1f}x)")

    s_list, y_list = region_lists(vols, a.region)  # made before tracing: the caller's copies
    pooled_bytes = sum(s.nbytes for s in s_list)
    tracemalloc.start()
    M.dataset_ranking_metrics(s_list, y_list)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del s_list, y_list
    print(f"memory: peak allocation inside dataset_ranking_metrics {peak / 2**20:.0f} MiB = "
          f"{peak / pooled_bytes:.2f} x the scored voxels' scores ({pooled_bytes / 2**20:.0f} MiB)")

    k = min(a.median_volumes, len(vols))
    if k == 0:
        return
    maps = [s for s, _, _ in vols[:k]]
    ref, t_scipy, _ = timed(lambda: [ndi.median_filter(m, size=5, mode="reflect") for m in maps])
    fast, t_fast, _ = timed(lambda: [median_filter(m, 5) for m in maps])
    same = all(np.array_equal(r, f) for r, f in zip(ref, fast))
    print(f"median 5x5x5 on {k} masked maps (CPU): scipy {t_scipy / k * 1e3:.0f} ms/volume, fast "
          f"{t_fast / k * 1e3:.0f} ms/volume -> {t_scipy / t_fast:.1f}x, bitwise equal: {same}")


if __name__ == "__main__":
    main()
