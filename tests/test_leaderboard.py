"""Known-answer tests of the leaderboard on fake run directories written here.

Per-volume score = base[volume] + FOLD_SHIFT[fold] + planted shift of the method:
on BraTS21 `good` is 0.2 above `base` (larger than the spread of FOLD_SHIFT, so every
fold of `good` beats every fold of `base`), `twin_a` and `twin_b` are identical; on
MSLUB `good` is only 0.01 above `base`, well inside the fold spread (best, not
significant).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_run_config
from mlxtend.evaluate import permutation_test

from benchmark.leaderboard import build_leaderboard, configure_parser, main
from benchmark.leaderboard.aggregate import LEADERBOARD_COLUMNS
from benchmark.leaderboard.load import load_runs
from benchmark.leaderboard.plots import qualitative_grid
from benchmark.leaderboard.significance import (
    SIGNIFICANCE_COLUMNS,
    SignificanceSettings,
    adjust,
    paired_permutation_replica,
    permutation_pvalue,
    unpaired_permutation_replica,
)
from benchmark.profiles import get_profile

FOLDS = 5
VOLUMES = [f"vol{i:02d}" for i in range(6)]
BASE = np.array([0.30, 0.42, 0.35, 0.51, 0.28, 0.46])
FOLD_SHIFT = np.array([0.00, 0.03, -0.02, 0.05, -0.04])
SHIFT = {"BraTS21": {"good": 0.20, "base": 0.0, "twin_a": -0.05, "twin_b": -0.05},
         "MSLUB": {"good": 0.01, "base": 0.0, "twin_a": -0.10, "twin_b": -0.10}}
SEQ = {"BraTS21": "T2", "MSLUB": "T2"}
ROUNDS, SEED = 300, 7


def score(dataset, method, fold, v):
    return BASE[v] + FOLD_SHIFT[fold] + SHIFT[dataset][method]


def fold_mean(dataset, method, fold):
    return BASE.mean() + FOLD_SHIFT[fold] + SHIFT[dataset][method]


def write_run(path, methods, hardware="cpu-x86", protocol=1, folds=range(FOLDS),
              datasets=("BraTS21", "MSLUB"), noise=False):
    """A fake run directory following the results contract."""
    path.mkdir(parents=True)
    pv, pd_rows, rq, tm, nl = [], [], [], [], []
    for m in methods:
        for f in folds:
            for d in datasets:
                for src in ("oracle", "val"):
                    for v, vol in enumerate(VOLUMES):
                        s = score(d, m, f, v)
                        pv.append({"method": m, "fold": f, "dataset": d, "sequence": SEQ[d],
                                       "volume": vol, "threshold_source": src,
                                       "auprc": s, "auroc": 0.9, "threshold": 0.5,
                                       # >= 0 on every row: a Dice below 0 is refused
                                       "dice": s - (0.1 if src == "oracle" else 0.12),
                                       "lesion_voxels": 100 + v,
                                       "postprocess": "erode3d+median5+cc7", "auc_region": "brain",
                                       "protocol_version": protocol, "profile": "quick"})
                # metric names and threshold sources as benchmark/scoring.py writes them
                pd_rows.append({"method": m, "fold": f, "dataset": d, "sequence": SEQ[d],
                                    "threshold_source": "oracle", "metric": "dice_pooled",
                                    "value": fold_mean(d, m, f) - 0.05})
                pd_rows.append({"method": m, "fold": f, "dataset": d, "sequence": SEQ[d],
                                    "threshold_source": "none", "metric": "auprc_pooled",
                                    "value": fold_mean(d, m, f) + 0.05})
                # as scoring.py: the l1 ratio per volume in recon_quality.csv, pooled per
                # dataset in per_dataset.csv
                pd_rows.append({"method": m, "fold": f, "dataset": d, "sequence": SEQ[d],
                                    "threshold_source": "none", "metric": "l1_ratio_pooled",
                                    "value": 2 + fold_mean(d, m, f)})
                rq.extend({"method": m, "fold": f, "dataset": d, "sequence": SEQ[d], "volume": vol,
                               "l1": 0.03, "l1_ratio": 2 + score(d, m, f, v)}
                          for v, vol in enumerate(VOLUMES))
                if noise:
                    for t in (250, 500, 750, "ens"):
                        nl.append({"method": m, "fold": f, "dataset": d, "t": t,
                                       "auprc": fold_mean(d, m, f)})
            for v, vol in enumerate(VOLUMES):
                rq.append({"method": m, "fold": f, "dataset": "IXI", "sequence": "T2", "volume": vol,
                               "ssim": 0.9 + SHIFT["BraTS21"][m] / 10, "psnr": 30.0 + v,
                               "lpips": 0.001, "l1": 0.02 - SHIFT["BraTS21"][m] / 100})
            tm.append({"method": m, "fold": f, "device": "cpu", "hardware": hardware,
                           "n_params": 1000, "train_seconds_per_epoch": 2.0 + f,
                           "infer_seconds_per_volume": 0.5 if m == "good" else 0.25,
                           "slices_per_second": 100.0, "peak_memory_mb": 50.0})
    for name, rows in (("per_volume", pv), ("per_dataset", pd_rows),
                       ("recon_quality", rq), ("timings", tm), ("noise_levels", nl)):
        if rows:
            pd.DataFrame(rows).to_csv(path / f"{name}.csv", index=False)
    write_run_config(path, profile=get_profile("quick"))
    (path / "environment.json").write_text(json.dumps({"hardware": hardware}))
    return path


@pytest.fixture()
def two_machines(tmp_path):
    """Methods split over two run directories made on different hardware."""
    a = write_run(tmp_path / "machine_a", ["good", "base"], hardware="cpu-x86", noise=True)
    b = write_run(tmp_path / "machine_b", ["twin_a", "twin_b"], hardware="gpu-h100")
    return a, b


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One leaderboard over both machines, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("built")
    a = write_run(root / "machine_a", ["good", "base"], hardware="cpu-x86", noise=True)
    b = write_run(root / "machine_b", ["twin_a", "twin_b"], hardware="gpu-h100")
    result = build_leaderboard([a, b], root / "out", settings(), plots=False)
    return root / "out", result


def settings(**kw):
    return SignificanceSettings(rounds=ROUNDS, seed=SEED, **kw)


def select(df, **kw):
    for k, v in kw.items():
        df = df[df[k] == v]
    return df


def test_means_stds_and_fold_values(built):
    out, res = built
    board = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    assert list(board.columns) == LEADERBOARD_COLUMNS
    row = select(board, entry="good", dataset="BraTS21", metric="auprc", level="volume")
    # AUPRC repeats on every threshold-source row: one copy, threshold source "any"
    assert len(row) == 1 and row["threshold_source"].iloc[0] == "any"
    dice = select(board, entry="good", dataset="BraTS21", metric="dice", level="volume")
    assert sorted(dice["threshold_source"]) == ["oracle", "val"]
    assert float(select(dice, threshold_source="val")["mean"].iloc[0]) == pytest.approx(
        np.mean([fold_mean("BraTS21", "good", f) for f in range(FOLDS)]) - 0.12)
    expected = [fold_mean("BraTS21", "good", f) for f in range(FOLDS)]
    assert float(row["mean"].iloc[0]) == pytest.approx(np.mean(expected), abs=1e-12)
    assert float(row["std"].iloc[0]) == pytest.approx(np.std(expected, ddof=1), abs=1e-12)
    assert int(row["n_folds"].iloc[0]) == FOLDS
    assert int(row["n_volumes"].iloc[0]) == FOLDS * len(VOLUMES)
    parsed = [float(x.split(":")[1]) for x in row["fold_values"].iloc[0].split(";")]
    assert parsed == pytest.approx(expected, abs=1e-5)
    # pooled per-dataset metric flows through with its own level
    pooled = select(board, entry="base", dataset="MSLUB", metric="dice_pooled", level="dataset")
    assert float(pooled["mean"].iloc[0]) == pytest.approx(
        np.mean([fold_mean("MSLUB", "base", f) - 0.05 for f in range(FOLDS)]))
    # numeric columns that are not ids, tags or voxel counts are metrics
    assert {"auroc", "l1_ratio", "l1_ratio_pooled", "ssim"} <= set(board["metric"])
    assert not {"threshold", "protocol_version", "fold", "lesion_voxels"} & set(board["metric"])
    assert res["flags"] == []


def test_pvalues_equal_mlxtend_called_directly(built):
    out, _ = built
    sig = pd.read_csv(out / "significance.csv", keep_default_na=False)
    assert list(sig.columns) == SIGNIFICANCE_COLUMNS
    row = select(sig, dataset="BraTS21", metric="dice_pooled", entry_a="base", entry_b="good")
    x = [fold_mean("BraTS21", "base", f) - 0.05 for f in range(FOLDS)]
    y = [fold_mean("BraTS21", "good", f) - 0.05 for f in range(FOLDS)]
    p = permutation_test(x, y, method="approximate", num_rounds=ROUNDS, seed=SEED)
    assert float(row["p_value"].iloc[0]) == pytest.approx(p, abs=1e-15)
    assert p < 0.05 and row["better"].iloc[0] == "good" and row["engine"].iloc[0] == "mlxtend"
    assert row["unit"].iloc[0] == "fold" and row["paired"].iloc[0] in (False, "False")
    assert float(row["statistic"].iloc[0]) == pytest.approx(-0.2, abs=1e-12)
    twins = select(sig, dataset="BraTS21", metric="dice_pooled", entry_a="twin_a")
    twins = select(twins, entry_b="twin_b")
    assert float(twins["p_value"].iloc[0]) == 1.0  # identical scores
    assert twins["better"].iloc[0] == ""


def test_volume_unit_pairs_by_fold_and_volume(two_machines, tmp_path):
    # the replica engine here, mlxtend itself in `built`: both equal mlxtend called directly
    build_leaderboard(two_machines, tmp_path / "out", settings(unit="volume", engine="replica"),
                      test_metrics="all", plots=False)
    sig = pd.read_csv(tmp_path / "out" / "significance.csv", keep_default_na=False)
    row = select(sig, dataset="MSLUB", metric="auprc", level="volume",
                 entry_a="base", entry_b="good")
    order = [(f, v) for f in range(FOLDS) for v in range(len(VOLUMES))]
    x = [score("MSLUB", "base", f, v) for f, v in order]
    y = [score("MSLUB", "good", f, v) for f, v in order]
    p = permutation_test(x, y, method="approximate", num_rounds=ROUNDS, seed=SEED, paired=True)
    assert float(row["p_value"].iloc[0]) == pytest.approx(p, abs=1e-15)
    assert int(row["n_a"].iloc[0]) == FOLDS * len(VOLUMES) and row["unit"].iloc[0] == "volume"
    assert row["engine"].iloc[0] == "replica-of-mlxtend"
    # a constant paired shift of 0.01 is significant per volume, not per fold
    assert p < 0.05
    pooled = select(sig, dataset="MSLUB", metric="dice_pooled", entry_a="base", entry_b="good")
    assert pooled["unit"].iloc[0] == "fold"  # pooled metrics have no per-volume values
    assert float(pooled["p_value"].iloc[0]) > 0.05


@pytest.mark.parametrize("m,seed", [(5, 0), (7, 1), (40, 3), (101, 11)])
def test_vectorised_replicas_equal_mlxtend(m, seed):
    rng = np.random.default_rng(seed)
    x = rng.random(m)
    y = x + rng.normal(0.02, 0.1, m)
    for paired, replica in ((True, paired_permutation_replica),
                            (False, unpaired_permutation_replica)):
        p = permutation_test(x, y, method="approximate", num_rounds=400, seed=seed,
                             paired=paired)
        assert replica(x, y, 400, seed) == p
        assert replica(x, x.copy(), 50, seed) == 1.0
        assert permutation_pvalue(x, y, paired=paired, rounds=400, seed=seed,
                                  engine="mlxtend") == (p, "mlxtend")
        assert permutation_pvalue(x, y, paired=paired, rounds=400, seed=seed,
                                  engine="replica") == (p, "replica-of-mlxtend")
    z = rng.random(m + 3)  # unequal sizes, unpaired only
    assert unpaired_permutation_replica(x, z, 300, seed) == permutation_test(
        x, z, method="approximate", num_rounds=300, seed=seed)


def test_corrections():
    p = np.array([0.01, 0.04, 0.03])
    assert adjust(p, "none").tolist() == p.tolist()
    assert adjust(p, "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    with pytest.raises(ValueError, match="holm"):
        SignificanceSettings(correction="fdr")


def test_bold_and_asterisk_marks(built):
    out, res = built
    md = (out / "table2.md").read_text()
    good = next(line for line in md.splitlines() if line.startswith("| good |"))
    cells = [c.strip() for c in good.strip("|").split("|")][1:]
    # columns: BraTS21 [DICE], BraTS21 AUPRC, MSLUB [DICE], MSLUB AUPRC
    dice = 100 * np.mean([fold_mean("BraTS21", "good", f) - 0.05 for f in range(FOLDS)])
    sd = 100 * np.std([fold_mean("BraTS21", "good", f) - 0.05 for f in range(FOLDS)], ddof=1)
    assert cells[0] == f"**{dice:.2f} ± {sd:.2f}**\\*"
    assert cells[1].startswith("**") and cells[1].endswith("\\*")
    assert cells[2].startswith("**") and cells[2].endswith("**")  # best, not significant
    base = next(line for line in md.splitlines() if line.startswith("| base |"))
    assert "**" not in base and "\\*" not in base
    tex = (out / "table2.tex").read_text()
    assert f"\\textbf{{{dice:.2f} $\\pm$ {sd:.2f}}}$^{{*}}$" in tex
    assert "\\multicolumn{2}{c}{BraTS21 (T2)}" in tex
    t1 = (out / "table1.md").read_text()
    assert "IXI (T2) SSIM" in t1 and "MSLUB (T2) l1-ratio" in t1
    # unhealthy sets get the l1 ratio only; healthy-set columns only for the healthy set
    assert "MSLUB (T2) l1-error" not in t1 and "BraTS21 (T2) SSIM" not in t1
    ratio = next(c for c in res["table1"].columns if c.dataset == "BraTS21")
    assert ratio.group == ("BraTS21", "T2", "l1_ratio_pooled", "dataset", "none")
    assert res["table2"].columns[0].group == ("BraTS21", "T2", "dice_pooled", "dataset", "oracle")
    assert res["table2"].columns[1].group == ("BraTS21", "T2", "auprc_pooled", "dataset", "none")


def test_merge_two_machines_timings(built):
    out, _ = built
    t = pd.read_csv(out / "timings.csv")
    assert set(t["hardware"]) == {"cpu-x86", "gpu-h100"}
    assert t["mixed_hardware"].all()
    good = select(t, entry="good").iloc[0]
    assert good["train_seconds_per_epoch"] == 4.0  # median of 2..6 over folds
    assert good["infer_vs_fastest_same_hardware"] == 2.0  # vs base, same machine
    assert select(t, entry="twin_a")["infer_vs_fastest_same_hardware"].iloc[0] == 1.0
    md = (out / "timings.md").read_text()
    assert "#### Hardware: cpu-x86" in md and "#### Hardware: gpu-h100" in md


def test_flags_fewer_folds_missing_dataset_protocol(tmp_path):
    a = write_run(tmp_path / "a", ["good", "base"])
    b = write_run(tmp_path / "b", ["twin_a"], folds=range(3), datasets=("BraTS21",),
                  protocol=2)
    res = build_leaderboard([a, b], tmp_path / "out", settings(), plots=False)
    kinds = {(f.kind, f.entry, f.dataset) for f in res["flags"]}
    assert ("fewer_folds", "twin_a", "BraTS21") in kinds
    assert ("missing_dataset", "twin_a", None) in kinds
    assert any(k[0] == "mixed_protocol_version" for k in kinds)
    warnings = (tmp_path / "out" / "warnings.txt").read_text()
    assert "twin_a has 3 fold(s) on BraTS21, others have 5" in warnings
    assert "twin_a has no results on MSLUB" in warnings
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv", keep_default_na=False)
    flags = select(board, entry="twin_a", dataset="BraTS21")["flags"].iloc[0].split(";")
    assert {"fewer_folds", "missing_dataset", "mixed_protocol_version"} <= set(flags)
    md = (tmp_path / "out" / "table2.md").read_text()
    assert "| twin_a † |" in md and "| good † |" in md  # mixed protocol concerns all
    assert "twin_a: fewer_folds, missing_dataset, mixed_protocol_version" in md


def test_duplicates_flagged_and_conflicts_raise(tmp_path):
    a = write_run(tmp_path / "a", ["good", "base"])
    same = write_run(tmp_path / "same", ["good"])
    res = build_leaderboard([a, same], tmp_path / "out", settings(), plots=False)
    assert any(f.kind == "duplicate" and f.entry == "good" for f in res["flags"])
    board = res["leaderboard"]
    assert select(board, entry="good", metric="auprc", dataset="BraTS21",
                  threshold_source="any")["n_folds"].iloc[0] == FOLDS
    t = pd.read_csv(same / "timings.csv")  # re-measured: timings differ, not a conflict
    t["infer_seconds_per_volume"] *= 1.1
    t.to_csv(same / "timings.csv", index=False)
    assert any(f.kind == "duplicate_timing" for f in load_runs([a, same]).flags)
    other = write_run(tmp_path / "other", ["good"])
    pv = pd.read_csv(other / "per_volume.csv")
    pv.loc[0, "dice"] += 0.01
    pv.to_csv(other / "per_volume.csv", index=False)
    with pytest.raises(ValueError, match=r"conflicting.*[/\\]a and .*[/\\]other"):
        load_runs([a, other])


def test_healthy_set_of_both_sequences_is_not_a_conflict(tmp_path):
    # a run over T1 and T2 scores the same IXI volume names once per sequence
    run = write_run(tmp_path / "a", ["good", "base"])
    rq = pd.read_csv(run / "recon_quality.csv")
    t1 = rq[rq["dataset"] == "IXI"].assign(sequence="T1", ssim=lambda d: d["ssim"] - 0.5)
    pd.concat([rq, t1]).to_csv(run / "recon_quality.csv", index=False)
    # as scoring.py: the healthy set also has dataset-level rows (e.g. its false positives)
    pdset = pd.read_csv(run / "per_dataset.csv")
    ixi = pdset[pdset["metric"] == "auprc_pooled"].assign(dataset="IXI", sequence="T2",
                                                         metric="healthy_fpr", value=0.01)
    pd.concat([pdset, ixi]).to_csv(run / "per_dataset.csv", index=False)
    res = build_leaderboard([run], tmp_path / "out", settings(), plots=False)
    ssim = select(res["leaderboard"], entry="good", dataset="IXI", metric="ssim")
    ssim = ssim.set_index("sequence")
    assert ssim.loc["T2", "mean"] == pytest.approx(0.92)
    assert ssim.loc["T1", "mean"] == pytest.approx(0.42)
    headers = [f"{c.dataset} ({c.sequence}) {c.spec.label}" for c in res["table1"].columns]
    assert headers[:2] == ["IXI (T1) SSIM ↑", "IXI (T1) PSNR ↑"]
    assert "IXI (T2) SSIM ↑" in headers and "BraTS21 (T2) l1-ratio ↑" in headers


def _tag(run, method, tags):
    """Put a method's result tags on its rows, as the runner writes them."""
    from benchmark.tags import tag_columns

    for csv in run.glob("*.csv"):
        df = pd.read_csv(csv)
        for key, value in tag_columns(tags).items():
            df[key] = df[key].astype(object) if key in df else None
            df.loc[df["method"] == method, key] = value
        df.to_csv(csv, index=False)


