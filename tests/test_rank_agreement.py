"""rank-agreement: known correlations on hand-made boards, the paired bootstrap, the
entry -> published row mapping, the shipped tables, bad input, and the v1 board's answer."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.experiments.rank_agreement import STATISTICS, VOLUME_SOURCES
from benchmark.leaderboard import SignificanceSettings, build_leaderboard
from benchmark.leaderboard import agreement as ag
from benchmark.leaderboard.load import entry_names
from benchmark.references import (
    METRICS,
    TABLE1,
    TABLE2,
    entry_tags,
    match_entries,
    read_reference,
)

V1_BOARD = Path(__file__).parents[1] / "leaderboard" / "synthetic-reference"
HEADER = "model,method,tags,cohort,dataset,sequence,metric,unit,mean,std,significant\n"


def _split(entry: str) -> tuple[str, dict]:
    method, _, rest = entry.partition(" ")
    return method, {k: v for k, v in re.findall(r"\[(\w+)=([^\]]*)\]", rest)}


def make_board(root: Path, pooled: dict[str, float], volumes: dict[str, np.ndarray],
               metric: str = "auprc") -> Path:
    """A board built by the real leaderboard code from hand-written run records.

    pooled: {entry: the table value}; volumes: {entry: (folds, volumes) per-volume values}.
    """
    run = root / "runs" / "r"
    run.mkdir(parents=True)
    per_volume, per_dataset = [], []
    for entry, value in pooled.items():
        method, tags = _split(entry)
        ids = {"method": method, "sequence": "t2", "tags": json.dumps(tags),
               "dataset": "Brats21"}
        grid = volumes[entry]
        name, source = ("dice_pooled", "oracle") if metric == "dice" else \
            ("auprc_pooled", "none")
        for fold in range(grid.shape[0]):
            for v in range(grid.shape[1]):
                for src, dice in (("oracle", grid[fold, v]),
                                  ("val", 1 - grid[fold, v])):  # val: the reverse order
                    per_volume.append(ids | {"fold": fold, "volume": f"v{v}",
                                             "threshold_source": src, "auprc": grid[fold, v],
                                             "dice": dice})
            per_dataset.append(ids | {"fold": fold, "threshold_source": source,
                                      "metric": name, "value": value})
    pd.DataFrame(per_volume).to_csv(run / "per_volume.csv", index=False)
    pd.DataFrame(per_dataset).to_csv(run / "per_dataset.csv", index=False)
    build_leaderboard([run], root / "board", SignificanceSettings(rounds=10), plots=False)
    return root / "board"


def write_reference(path: Path, values: dict[str, float], metric: str = "auprc") -> Path:
    lines = [f"{e.upper()},{_split(e)[0]},{e.partition(' ')[2]},BraTS21,Brats21,t2,{metric},"
             f"%,{v},,False\n" for e, v in values.items()]
    path.write_text("# a hand-made reference\n" + HEADER + "".join(lines))
    return path


def run_agreement(board: Path, reference: Path, tmp_path: Path, *extra: str) -> pd.Series:
    out = tmp_path / "agreement.csv"
    assert main(["experiment", "rank-agreement", str(board), "--against", str(reference),
                 "--out", str(out), *extra]) == 0
    return pd.read_csv(out).iloc[0]


ENTRIES = ("ae", "vae", "dae", "ddpm [ens=False]")


def flat(values) -> dict[str, np.ndarray]:
    """Per-volume values equal to the table value: 2 folds x 3 volumes."""
    return {e: np.full((2, 3), float(v)) for e, v in zip(ENTRIES, values)}


@pytest.mark.parametrize(("reference", "rho", "tau"), [
    ((1, 2, 3, 4), 1.0, 1.0),                                  # identical ranking
    ((4, 3, 2, 1), -1.0, -1.0),                                # reversed
    ((1, 2, 4, 3), 1 - 6 * 2 / (4 * 15), (5 - 1) / 6),          # last two swapped
])
def test_known_correlations(tmp_path, reference, rho, tau):
    board_values = (0.1, 0.2, 0.3, 0.4)
    board = make_board(tmp_path, dict(zip(ENTRIES, board_values)), flat(board_values))
    ref = write_reference(tmp_path / "ref.csv", dict(zip(ENTRIES, reference)))
    row = run_agreement(board, ref, tmp_path, "--resamples", "50")
    assert row["table_spearman"] == pytest.approx(rho)
    assert row["table_kendall"] == pytest.approx(tau)
    # per-volume values equal to the table's: the same ranking, in every resample
    assert row["volume_spearman"] == pytest.approx(rho)
    assert row["spearman_lo"] == pytest.approx(rho) and row["spearman_hi"] == pytest.approx(rho)
    assert row["n_methods"] == 4 and row["valid_resamples"] == 50


def test_ties_use_average_ranks_and_tau_b(tmp_path):
    board_values = (0.1, 0.2, 0.2, 0.4)  # vae and dae tie on the board
    board = make_board(tmp_path, dict(zip(ENTRIES, board_values)), flat(board_values))
    ref = write_reference(tmp_path / "ref.csv", dict(zip(ENTRIES, (1, 2, 3, 4))))
    row = run_agreement(board, ref, tmp_path, "--resamples", "0")
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): Pearson of the ranks = 4.5 / sqrt(4.5 * 5)
    assert row["table_spearman"] == pytest.approx(4.5 / np.sqrt(22.5))
    # 5 concordant pairs, 0 discordant, one pair tied on the board: tau-b = 5 / sqrt(5 * 6)
    # (tau-a would be 5 / 6)
    assert row["table_kendall"] == pytest.approx(5 / np.sqrt(30))
    assert np.isnan(row["volume_spearman"]) and row["resamples"] == 0


def test_dice_reads_the_oracle_threshold(tmp_path):
    values = (0.1, 0.2, 0.3, 0.4)
    board = make_board(tmp_path, dict(zip(ENTRIES, values)), flat(values), metric="dice")
    ref = write_reference(tmp_path / "ref.csv", dict(zip(ENTRIES, (1, 2, 3, 4))), "dice")
    row = run_agreement(board, ref, tmp_path, "--metric", "dice", "--resamples", "20")
    # the val rows are written in reverse order: reading them would give -1
    assert row["table_spearman"] == 1.0 and row["volume_spearman"] == 1.0


def _noisy(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {e: 0.05 * k + rng.uniform(0, 0.2, size=(3, 8)) for k, e in enumerate(ENTRIES)}


def test_bootstrap_interval_holds_the_point_and_is_deterministic(tmp_path):
    volumes = _noisy()
    pooled = {e: float(v.mean()) for e, v in volumes.items()}
    board = make_board(tmp_path, pooled, volumes)
    ref = write_reference(tmp_path / "ref.csv", dict(zip(ENTRIES, (1, 2, 3, 4))))
    first = run_agreement(board, ref, tmp_path, "--resamples", "200", "--seed", "3")
    again = run_agreement(board, ref, tmp_path, "--resamples", "200", "--seed", "3")
    pd.testing.assert_series_equal(first, again)
    assert first["spearman_lo"] <= first["volume_spearman"] <= first["spearman_hi"]
    assert first["kendall_lo"] <= first["volume_kendall"] <= first["kendall_hi"]
    assert first["spearman_lo"] < first["spearman_hi"]  # the noise does move the ranking
    values = np.stack([volumes[e] for e in ENTRIES])
    present = np.ones((3, 8), bool)
    a = ag.bootstrap_correlations(values, np.arange(4.0), 100, present,
                                  np.random.default_rng(1))
    b = ag.bootstrap_correlations(values, np.arange(4.0), 100, present,
                                  np.random.default_rng(2))
    assert not np.array_equal(a, b)


def test_bootstrap_is_paired_across_methods():
    """Volumes differ a lot, methods by a little, the same on every volume: a paired
    resample never changes the order; resampling each method on its own would."""
    volume_effect = np.linspace(0, 1, 10)
    values = np.stack([np.tile(volume_effect + 0.01 * k, (2, 1)) for k in range(5)])
    boot = ag.bootstrap_correlations(values, np.arange(5.0), 300, np.ones((2, 10), bool),
                                     np.random.default_rng(0))
    assert np.allclose(boot, 1.0)


def test_resample_counts_share_a_draw_between_folds_with_the_same_volumes():
    present = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [0, 1, 1, 1]], bool)
    counts = ag.resample_counts(present, 500, np.random.default_rng(0))
    assert counts.shape == (500, 3, 4)
    assert np.array_equal(counts[:, 0], counts[:, 1])        # same volumes: one draw
    assert not np.array_equal(counts[:, 0, 1:3], counts[:, 2, 1:3])  # other volumes: own draw
    assert np.all(counts[:, :2, 3] == 0) and np.all(counts[:, 2, 0] == 0)
    assert np.all(counts.sum(axis=2) == 3)                     # n draws from n volumes


def test_volume_statistic_weights_volumes_and_skips_nan():
    values = np.array([[[1.0, 2.0, np.nan], [4.0, np.nan, np.nan]]])  # 1 entry, 2 folds
    counts = np.array([[[2.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])
    # fold 0: (2*1 + 1*2) / 3; fold 1: 4 / 1; then the mean over folds
    assert ag.volume_statistic(values, counts)[0, 0] == pytest.approx((4 / 3 + 4) / 2)


# ---------------------------------------------------------------------------- mapping
def test_entry_tags_read_what_entry_names_write():
    rows = pd.DataFrame({"method": ["cddpm", "ae"], "tags": [
        json.dumps({"ens": True, "test_t": "250+500+750", "ssl": False, "cond_dim": 128}), "{}"]})
    cddpm, ae = entry_names(rows)
    assert entry_tags(cddpm, "cddpm") == {"ens": "True", "test_t": "250+500+750",
                                          "ssl": "False", "cond_dim": "128"}
    assert entry_tags(ae, "ae") == {}


def test_v1_board_entries_map_onto_table2():
    board = ag.read_board(V1_BOARD)
    matching = match_entries(board.entries(), read_reference(TABLE2))
    assert sorted(matching.model.values()) == sorted(
        ["Thresh", "VAE", "SVAE", "AE", "DAE", "RA", "PHANES", "RD", "FAE", "EDC", "PII",
         "DDPM", "pDDPM", "cDDPM (ENS+SSL)"])
    assert matching.model["ddpm [ens=False] [test_t=500]"] == "DDPM"
    assert [e for e in matching.left_out if "[ssl=False]" in e] == list(matching.left_out)
    assert len(matching.left_out) == 1  # the SSL ablation: the paper has no ENS, no-SSL row


def test_two_entries_on_one_row_and_exclude():
    reference = read_reference(TABLE2)
    entries = {"rd [pretrained=False]": "rd", "rd [pretrained=True]": "rd", "ae": "ae"}
    with pytest.raises(ValueError, match=r"rd \[pretrained=False\].*rd \[pretrained=True\]"):
        match_entries(entries, reference)
    matching = match_entries(entries, reference, exclude=["rd [pretrained=False]"])
    assert matching.model == {"rd [pretrained=True]": "RD", "ae": "AE"}
    assert "excluded" in matching.left_out["rd [pretrained=False]"]


def test_shipped_tables_as_printed():
    t2, t1 = read_reference(TABLE2), read_reference(TABLE1)
    assert any("109660" in line for line in t2.citation + t1.citation)
    assert len(t2.models()) == 18 and len(t2.rows) == 18 * 8
    assert len(t1.models()) == 9 and len(t1.rows) == 9 * 8
    cell = t2.rows.set_index(["model", "dataset", "metric"])
    best = cell.loc[("cDDPM (ENS+SSL)", "Brats21", "auprc")]
    assert (best["mean"], best["std"], best["significant"]) == (58.82, 1.56, True)
    assert cell.loc[("Thresh", "WMH", "dice"), "mean"] == 10.32
    assert cell["std"].isna().groupby(level="model").all()["Thresh"]
    assert sorted(t2.rows.loc[t2.rows["significant"], "dataset"]) == \
        ["ATLAS_v2", "ATLAS_v2", "Brats21", "Brats21"]
    ixi = t1.rows.set_index(["model", "metric"])
    assert ixi.loc[("pDDPM (ENS)", "lpips"), "mean"] == 0.09
    assert ixi.loc[("pDDPM (ENS)", "lpips"), "significant"]
    assert set(t1.rows["metric"]) == {"ssim", "psnr", "lpips", "l1", "l1_ratio"}


def test_every_metric_has_a_volume_source_and_words():
    assert set(METRICS) == set(VOLUME_SOURCES) == set(STATISTICS)


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def small(tmp_path):
    values = (0.1, 0.2, 0.3, 0.4)
    board = make_board(tmp_path, dict(zip(ENTRIES, values)), flat(values))
    return board, write_reference(tmp_path / "ref.csv", dict(zip(ENTRIES, (1, 2, 3, 4))))


def _error(capsys, *argv) -> str:
    assert main(["experiment", "rank-agreement", *map(str, argv)]) == 2
    return capsys.readouterr().err


def test_unknown_cohort(small, capsys):
    board, ref = small
    err = _error(capsys, board, "--against", ref, "--cohorts", "Atlantis")
    assert "Atlantis" in err and "BraTS21" in err


def test_board_method_missing_from_reference(small, capsys, tmp_path):
    board, _ = small
    ref = write_reference(tmp_path / "short.csv", {"ae": 1, "vae": 2, "dae": 3})
    err = _error(capsys, board, "--against", ref)
    assert "'ddpm'" in err and str(ref) in err
    row = run_agreement(board, ref, tmp_path, "--skip-missing", "--resamples", "0")
    assert row["n_methods"] == 3 and row["table_spearman"] == 1.0
    assert "the reference has no ddpm" in capsys.readouterr().out


def test_missing_files(small, capsys, tmp_path):
    board, ref = small
    assert str(tmp_path / "nope.csv") in _error(capsys, board, "--against", tmp_path / "nope.csv")
    (board / "leaderboard.csv").rename(board / "moved.csv")
    assert "leaderboard.csv" in _error(capsys, board, "--against", ref)
    (board / "moved.csv").rename(board / "leaderboard.csv")
    inputs = json.loads((board / "inputs.json").read_text())
    (board / "inputs.json").write_text(json.dumps(inputs | {"run_dirs": ["gone/r"]}))
    assert "gone/r" in _error(capsys, board, "--against", ref)


def test_bad_reference_lines(small, capsys, tmp_path):
    board, ref = small
    bad = tmp_path / "bad.csv"
    bad.write_text(ref.read_text().replace(",auprc,%,3,", ",auprc,%,3.x,"))
    err = _error(capsys, board, "--against", bad)
    assert str(bad) in err and "'3.x'" in err
    bad.write_text(ref.read_text().replace(",auprc,", ",f1,"))
    assert "f1" in _error(capsys, board, "--against", bad)


# ---------------------------------------------------------------------------- v1 board
def _board_agreement(board: Path, out: Path) -> dict:
    assert main(["experiment", "rank-agreement", str(board), "--resamples", "0",
                 "--out", str(out)]) == 0
    return pd.read_csv(out).set_index("cohort")[["n_methods", "table_spearman",
                                                 "table_kendall"]].round(2).to_dict("index")


def test_v1_board_reproduces_the_measured_pooled_auprc_agreement(tmp_path):
    out = tmp_path / "v1.csv"
    assert _board_agreement(V1_BOARD, out) == {
        "BraTS21": {"n_methods": 14, "table_spearman": 0.71, "table_kendall": 0.47},
        "MSLUB": {"n_methods": 14, "table_spearman": 0.20, "table_kendall": 0.12},
        "ATLAS": {"n_methods": 14, "table_spearman": 0.02, "table_kendall": 0.08},
        "WMH": {"n_methods": 14, "table_spearman": -0.25, "table_kendall": -0.16}}
    methods = pd.read_csv(tmp_path / "v1_methods.csv")
    assert set(methods.columns) >= {"entry", "model", "table_value", "reference_value",
                                    "table_rank", "reference_rank"}


def test_v2_board_gives_the_agreement_the_docs_quote(tmp_path):
    """The complete v2 board (3 folds) as README, docs/fidelity.md and docs/rank-agreement.md
    quote it: calibrated lesions, no closer to Table 2 than v1 (ATLAS lower)."""
    board = V1_BOARD.parent / "synthetic-reference-v2"
    assert _board_agreement(board, tmp_path / "v2.csv") == {
        "BraTS21": {"n_methods": 14, "table_spearman": 0.67, "table_kendall": 0.47},
        "MSLUB": {"n_methods": 14, "table_spearman": 0.29, "table_kendall": 0.19},
        "ATLAS": {"n_methods": 14, "table_spearman": -0.22, "table_kendall": -0.03},
        "WMH": {"n_methods": 14, "table_spearman": -0.25, "table_kendall": -0.16}}
