"""Stratified results (benchmark/leaderboard/strata.py) on planted lesions of known size.

Twelve volumes, one spherical lesion each: six small (radius ~2 voxels, 27-33 voxels)
and six large (radius ~5, 461-619 voxels), half of each at site A, half at site B.
`large_only` predicts exactly the lesions of >= 100 voxels, `finds_all` every lesion.
Known answers: by lesion size, `large_only` detects 1.0 of the large bin's lesions and
0.0 of the small bin's; by site, half of each site's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark import metrics
from benchmark.leaderboard import build_leaderboard
from benchmark.leaderboard.significance import SignificanceSettings
from benchmark.leaderboard.strata import StrataSettings, size_bins
from benchmark.postprocess import PostProcess

RADII = [1.8, 1.9, 2.0, 2.05, 2.1, 2.2, 4.8, 4.9, 5.0, 5.1, 5.2, 5.3]
SHAPE = (24, 24, 24)


def sphere(radius: float) -> np.ndarray:
    idx = np.indices(SHAPE) - np.array(SHAPE)[:, None, None, None] // 2
    return np.sqrt((idx ** 2).sum(0)) < radius


def planted_run(path, folds=(0, 1)):
    """per_volume.csv of two methods scored with the benchmark's own functions."""
    pp = PostProcess.from_string("cc7_26")
    rows = []
    for v, r in enumerate(RADII):
        seg = sphere(r)
        maps = {"finds_all": seg.astype(np.float32),
                "large_only": seg.astype(np.float32) * (seg.sum() >= 100)}
        for method, amap in maps.items():
            pred = pp.binarize(amap, 0.5)
            found = metrics.lesion_detection(pred, seg)
            for fold in folds:
                rows.append({"method": method, "fold": fold, "dataset": "Planted",
                             "sequence": "t2", "volume": f"v{v:02d}", "site": "AB"[v % 2],
                             "threshold_source": "oracle", "threshold": 0.5,
                             "auprc": metrics.auprc(amap, seg) if amap.any() else 0.0,
                             "dice": metrics.dice(pred, seg),
                             "lesion_voxels": int(seg.sum()), "n_lesions": found.n_lesions,
                             "lesions_detected": found.detected,
                             "detection_rate": found.rate})
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "per_volume.csv", index=False)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    run = planted_run(root / "run")
    res = build_leaderboard([run], root / "out", SignificanceSettings(unit="volume",
                                                                      rounds=300, seed=1),
                            strata=StrataSettings(size_bins=3, min_volumes=5))
    return root / "out", res


def pick(df, **kw):
    for k, v in kw.items():
        df = df[df[k] == v]
    return df


def test_detection_rate_is_one_in_the_large_bin_and_zero_in_the_small(planted):
    out, _ = planted
    strat = pd.read_csv(out / "stratified.csv")
    det = pick(strat, metric="detection_rate_pooled", stratify_by="lesion_size")
    rate = det.set_index(["entry", "stratum"])["mean"]
    assert rate[("large_only", "large")] == 1.0 and rate[("large_only", "small")] == 0.0
    assert rate[("finds_all", "large")] == 1.0 and rate[("finds_all", "small")] == 1.0
    # 12 volumes, at least 5 per bin: two bins (not three), exactly the planted sizes
    sizes = [int(sphere(r).sum()) for r in RADII]
    bins = det.drop_duplicates("stratum").set_index("stratum")
    assert list(bins.sort_values("stratum_index").index) == ["small", "large"]
    assert (bins.loc["small", "stratum_low"], bins.loc["small", "stratum_high"]) == \
        (min(sizes[:6]), max(sizes[:6]))
    assert (bins.loc["large", "stratum_low"], bins.loc["large", "stratum_high"]) == \
        (min(sizes[6:]), max(sizes[6:]))
    assert set(bins["stratum_volumes"]) == {6}
    # two folds of the same values: mean over folds, std 0, n_volumes 2 x 6
    row = pick(det, entry="large_only", stratum="large").iloc[0]
    assert (row["n_folds"], row["std"], row["n_volumes"]) == (2, 0.0, 12)
    per_volume = pick(strat, metric="detection_rate", entry="large_only",
                      stratify_by="lesion_size").set_index("stratum")["mean"]
    assert per_volume["small"] == 0.0 and per_volume["large"] == 1.0


def test_site_strata_and_their_tests(planted):
    out, res = planted
    strat = pd.read_csv(out / "stratified.csv")
    site = pick(strat, metric="detection_rate_pooled", stratify_by="site", entry="large_only")
    assert site.set_index("stratum")["mean"].to_dict() == {"A": 0.5, "B": 0.5}
    sig = pd.read_csv(out / "stratified_significance.csv", keep_default_na=False)
    small = pick(sig, stratum="small", metric="detection_rate", threshold_source="oracle")
    assert len(small) == 1 and small["better"].iloc[0] == "finds_all"
    assert small["unit"].iloc[0] == "volume" and small["n_a"].iloc[0] == 12
    large = pick(sig, stratum="large", metric="detection_rate")
    assert large["better"].iloc[0] == "" and float(large["p_value"].iloc[0]) == 1.0
    md = (out / "stratified.md").read_text()
    assert "| Planted (t2) | lesion_size | small |" in md and "| site | A |" in md
    names = {p.name for p in res["plots"]}
    assert {"strata_Planted_lesion_size.png", "strata_Planted_site.png",
            "detection_Planted.png"} <= names
    for name in names:
        assert (out / "plots" / name).stat().st_size > 0


def test_size_bins_keep_ties_together_and_respect_the_minimum():
    # 10 volumes, 3 bins of >= 3: quantile cuts at ranks 3.3 and 6.7
    got = size_bins(pd.Series(range(1, 11)), 3, 3)
    assert [list(b) for b in got] == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]]
    # a tie straddling the median stays in one bin
    got = size_bins(pd.Series([1, 2, 3, 5, 5, 5, 5, 8, 9, 10]), 2, 3)
    assert [list(b) for b in got] == [[1, 2, 3, 5], [8, 9, 10]]
    # cuts at ranks 3.3 and 6.7 leave [2] alone: merged into its smaller neighbour
    got = size_bins(pd.Series([1, 1, 1, 1, 1, 1, 2, 3, 4, 5]), 3, 2)
    assert [list(b) for b in got] == [[1], [2, 3, 4, 5]]
    # ties that leave no two bins of 3
    assert size_bins(pd.Series([1, 2, 5, 5, 5, 5, 5, 5, 9, 10]), 2, 3) == []
    assert size_bins(pd.Series(range(9)), 3, 5) == []  # not two bins of 5


def test_too_few_volumes_gives_no_strata_and_says_why(tmp_path):
    run = planted_run(tmp_path / "run", folds=(0,))
    res = build_leaderboard([run], tmp_path / "out", strata=StrataSettings(min_volumes=7),
                            plots=False)
    assert res["strata"].results.empty
    md = (tmp_path / "out" / "stratified.md").read_text()
    assert "not binned by lesion size" in md and "not split by site" in md
    assert pd.read_csv(tmp_path / "out" / "stratified.csv").empty
    with pytest.raises(ValueError, match="size_bins"):
        StrataSettings(size_bins=1)