def test_variant_tags_are_separate_entries(tmp_path):
    """An ImageNet-backbone run with random weights never merges with a pretrained one."""
    runs = []
    for pretrained in (True, False):
        run = write_run(tmp_path / f"r{pretrained}", ["base"], datasets=("BraTS21",))
        _tag(run, "base", {"pretrained": pretrained})
        runs.append(run)
    rs = load_runs(runs)  # same method, folds and volumes: no conflict, two entries
    assert set(rs.table("per_volume.csv")["entry"]) == {"base [pretrained=True]",
                                                        "base [pretrained=False]"}


def test_a_plugin_tag_names_its_own_entry_with_no_edit_in_benchmark(tmp_path):
    """Which columns are tags is read from the rows' recorded tags, not from a list: a
    tag no method of ours writes (numeric, so it would otherwise pass for a metric)."""
    runs = []
    for width in (4, 8):
        run = write_run(tmp_path / f"w{width}", ["base", "good"], datasets=("BraTS21",))
        _tag(run, "base", {"plugin_width": width})
        runs.append(run)
    board = build_leaderboard(runs, tmp_path / "out", settings(), plots=False)["leaderboard"]
    assert set(board["entry"]) == {"good", "base [plugin_width=4]", "base [plugin_width=8]"}
    assert "plugin_width" not in set(board["metric"])


