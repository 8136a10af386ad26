"""Scoring speed against the baselines a user would otherwise write: scikit-learn for the
ranking metrics, scipy for the post-processing. Every benchmark of ours also asserts that
its numbers equal the baseline's, and records the speed-up (printed at the end, saved in
the results' extra_info).

Workload (perf/workload.py): 20 synthetic BraTS-sized volumes, 96 x 96 x 50 (a tenth of
perf/bench_metrics.py's paper-scale 200)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from benchmark.metrics import binarize
from benchmark.postprocess import PostProcess, median_filter, remove_small_components
from perf.conftest import median_seconds
from perf.workload import agreement, make_volumes, ours, sklearn_baseline

VOLUMES = 20
MEDIAN_VOLUMES = 4

_baseline: dict[str, tuple] = {}  # what the baseline benchmarks found, for ours to compare


@pytest.fixture(scope="module")
def volumes():
    return make_volumes(VOLUMES, seed=0)


@pytest.mark.parametrize("region", ["all", "brain"])
def test_ranking_metrics_sklearn(benchmark, volumes, region):
    benchmark.group = f"ranking metrics, {VOLUMES} volumes, {region} voxels"
    result = benchmark.pedantic(sklearn_baseline, args=(volumes, region), rounds=3)
    _baseline[region] = (result, median_seconds(benchmark))
    assert len(result[0]) == VOLUMES


@pytest.mark.parametrize("region", ["all", "brain"])
def test_ranking_metrics_ours(benchmark, volumes, region, record_speedup):
    """Per-volume AUPRC/AUROC/best Dice and the pooled metrics with the exact best Dice."""
    benchmark.group = f"ranking metrics, {VOLUMES} volumes, {region} voxels"
    mine = benchmark.pedantic(ours, args=(volumes, region), rounds=5)
    base, base_seconds = _baseline.get(region) or (sklearn_baseline(volumes, region), None)
    agree = agreement(volumes, region, base, mine)
    assert agree["auprc_max_diff"] < 1e-9 and agree["auroc_max_diff"] < 1e-9
    # exact search >= the 100-threshold sweep, and its threshold reproduces its Dice
    assert agree["best_dice"] >= agree["sweep_dice"]
    assert agree["best_dice_recomputed"] == pytest.approx(agree["best_dice"], abs=1e-12)
    ratio = record_speedup(benchmark, base_seconds)
    assert ratio is None or ratio > 1, f"slower than scikit-learn: {ratio:.2f}x"


@pytest.fixture(scope="module")
def maps(volumes):
    return [(s, b) for s, _, b in volumes[:MEDIAN_VOLUMES]]


@pytest.fixture(scope="module")
def scipy_medians(maps):
    return [ndi.median_filter(s, size=5, mode="reflect") for s, _ in maps]


_scipy_seconds: dict[str, float | None] = {}


def test_median_filter_scipy(benchmark, maps):
    benchmark.group = f"median filter 5x5x5, {MEDIAN_VOLUMES} masked maps"
    benchmark.pedantic(lambda: [ndi.median_filter(s, size=5, mode="reflect") for s, _ in maps],
                       rounds=3)
    _scipy_seconds["median"] = median_seconds(benchmark)


def test_median_filter_fast(benchmark, maps, scipy_medians, record_speedup):
    benchmark.group = f"median filter 5x5x5, {MEDIAN_VOLUMES} masked maps"
    out = benchmark.pedantic(lambda: [median_filter(s, 5) for s, _ in maps], rounds=3)
    assert all(np.array_equal(a, b) for a, b in zip(out, scipy_medians))  # bitwise
    ratio = record_speedup(benchmark, _scipy_seconds.get("median"))
    assert ratio is None or ratio > 1, f"slower than scipy: {ratio:.2f}x"


def postprocess(maps, backend: str) -> list[np.ndarray]:
    """The default chain on each map: eroded mask, median 5, binarise at 0.1, CC < 7 out."""
    pp = PostProcess()
    return [remove_small_components(binarize(pp.apply(s, b, median_backend=backend), 0.1),
                                    pp.cc_min_size, pp.cc_connectivity) for s, b in maps]


@pytest.mark.parametrize("backend", ["scipy", "fast"])
def test_postprocess_chain(benchmark, maps, backend, record_speedup):
    """PostProcess() (erode3_2d+median5+cc7_26) per volume, median backend scipy vs fast."""
    benchmark.group = f"post-processing chain, {MEDIAN_VOLUMES} volumes"
    out = benchmark.pedantic(postprocess, args=(maps, backend), rounds=3)
    if backend == "scipy":
        _scipy_seconds["chain"] = median_seconds(benchmark)
        return
    reference = postprocess(maps, "scipy")
    assert all(np.array_equal(a, b) for a, b in zip(out, reference))
    assert sum(int(o.sum()) for o in out) > 0  # the threshold leaves lesions to compare
    record_speedup(benchmark, _scipy_seconds.get("chain"))
