"""The command line: list, run (smoke), resume after a crash, evaluate, bad input."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.registry import get_method, list_methods

RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress"]  # = conftest's smoke_run


def test_list_shows_every_method_from_the_registry_cards(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header, *rows = [line for line in out.splitlines() if line.strip()]
    assert header.split() == ["method", "family", "paper"]
    table = {r.split()[0]: r.split()[1] for r in rows if not r.startswith("#params")}
    assert list(table) == list_methods()
    assert table["thresh"] == "statistical" and table["cddpm"] == "diffusion"
    assert "#params" not in header and "!!" not in out  # nothing built, no weights looked up


def test_list_params_counts_each_method_as_built(capsys):
    assert main(["list", "--params", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    header, *rows = [line for line in out.splitlines() if line.strip()]
    assert header.split()[-2:] == ["#params", "(smoke)"]
    counts = {r.split()[0]: int(r.split()[-1].replace(",", "")) for r in rows}
    for name in ("thresh", "ae", "rd", "cddpm"):  # shapes only (meta device) = the real build
        assert counts[name] == get_method(name).from_profile("smoke").n_params(), name
    assert counts["thresh"] == 0 and "!!" not in out


def test_run_writes_the_results_contract(smoke_run):
    rows = pd.read_csv(smoke_run / "per_volume.csv")
    for col in ("method", "fold", "dataset", "sequence", "volume", "auprc", "auroc", "dice",
                "threshold", "threshold_source"):
        assert col in rows.columns
    assert set(rows["method"]) == {"thresh", "ae"}
    assert set(rows["dataset"]) == {"Brats21", "MSLUB"}       # t2 -> its test sets only
    assert set(rows["threshold_source"]) == {"oracle", "val", "fpr1", "fpr5", "fpr10"}
    assert rows["dice"].between(0, 1).all() and rows["auroc"].between(0, 1).all()
    timings = pd.read_csv(smoke_run / "timings.csv")
    assert set(timings["method"]) == {"thresh", "ae"} and (timings["n_params"] >= 0).all()
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["methods"] == ["thresh", "ae"] and config["profile"]["name"] == "smoke"
    env = json.loads((smoke_run / "environment.json").read_text())
    assert env["packages"]["torch"] and env["hardware"]
    assert (smoke_run / "ae/t2/fold0/best-main.ckpt").is_file()
    assert (smoke_run / "ae/t2/fold0/maps/Brats21_test.npz").is_file()


def test_checkpoint_rebuilds_the_method(smoke_run):
    from benchmark.checkpoint import load_method

    path = smoke_run / "ae/t2/fold0/best-main.ckpt"
    method = load_method(path)
    assert method.name == "ae" and method.hparams.latent_dim == 16
    # weights only: the optimiser state is never read back (parts are the resume unit)
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in saved and "state_dict" in saved


def test_evaluate_rescoring_reproduces_the_numbers(smoke_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(smoke_run, copy)
    for name in ("per_volume.csv", "per_dataset.csv", "timings.csv"):
        (copy / name).rename(copy / f"{name}.before")
    assert main(["evaluate", str(copy)]) == 0
    for name in ("per_volume.csv", "per_dataset.csv"):
        # every column survives a re-score: ids, result tags, protocol tags and numbers
        before, after = pd.read_csv(copy / f"{name}.before"), pd.read_csv(copy / name)
        pd.testing.assert_frame_equal(before, after)


def test_crash_loses_nothing_and_resume_finishes(smoke_run, toy_root, tmp_path, monkeypatch):
    from methods.ae.method import AE

    def boom(self, x):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(AE, "anomaly", boom)
    args = RUN + ["--methods", "thresh,ae", "--data-root", str(toy_root), "--out",
                  str(tmp_path), "--run-id", "c"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(args)
    run = tmp_path / "c"
    done = run / "thresh/t2/fold0/done.json"
    assert done.is_file() and set(pd.read_csv(run / "per_volume.csv")["method"]) == {"thresh"}
    stamp = done.stat().st_mtime_ns
    monkeypatch.undo()
    assert main(args) == 2  # the run exists: refuse to overwrite without --resume
    assert main(args + ["--resume"]) == 0
    assert done.stat().st_mtime_ns == stamp, "a finished part must not be redone"
    assert set(pd.read_csv(run / "per_volume.csv")["method"]) == {"thresh", "ae"}
    # the resumed AE ran first in its process, the uninterrupted one after thresh: a part
    # is seeded on its own, so both give the same numbers
    cols = ["volume", "threshold_source", "auprc", "auroc", "dice", "threshold"]
    resumed, whole = (pd.read_csv(r / "ae/t2/fold0/per_volume.csv")[cols] for r in (run, smoke_run))
    pd.testing.assert_frame_equal(resumed, whole)


def test_a_bare_key_error_from_inside_a_run_says_where_it_was_raised(toy_root, tmp_path,
                                                                     monkeypatch, capsys):
    """A KeyError's message is only its key: the board's lane died with "error: loss" (a
    bug in the curve callback). Such an error names its function, file and line, and -v
    prints the traceback."""
    from methods.ae.method import AE

    def lookup(self, x):
        return {}["loss"]

    monkeypatch.setattr(AE, "anomaly", lookup)
    args = RUN + ["--methods", "ae", "--data-root", str(toy_root), "--out", str(tmp_path)]
    assert main(args + ["--run-id", "a"]) == 2
    err = capsys.readouterr().err
    assert "error: KeyError 'loss' in lookup (test_cli.py:" in err and "Traceback" not in err
    assert main(["-v"] + args + ["--run-id", "b"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--methods", "cdpm"], "unknown method 'cdpm' (did you mean 'cddpm'?); known methods:"),
    (["--methods", "ae", "--set", "ae.latentdim=3"], "unknown hyperparameter 'latentdim'"),
    (["--methods", "ae", "--set", "vae.beta=1"], "not in --methods"),
    (["--methods", "ae", "--set", "ae"], "expected METHOD.KEY=VALUE"),
    (["--methods", "ae", "--sequences", "flair"], "allowed values are t1, t2"),
    (["--methods", "ae", "--data-root", "/nonexistent/data"], "does not exist"),
    (["--methods", "ae", "--folds", "one"], "comma-separated integers"),
])
def test_bad_input_is_a_clear_error(extra, message, capsys, tmp_path):
    assert main(RUN + ["--out", str(tmp_path)] + extra) == 2
    assert message in capsys.readouterr().err


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--methods", "ae", "--epoch", "3x"])
    assert exc.value.code == 2
    assert "--epoch" in capsys.readouterr().err


def test_ddp_two_processes_write_one_run(toy_root, tmp_path):
    """Lightning's DDP re-runs the command per device; rank 0 alone writes and evaluates."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark", *RUN, "--methods", "ae", "--data-root",
         str(toy_root), "--out", str(tmp_path), "--accelerator", "cpu", "--devices", "2",
         "--strategy", "ddp"],
        capture_output=True, text=True, cwd=repo, timeout=600, check=False,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
             "UAD_BENCH_CPU_SLOTS": "off"})  # conftest's rule: tests never wait for cores
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1, "both processes must write into the same run directory"
    rows = pd.read_csv(runs[0] / "per_volume.csv")
    assert len(rows) == len(rows.drop_duplicates(["volume", "threshold_source"]))