def test_method_tags_are_variants_not_metrics(tmp_path):
    # the tags cDDPM writes (benchmark/diffusion/method.py, methods/cddpm): cond_dim 128 (the
    # paper) and 512 (the authors' code) are two entries, and neither tag is a metric
    runs = []
    for cond_dim in (128, 512):
        run = write_run(tmp_path / f"c{cond_dim}", ["base", "good"], datasets=("BraTS21",))
        # "good" has no tags: the cond_dim column has gaps and reads back as float
        _tag(run, "base", {"ens": True, "test_t": "250+500+750", "ssl": True,
                           "cond_dim": cond_dim})
        runs.append(run)
    board = build_leaderboard(runs, tmp_path / "out", settings(), plots=False)["leaderboard"]
    tags = " [ens=True] [test_t=250+500+750] [ssl=True]"
    assert set(board["entry"]) == {"good", f"base{tags} [cond_dim=128]",
                                   f"base{tags} [cond_dim=512]"}
    assert not {"cond_dim", "test_t"} & set(board["metric"])


def test_bad_inputs_name_the_file(tmp_path):
    run = write_run(tmp_path / "r", ["good"])
    pd.read_csv(run / "per_volume.csv").drop(columns="volume").to_csv(
        run / "per_volume.csv", index=False)
    with pytest.raises(ValueError, match=r"per_volume.csv.*volume"):
        load_runs([run])
    with pytest.raises(FileNotFoundError, match="nope"):
        load_runs([tmp_path / "nope"])


