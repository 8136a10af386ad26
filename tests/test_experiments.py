"""The paper's experiments end to end: a run, an experiment on it, the leaderboard reading
the experiment's output where the experiment wrote it."""
from __future__ import annotations

import pandas as pd

from benchmark.cli import main
from benchmark.leaderboard.load import load_run


def test_noise_levels_reach_the_leaderboard(toy_root, tmp_path):
    run = tmp_path / "runs" / "r"
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress",
                 "--methods", "ddpm", "--set", "ddpm.noise=gaussian", "--cohorts", "Brats21",
                 "--data-root", str(toy_root), "--out", str(tmp_path / "runs"),
                 "--run-id", "r"]) == 0
    assert main(["experiment", "noise-levels", str(run), "--methods", "ddpm",
                 "--steps", "250,500", "--max-volumes", "1", "--slice-stride", "10"]) == 0
    written = run / "experiments" / "noise-levels" / "noise_levels.csv"
    assert written.is_file()
    table = load_run(run).table("noise_levels.csv")  # found where the experiment wrote it
    assert set(table["t"].astype(str)) == {"250", "500", "ens"}
    assert table["auprc"].between(0, 1).all() and set(table["dataset"]) == {"Brats21"}
    out = tmp_path / "board"
    assert main(["leaderboard", str(run), "--out", str(out), "--paired", "volume",
                 "--rounds", "100"]) == 0
    assert (out / "plots" / "noise_levels.png").is_file()
    assert not pd.read_csv(out / "leaderboard.csv").empty
