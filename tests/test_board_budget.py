"""The reference board's budget script: a part's cost is its training CPU time plus curve
evaluations plus test inference, a part without a usable time is estimated, and missing
parts are projected from the finished ones. Numbers are computed by hand below."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def budget(load_script):
    return load_script("leaderboard/synthetic-reference/diagnostics/budget.py", "board_budget")


def _part(runs: Path, lane: str, method: str, seq: str, fold: int, *, train_seconds: float,
          per_epoch: float | None, epochs: int, infer: float, curve: list[tuple] | None):
    part = runs / lane / method / seq / f"fold{fold}"
    part.mkdir(parents=True)
    (part / "done.json").write_text(json.dumps({
        "method": method, "sequence": seq, "fold": fold, "train_seconds": train_seconds,
        "train_seconds_per_epoch": per_epoch, "epochs": epochs,
        "infer_seconds_per_volume": infer, "n_volumes_timed": 10}))
    if curve is not None:  # rows: (train wall s, train CPU s, curve evaluation s)
        lines = ["stage,epoch,train_seconds,train_cpu_seconds,curve_eval_seconds"]
        lines += [f"main,{i},{w},{c},{e}" for i, (w, c, e) in enumerate(curve, 1)]
        (part / "curves.csv").write_text("\n".join(lines) + "\n")


def test_costs_use_cpu_time_and_flag_a_lost_training_time(budget, tmp_path):
    # AE T2 f0: wall 5000 s (a starved lane) but 600 s of CPU, 2 curve points of 30 s each
    _part(tmp_path, "baselines", "ae", "t2", 0, train_seconds=5000, per_epoch=50, epochs=100,
          infer=2.0, curve=[(2000, 300, 30), (5000, 600, 30)])
    # AE T1 f0: no curve, and a resumed part that kept only its last process's 10 s
    _part(tmp_path, "baselines", "ae", "t1", 0, train_seconds=10, per_epoch=None, epochs=100,
          infer=1.0, curve=None)
    parts = budget.finished(tmp_path)
    train, infer, note = budget.cost(parts, ("ae", "t2", 0))
    assert (train, infer, note) == (660.0, 20.0, "")
    train, infer, note = budget.cost(parts, ("ae", "t1", 0))
    # estimated from the method's seconds per epoch (5000 / 100) x 100 epochs
    assert train == pytest.approx(5000.0) and infer == 10.0 and "estimated" in note


def test_projection_fills_missing_folds_from_the_same_sequence(budget, tmp_path, capsys):
    _part(tmp_path, "diffusion", "ddpm", "t2", 0, train_seconds=400, per_epoch=10, epochs=40,
          infer=3.6, curve=[(400, 324, 0)])  # 324 + 36 = 360 s = 0.1 h
    _part(tmp_path, "diffusion", "ddpm", "t2", 1, train_seconds=800, per_epoch=20, epochs=40,
          infer=3.6, curve=[(800, 684, 0)])  # 684 + 36 = 720 s = 0.2 h
    _part(tmp_path, "diffusion", "ddpm", "t1", 0, train_seconds=3600, per_epoch=90, epochs=40,
          infer=0.0, curve=[(3600, 3600, 0)])  # 1 h
    budget.main(tmp_path)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| diffusion | ddpm |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # t2: 0.1 + 0.2 + mean 0.15 for fold 2; t1: 1 h for each of 3 folds -> 3.45 h
    assert cells[2] == "3" and cells[6] == "3.5"
    assert "3 of 84 parts finished: 1.3 CPU hours" in out
    # the baselines lane has no record at all: nothing projected, and it says so
    assert "no record to project t2 f0" in out


def test_a_runs_directory_without_the_lanes_is_refused_by_name(tmp_path):
    """The script prices any board given its runs directory (the v2 board's too); a path
    without the baselines/ and diffusion/ lanes exits naming it instead of pricing 0 parts."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "leaderboard/synthetic-reference/diagnostics/budget.py"
    (tmp_path / "baselines").mkdir()  # one lane only
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, check=False,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 1
    assert f"budget: {tmp_path}: not a board's runs directory" in done.stderr
    assert done.stdout == ""