def test_cli_and_plots(two_machines, tmp_path, capsys):
    parser = configure_parser(argparse.ArgumentParser())
    out = tmp_path / "out"
    args = parser.parse_args([str(d) for d in two_machines] + [
        "--out", str(out), "--rounds", "50", "--correction", "holm"])
    assert main(args) == 0
    assert "Table 2" in capsys.readouterr().out
    sig = pd.read_csv(out / "significance.csv")
    assert set(sig["correction"]) == {"holm"} and set(sig["rounds"]) == {50}
    assert (out / "plots" / "per_volume_BraTS21.png").stat().st_size > 0
    assert (out / "plots" / "noise_levels.png").stat().st_size > 0
    assert json.loads((out / "inputs.json").read_text())["significance"]["unit"] == "fold"


def test_qualitative_grid_shapes():
    img = np.zeros((8, 8))
    fig = qualitative_grid([{"input": img, "reconstruction": img, "anomaly_map": img,
                                 "ground_truth": img},
                            {"input": img, "reconstruction": None, "anomaly_map": img,
                                 "ground_truth": img}], row_labels=["ddpm", "rd"])
    assert np.array(fig.axes).size == 8
    assert fig.axes[5].texts[0].get_text() == "n/a"
    with pytest.raises(ValueError, match="anomaly_map"):
        qualitative_grid([{"input": img, "anomaly_map": np.zeros((4, 4)), "ground_truth": img}])


