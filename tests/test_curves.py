"""Learning curves (benchmark.curves): what is recorded, from which split, and that
recording them does not change what is trained."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark import curves
from benchmark.cli import main
from benchmark.data import layout

RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--epochs", "2"]


@pytest.fixture
def read_volumes(monkeypatch):
    """Every record the curve evaluation loads."""
    seen = []
    original = curves.load_volume

    def spy(record, *args, **kwargs):
        seen.append(record)
        return original(record, *args, **kwargs)

    monkeypatch.setattr(curves, "load_volume", spy)
    return seen


def test_curves_record_the_named_metrics_from_validation_splits_only(toy_root, tmp_path,
                                                                      read_volumes):
    assert main(RUN + ["--methods", "ae", "--data-root", str(toy_root), "--out", str(tmp_path),
                       "--run-id", "c", "--curve-every", "1",
                       "--select-checkpoint", "val_auprc_mean"]) == 0
    part = tmp_path / "c" / "ae" / "t2" / "fold0"
    rows = pd.read_csv(part / "curves.csv")
    assert list(rows["epoch"]) == [1, 2] and rows["step"].is_monotonic_increasing
    for col in ("train_loss", "val_loss", "val_ssim", "val_l1", "val_auprc[Brats21]",
                "val_auprc[MSLUB]", "val_auprc_mean", "train_seconds", "train_cpu_seconds"):
        assert rows[col].notna().all(), col
    assert rows["val_auprc_mean"].between(0, 1).all() and rows["val_ssim"].between(-1, 1).all()
    assert np.allclose(rows["val_auprc_mean"],
                       rows[["val_auprc[Brats21]", "val_auprc[MSLUB]"]].mean(axis=1))
    # the run-level table collects it, and the part says how its checkpoint was chosen
    assert len(pd.read_csv(tmp_path / "c" / "curves.csv")) == 2
    assert json.loads((part / "done.json").read_text())["checkpoint_selected_by"] == \
        "val_auprc_mean"

    # only validation volumes were read: the healthy fold's val split and <Set>_val.csv
    test_names = {r.name for c in ("Brats21", "MSLUB")
                  for r in layout.unhealthy_split(toy_root, c, "test")}
    test_names |= {r.name for r in layout.healthy_splits(toy_root, "t2", 0)["test"]}
    val_names = {r.name for c in ("Brats21", "MSLUB")
                 for r in layout.unhealthy_split(toy_root, c, "val")}
    val_names |= {r.name for r in layout.healthy_splits(toy_root, "t2", 0)["val"]}
    loaded = {r.name for r in read_volumes}
    assert loaded and loaded <= val_names and not loaded & test_names


def test_methods_with_their_own_training_step_record_a_curve(toy_root, tmp_path):
    """Curves must work whatever a training step returns: RA and PHANES optimise by hand
    and returned nothing, which crashed the reference board's lane. Every registered method
    that overrides the harness's training step is run (today RA and PHANES)."""
    from benchmark.method import AnomalyMethod
    from benchmark.registry import get_method, list_methods

    methods = [m for m in list_methods()
               if get_method(m).training_step is not AnomalyMethod.training_step]
    assert {"ra", "phanes"} <= set(methods)
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress",
                 "--epochs", "1", "--methods", ",".join(methods), "--cohorts", "Brats21",
                 "--data-root", str(toy_root), "--out", str(tmp_path), "--run-id", "own",
                 "--curve-every", "1"]) == 0
    rows = pd.read_csv(tmp_path / "own" / "curves.csv")
    assert set(rows["method"]) == set(methods)
    assert rows["train_loss"].notna().all(), rows.loc[rows["train_loss"].isna(), "method"]
    assert rows["val_auprc[Brats21]"].between(0, 1).all()


