"""Speed of the benchmark's scoring path against the obvious baseline (issue 3, "Speed").

Workload: ``--volumes`` (default 200) synthetic BraTS-sized volumes of 96 x 96 x 50 with
an ellipsoid brain and 1-3 ellipsoid lesions covering 0.1-10 % of the brain (log-uniform),
anomaly maps in float32 with exact zeros outside the brain (ties, as in masked maps).

Baseline: scikit-learn average_precision_score + roc_auc_score per volume, plus a Dice
sweep over 100 evenly spaced thresholds on the pooled data.
Ours: benchmark.metrics.dataset_ranking_metrics: per volume AUPRC, AUROC and best Dice
from one sort each, and from the same sorted copies the pooled AUPRC, AUROC and the
EXACT pooled best Dice (the pool is never concatenated or sorted).
Both are timed in this one process; the script checks the numbers agree (per-volume
AUPRC/AUROC to 1e-9, our exact pooled best Dice >= the 100-threshold sweep's and equal to
the Dice recomputed from its threshold) and measures our peak extra memory with
tracemalloc as a multiple of the pooled score array. A second section times the 5x5x5
median filter, scipy against benchmark.postprocess's exact fast path.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_metrics.py --volumes 200 --region all
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy import ndimage as ndi
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark import metrics as M
from benchmark.postprocess import erode_brain_mask, median_filter

SHAPE = (96, 96, 50)


def make_volume(rng: np.random.Generator):
    """(scores float32, labels bool, brain bool), each (96, 96, 50)."""
    g = np.indices(SHAPE, dtype=np.float32)
    c = np.array([48, 48, 25], np.float32)
    axes = np.array([40, 34, 30], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    brain = sum(((g[i] - c[i]) / axes[i]) ** 2 for i in range(3)) < 1
    n_brain = brain.sum()
    target = n_brain * np.exp(rng.uniform(np.log(0.001), np.log(0.10)))
    lesion = np.zeros(SHAPE, bool)
    n_les = int(rng.integers(1, 4))
    for _ in range(n_les):
        r = (3 * target / n_les / (4 * np.pi)) ** (1 / 3) * rng.uniform(0.7, 1.3, 3)
        centre = c + rng.uniform(-0.4, 0.4, 3) * axes
        lesion |= sum(((g[i] - centre[i]) / max(r[i], 0.8)) ** 2 for i in range(3)) < 1
    lesion &= brain
    noise = np.abs(rng.normal(0.0, 0.05, SHAPE)).astype(np.float32)
    signal = np.abs(rng.normal(0.12, 0.08, SHAPE)).astype(np.float32)
    scores = (noise + lesion * signal) * erode_brain_mask(brain, 3)
    return scores.astype(np.float32), lesion, brain


def baseline(vols, region):
    per_vol = []
    for s, y, b in vols:
        s, y = (s[b], y[b]) if region == "brain" else (s.ravel(), y.ravel())
        per_vol.append((average_precision_score(y, s), roc_auc_score(y, s)))
    s_all = np.concatenate([(s[b] if region == "brain" else s.ravel()) for s, _, b in vols])
    y_all = np.concatenate([(y[b] if region == "brain" else y.ravel()) for _, y, b in vols])
    n_y, best = np.count_nonzero(y_all), (0.0, None)
    for t in np.linspace(s_all.min(), s_all.max(), 100):
        p = s_all >= t
        d = 2 * np.count_nonzero(p & y_all) / (np.count_nonzero(p) + n_y)
        best = max(best, (d, t), key=lambda z: z[0])
    return per_vol, best


def region_lists(vols, region):
    """Scores and labels of the scored voxels, one array per volume (no pooled copy)."""
    if region == "brain":
        return [s[b] for s, _, b in vols], [y[b] for _, y, b in vols]
    return [s for s, _, _ in vols], [y for _, y, _ in vols]


def ours(vols, region):
    s_list, y_list = region_lists(vols, region)
    per_vol, pooled = M.dataset_ranking_metrics(s_list, y_list)
    return per_vol, pooled, sum(s.nbytes for s in s_list)


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

    rng = np.random.default_rng(a.seed)
    vols = [make_volume(rng) for _ in range(a.volumes)]
    frac = np.array([y.sum() / b.sum() for _, y, b in vols])
    print(f"workload: {a.volumes} volumes {SHAPE}, region={a.region}, lesion fraction of brain "
          f"median {np.median(frac):.3%} (min {frac.min():.3%}, max {frac.max():.3%})")

    (b_vol, b_best), t_base, w_base = timed(baseline, vols, a.region)
    (o_vol, o_pool, pooled_bytes), t_ours, w_ours = timed(ours, vols, a.region)

    d_ap = max(abs(b[0] - o["auprc"]) for b, o in zip(b_vol, o_vol))
    d_roc = max(abs(b[1] - o["auroc"]) for b, o in zip(b_vol, o_vol))
    s_all = np.concatenate([(s[b] if a.region == "brain" else s.ravel()) for s, _, b in vols])
    y_all = np.concatenate([(y[b] if a.region == "brain" else y.ravel()) for _, y, b in vols])
    recomputed = M.dice(M.binarize(s_all, o_pool["best_threshold"]), y_all)
    del s_all, y_all
    print(f"per-volume max |diff| vs sklearn: AUPRC {d_ap:.1e}, AUROC {d_roc:.1e}")
    print(f"pooled best Dice: exact {o_pool['best_dice']:.6f} (threshold "
          f"{o_pool['best_threshold']:.6g}, recomputed {recomputed:.6f}); "
          f"100-threshold sweep {b_best[0]:.6f}; pooled AUPRC {o_pool['auprc']:.6f}")
    ok = d_ap < 1e-9 and d_roc < 1e-9 and o_pool["best_dice"] >= b_best[0] \
        and abs(recomputed - o_pool["best_dice"]) < 1e-12
    print(f"numbers agree: {ok}")
    print(f"CPU time: baseline {t_base:.2f} s, ours {t_ours:.2f} s -> speed-up "
          f"{t_base / t_ours:.1f}x (wall: {w_base:.2f} s vs {w_ours:.2f} s -> {w_base / w_ours:.1f}x)")

    s_list, y_list = region_lists(vols, a.region)
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
