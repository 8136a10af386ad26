"""The paper's experiments end to end: a run, an experiment on it, the leaderboard reading
the experiment's output where the experiment wrote it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.leaderboard.load import load_run


@pytest.fixture(scope="module")
def run(toy_root, tmp_path_factory):
    """One smoke run of a diffusion model and an AE on the toy data, T2, BraTS only."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress",
                 "--methods", "ddpm,ae", "--set", "ddpm.noise=gaussian", "--cohorts", "Brats21",
                 "--data-root", str(toy_root), "--out", str(out), "--run-id", "r"]) == 0
    return out / "r"


def test_noise_levels_reach_the_leaderboard(run, tmp_path):
    # the smoke run reads every 2nd slice (25): stride 5 takes 5 of them, as 10 of 50 did
    assert main(["experiment", "noise-levels", str(run), "--methods", "ddpm",
                 "--steps", "250,500", "--max-volumes", "1", "--slice-stride", "5"]) == 0
    written = run / "experiments" / "noise-levels" / "noise_levels.csv"
    assert written.is_file()
    table = load_run(run).table("noise_levels.csv")  # found where the experiment wrote it
    assert set(table["t"].astype(str)) == {"250", "500", "ens"}
    assert table["auprc"].between(0, 1).all() and set(table["dataset"]) == {"Brats21"}
    assert (table[["l1_lesion", "l1_healthy", "l1_ratio"]] > 0).all().all()
    assert np.allclose(table["l1_ratio"], table["l1_lesion"] / table["l1_healthy"])
    out = tmp_path / "board"
    assert main(["leaderboard", str(run), "--out", str(out), "--paired", "volume",
                 "--rounds", "100"]) == 0
    assert (out / "plots" / "noise_levels.png").is_file()
    assert not pd.read_csv(out / "leaderboard.csv").empty


def test_domain_shift_experiment_writes_scores_per_contrast(run):
    assert main(["experiment", "domain-shift", str(run), "--methods", "ae",
                 "--contrasts", "0.5,1"]) == 0
    shift = pd.read_csv(run / "domain_shift.csv")
    assert set(shift["contrast"]) == {0.5, 1.0} and set(shift["method"]) == {"ae"}
    auprc = shift[shift.metric == "auprc_pooled"].set_index("contrast")["value"]
    own = pd.read_csv(run / "per_dataset.csv")
    own = own[(own.metric == "auprc_pooled") & (own.method == "ae")]["value"].iloc[0]
    assert auprc[1.0] == own  # cl=1: the part's own maps
    assert auprc[0.5] != auprc[1.0]
    assert "tags" in shift.columns  # the part's result tags travel with its rows


def test_l1_sums_and_pooled_l1_hand_computed():
    from benchmark.experiments.common import l1_sums, pooled_l1

    seg = np.zeros((2, 2, 2), bool)
    seg[0, 0, 0] = True
    brain = np.ones((2, 2, 2), bool)
    brain[1, 1, :] = False  # outside the brain: counted nowhere
    err = np.arange(8, dtype=float).reshape(2, 2, 2)
    # lesion: err[0, 0, 0] = 0; healthy brain: the other voxels but (1, 1, :) = 1+2+3+4+5
    sums = l1_sums(err, seg, brain)
    np.testing.assert_array_equal(sums, [0, 1, 15, 5])
    # a second volume, lesion at err = 3: healthy 0+1+2+4+5 = 12 over 5 voxels; pooled:
    # lesion (0 + 3) / 2 = 1.5, healthy (15 + 12) / 10 = 2.7, ratio 1.5 / 2.7
    seg2 = np.zeros((2, 2, 2), bool)
    seg2[0, 1, 1] = True
    np.testing.assert_array_equal(l1_sums(err, seg2, brain), [3, 1, 12, 5])
    pooled = pooled_l1(sums + l1_sums(err, seg2, brain))
    assert pooled == pytest.approx({"l1_lesion": 1.5, "l1_healthy": 2.7,
                                    "l1_ratio": 1.5 / 2.7})
    assert np.isnan(pooled_l1(np.array([0, 0, 15, 5]))["l1_ratio"])