@pytest.mark.parametrize("name, epochs", [("ae", "3"), ("cddpm", "pretrain=1,main=3")])
def test_a_part_resumed_mid_training_keeps_its_curve(name, epochs, toy_root, tmp_path,
                                                     monkeypatch):
    """Killed in its third (main) epoch, the part resumes from the second epoch's
    checkpoint; the curve keeps the points before (the board lost a whole pDDPM curve this
    way: the part was emptied before resuming) and the training clock and the step count
    continue from them, also after a finished earlier stage (cDDPM's pre-training)."""
    from benchmark.registry import get_method

    cls = get_method(name)
    original = cls.training_step

    def dies_in_epoch_3(self, batch, batch_idx):
        if self.stage == "main" and self.current_epoch == 2:
            raise RuntimeError("simulated kill")
        return original(self, batch, batch_idx)

    args = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--epochs", epochs,
            "--methods", name, "--cohorts", "Brats21", "--data-root", str(toy_root),
            "--out", str(tmp_path), "--run-id", "k", "--curve-every", "1"]
    monkeypatch.setattr(cls, "training_step", dies_in_epoch_3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        main(args)
    part = tmp_path / "k" / name / "t2" / "fold0"
    before = pd.read_csv(part / "curves.csv")
    assert list(before.loc[before["stage"] == "main", "epoch"]) == [1, 2]
    assert (part / "last-main.ckpt").is_file()
    monkeypatch.undo()
    assert main(args + ["--resume"]) == 0
    after = pd.read_csv(part / "curves.csv")
    assert list(after.loc[after["stage"] == "main", "epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(after.iloc[:len(before)], before)  # earlier points unchanged
    steps = after["step"].diff().dropna()
    assert (steps == steps.iloc[-1]).all() and steps.iloc[-1] > 0  # the same steps per epoch
    assert after["train_seconds"].iloc[-1] > before["train_seconds"].iloc[-1]
    assert json.loads((part / "done.json").read_text())["resumed_from"]["main"] == 2


def test_recording_curves_does_not_change_the_trained_model(toy_root, tmp_path):
    """A VAE that samples z at test time draws from torch's RNG at inference: the curve
    evaluates under private RNG states, so training sees the same random stream."""
    for run_id, extra in (("plain", []), ("curves", ["--curve-every", "1"])):
        assert main(RUN + ["--methods", "vae", "--set", "vae.sample_at_test=true", "--cohorts",
                           "Brats21", "--data-root",
                           str(toy_root), "--out", str(tmp_path), "--run-id", run_id] + extra) == 0
    plain = pd.read_csv(tmp_path / "plain" / "per_volume.csv")
    with_curves = pd.read_csv(tmp_path / "curves" / "per_volume.csv")
    cols = ["volume", "threshold_source", "auprc", "auroc", "dice", "threshold"]
    pd.testing.assert_frame_equal(plain[cols], with_curves[cols])
    assert not (tmp_path / "plain" / "vae" / "t2" / "fold0" / "curves.csv").exists()


def test_selecting_by_a_curve_metric_needs_curves(toy_root, tmp_path, capsys):
    assert main(RUN + ["--methods", "ae", "--data-root", str(toy_root), "--out", str(tmp_path),
                       "--select-checkpoint", "val_auprc_mean"]) == 2
    assert "--curve-every" in capsys.readouterr().err
    assert main(RUN + ["--methods", "ae", "--data-root", str(toy_root), "--out", str(tmp_path),
                       "--select-checkpoint", "auc", "--curve-every", "1"]) == 2
    assert "val_loss, val_auprc_mean, val_ssim" in capsys.readouterr().err


def test_convergence_of_a_known_curve():
    """A curve rising 0.1 -> 0.5 in 4 points and flat after: 90 % of the rise is reached
    at the first point whose 3-point running mean is >= 0.46."""
    from benchmark.experiments.learning_curves import convergence

    auprc = [0.1, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    part = pd.DataFrame({"step": range(10, 100, 10), "val_auprc_mean": auprc,
                         "train_cpu_seconds": np.arange(1.0, 10)})
    got = convergence(part, "val_auprc_mean", higher=True)
    # running means: .1 .2 .3 .433 .5 .5 -> plateau .5, 90 % of the rise (.46) at step 50
    assert got["plateau"] == pytest.approx(0.5) and got["steps_to_fraction"] == 50
    assert got["cpu_seconds_to_fraction"] == 5 and got["converged"]
    # still climbing: running means .1 .15 .2 .3 ... .8; its last third (point 5 -> 8:
    # .5 -> .8 of a .7 rise) gained 3/7
    rising = convergence(part.assign(val_auprc_mean=np.arange(1, 10) / 10),
                         "val_auprc_mean", higher=True)
    assert rising["late_gain"] == pytest.approx(3 / 7) and not rising["converged"]
    loss = part.assign(val_loss=[1.0, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    down = convergence(loss, "val_loss", higher=False)
    # running means 1, .75, .567, .3, .2, ...: 90 % of the fall (to .28) first at step 50
    assert down["plateau"] == pytest.approx(0.2) and down["steps_to_fraction"] == 50


def test_variants_of_a_method_are_separate_curves(tmp_path):
    """The board's SSL ablation (cDDPM without pre-training, another run) was merged with
    the board's cDDPM into one curve per fold: variants are named as leaderboard entries."""
    from benchmark.experiments.learning_curves import convergence_table, load_curves

    for run, ssl, values in (("board", "true", [0.1, 0.2, 0.3]),
                             ("ablation", "false", [0.5, 0.4, 0.6])):
        part = tmp_path / run / "cddpm" / "t2" / "fold0"
        part.mkdir(parents=True)
        pd.DataFrame({"method": "cddpm", "fold": 0, "sequence": "t2", "stage": "main",
                      "tags": f'{{"ssl": {ssl}}}', "epoch": [1, 2, 3], "step": [8, 16, 24],
                      "train_cpu_seconds": [1.0, 2.0, 3.0], "val_auprc_mean": values}
                     ).to_csv(part / "curves.csv", index=False)
    table = convergence_table(load_curves([tmp_path / "board", tmp_path / "ablation"]))
    first = table.set_index("method")["first"]
    assert first.to_dict() == {"cddpm [ssl=True]": 0.1, "cddpm [ssl=False]": 0.5}
    # one variant only: the method's plain name
    assert set(convergence_table(load_curves([tmp_path / "board"]))["method"]) == {"cddpm"}


def test_convergence_summary_table():
    """Two folds of one method: plateau averaged, steps/CPU-s as medians, 'converged' only
    when every fold had; an unfinished part (no done.json: training, or stopped) is said to be."""
    from benchmark.experiments.learning_curves import markdown_summary

    row = {"method": "ae", "sequence": "t2", "metric": "val_auprc_mean", "total_steps": 90}
    table = pd.DataFrame([
        {**row, "fold": 0, "plateau": 0.4, "steps_to_fraction": 30, "cpu_seconds_to_fraction": 3.0,
         "converged": True, "finished": True},
        {**row, "fold": 1, "plateau": 0.6, "steps_to_fraction": 50, "cpu_seconds_to_fraction": 5.0,
         "converged": False, "finished": False},
    ])
    lines = markdown_summary(table).splitlines()
    assert lines[0].startswith("| method | sequence | folds | metric | plateau | steps to 90% |")
    assert lines[2] == "| ae | t2 | 2 | val_auprc_mean | 0.500 | 40 | 4 | 90 | no (1 of 2), unfinished |"