def test_minimal_run_with_only_per_dataset(tmp_path):
    """Optional files and columns may be missing: no per_volume, timings, sequence."""
    run = tmp_path / "paper_numbers"
    run.mkdir()
    # Table 2 numbers of the paper, BraTS21 [DICE] per fold, re-entered as a "run"
    rows = [{"method": m, "fold": f, "dataset": "BraTS21", "threshold_source": "oracle",
             "metric": "dice_pooled", "value": v}
            for m, vals in (("ddpm", [0.49, 0.50, 0.51]), ("cddpm", [0.56, 0.57, 0.55]))
            for f, v in enumerate(vals)]
    pd.DataFrame(rows).to_csv(run / "per_dataset.csv", index=False)
    res = build_leaderboard([run], tmp_path / "out", settings())
    md = res["table2_md"]
    assert "| cddpm | **56.00 ± 1.00** |" in md and "| ddpm | 50.00 ± 1.00 |" in md
    assert pd.read_csv(tmp_path / "out" / "timings.csv").empty
    assert (tmp_path / "out" / "warnings.txt").read_text() == ""
    assert res["plots"] == []


def test_qualitative_grid_from_cached_maps(toy_root, tmp_path):
    """Known answer: a fake method whose cached anomaly map is the ground truth itself."""
    from benchmark.data.layout import unhealthy_split
    from benchmark.data.loader import load_volume
    from benchmark.leaderboard.qualitative import case_rows, lesion_slice

    records = unhealthy_split(toy_root, "Brats21", "test")
    vols = [load_volume(r) for r in records]
    from benchmark.rundir import RunDir

    run = tmp_path / "run"
    part = RunDir(run).part("fake", "t2", 0)
    part.maps_dir().mkdir(parents=True)
    np.savez(part.maps_path("Brats21", "test"), names=np.array([r.name for r in records]),
             anomaly=np.stack([v.seg.astype(np.float32) for v in vols]),
             reconstruction=np.stack([v.image for v in vols]))
    part.mark_done(part.path / "best-main.ckpt", {})  # only finished parts are shown
    write_run_config(run, toy_root, profile=get_profile("paper"))
    rows, labels = case_rows([run], "Brats21", records[1].name)
    z = lesion_slice(vols[1].seg)
    assert vols[1].seg[..., z].sum() == vols[1].seg.sum(axis=(0, 1)).max() > 0
    assert labels == ["fake"]
    np.testing.assert_array_equal(rows[0]["anomaly_map"], vols[1].seg[..., z])
    np.testing.assert_array_equal(rows[0]["input"], vols[1].image[..., z])
    with pytest.raises(ValueError, match="not in Brats21/test"):
        case_rows([run], "Brats21", "no_such_volume")