def test_epochs_override_every_stage_or_by_stage_name():
    from benchmark.cli import CliError
    from benchmark.cli.run import _epochs
    from benchmark.profiles import get_profile
    from benchmark.registry import get_method
    from benchmark.train import stage_epochs

    cddpm = get_method("cddpm").from_profile("smoke")
    quick = get_profile("quick")
    assert _epochs(None) is None and _epochs("7") == 7
    assert _epochs("main=100,pretrain=20") == {"main": 100, "pretrain": 20}
    assert stage_epochs(cddpm, "pretrain", quick, _epochs("main=100")) == 3  # quick's own
    assert stage_epochs(cddpm, "main", quick, _epochs("main=100")) == 100
    assert stage_epochs(cddpm, "pretrain", quick, 5) == 5
    for bad in ("x", "-1", "main=", "=3", "main=-2"):
        with pytest.raises(CliError, match="--epochs"):
            _epochs(bad)


def test_run_methods_all_is_every_registered_method(toy_root, tmp_path):
    from benchmark.cli import build_parser
    from benchmark.cli.run import run_config

    args = build_parser().parse_args(RUN + ["--methods", "all", "--data-root", str(toy_root),
                                            "--out", str(tmp_path)])
    assert run_config(args).methods == list_methods()
    args = build_parser().parse_args(RUN + ["--methods", "ae,thresh", "--data-root",
                                            str(toy_root), "--out", str(tmp_path)])
    assert run_config(args).methods == ["ae", "thresh"]