def test_pooled_columns_take_their_asterisk_from_the_per_volume_test(tmp_path):
    # 3 folds: no fold-level test of a pooled metric can be significant (unpaired, 3 a
    # side: p >= 0.1), but good's constant +0.01 per volume is, paired by (fold, volume)
    run = write_run(tmp_path / "run", ["good", "base"], folds=range(3))

    def good_cells(unit):
        out = tmp_path / unit
        build_leaderboard([run], out, settings(unit=unit, engine="replica"), plots=False)
        md = (out / "table2.md").read_text()
        line = next(x for x in md.splitlines() if x.startswith("| good |"))
        return [c.strip() for c in line.strip("|").split("|")][1:], md, out

    cells, md, out = good_cells("volume")
    # columns: BraTS21 [DICE], BraTS21 AUPRC, MSLUB [DICE], MSLUB AUPRC
    assert all(c.startswith("**") and c.endswith("\\*") for c in cells), cells
    assert "a pooled column is tested with the same metric per volume" in md
    sig = pd.read_csv(out / "significance.csv", keep_default_na=False)
    dice = select(sig, dataset="MSLUB", metric="dice", level="volume",
                  threshold_source="oracle")
    assert dice["unit"].tolist() == ["volume"] and dice["better"].tolist() == ["good"]
    auprc = select(sig, dataset="MSLUB", metric="auprc", level="volume")
    assert auprc["threshold_source"].tolist() == ["any"] and auprc["n_a"].tolist() == [18]
    pooled = select(sig, dataset="MSLUB", metric="auprc_pooled")
    assert pooled["unit"].tolist() == ["fold"] and float(pooled["p_value"].iloc[0]) >= 0.1

    cells, _, _ = good_cells("fold")  # per fold only: bold, no asterisk
    assert all(c.startswith("**") and c.endswith("**") for c in cells), cells


def test_a_board_of_selected_folds(two_machines, tmp_path):
    """--folds 1: the mean is fold 1's value, n_folds 1, recorded in inputs.json (which
    rank-agreement's bootstrap reads); a fold no run has is an error naming it."""
    a, b = two_machines
    out = tmp_path / "f1"
    build_leaderboard([a, b], out, settings(), plots=False, folds=[1])
    board = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    row = select(board, entry="good", dataset="BraTS21", metric="auprc", level="volume")
    assert float(row["mean"].iloc[0]) == pytest.approx(fold_mean("BraTS21", "good", 1))
    assert int(row["n_folds"].iloc[0]) == 1
    assert json.loads((out / "inputs.json").read_text())["folds"] == [1]
    from benchmark.leaderboard.agreement import read_board

    assert read_board(out).folds == [1]
    with pytest.raises(ValueError, match=r"fold\(s\) \[7\] are in none of the runs"):
        build_leaderboard([a, b], tmp_path / "f7", settings(), plots=False, folds=[7])


def test_inputs_record_the_parts_a_run_holds_not_its_last_launch(tmp_path):
    """A run resumed method by method and fold by fold keeps the last launch's methods and
    folds in config.json; inputs.json names what its finished parts hold."""
    a = write_run(tmp_path / "r", ["good", "base"], hardware="cpu-x86")
    write_run_config(a, profile=get_profile("quick"), methods=["base"], folds=[2])
    for method, fold in (("good", 0), ("good", 1), ("base", 2)):
        (a / method / "t2" / f"fold{fold}").mkdir(parents=True)
        (a / method / "t2" / f"fold{fold}" / "done.json").write_text("{}")
    (a / "good" / "t1" / "fold5").mkdir(parents=True)  # unfinished: not counted
    build_leaderboard([a], tmp_path / "out", settings(), plots=False)
    recorded = json.loads((tmp_path / "out" / "inputs.json").read_text())["configs"][str(a)]
    assert (recorded["methods"], recorded["sequences"], recorded["folds"]) == (
        ["base", "good"], ["t2"], [0, 1, 2])
    assert recorded["profile"]["name"] == "quick"
