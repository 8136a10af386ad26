"""kill -9 at the moments that matter, and two launches on one run (docs/failures.md).

A real smoke run (thresh: statistics only, two folds, so two parts) runs in a subprocess
that SIGKILLs itself at a chosen moment: no ``finally`` block, no atexit, exactly what a
kill -9 or an out-of-memory kill leaves. Afterwards every file at its final name must be
complete, the finished part intact, and ``--resume`` must finish the run with the numbers
of an uninterrupted one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--methods", "thresh",
       "--folds", "0,1"]
KEYS = ["fold", "dataset", "volume", "threshold_source"]

# Runs `python -m benchmark ARGS` with one fault injected (CRASH_AT), in the second part.
HARNESS = r'''
import os, signal, sys, time
from pathlib import Path
import numpy as np
from benchmark import cli, rundir, runner

moment = os.environ["CRASH_AT"]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if moment == "inside-part":  # half of the second part's first maps file is on disk
    real_savez = np.savez_compressed
    def savez(fh, **arrays):
        if "fold1" in str(getattr(fh, "name", "")):
            fh.write(b"PK\x03\x04 half a zip archive"); fh.flush(); die()
        real_savez(fh, **arrays)
    np.savez_compressed = savez
elif moment == "between-files":  # per_volume.csv written, per_dataset.csv and done.json not
    real_table = rundir.Part.write_table
    def write_table(self, name, frame):
        if self.fold == 1 and name == "per_dataset.csv":
            die()
        real_table(self, name, frame)
    rundir.Part.write_table = write_table
elif moment == "before-collect":  # the last part's done.json written, tables not rebuilt
    real_done = rundir.Part.mark_done
    def mark_done(self, *a, **k):
        real_done(self, *a, **k)
        if self.fold == 1:
            die()
    rundir.Part.mark_done = mark_done
elif moment == "hold":  # hold the run (lock taken, records written) until told to go on
    real_parts = runner._run_parts
    def run_parts(*a, **k):
        Path(os.environ["READY"]).touch()
        while not Path(os.environ["GO"]).exists():
            time.sleep(0.05)
        return real_parts(*a, **k)
    runner._run_parts = run_parts
sys.exit(cli.main(sys.argv[1:]))
'''


def _env(**extra: str) -> dict:
    return {"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"), "OMP_NUM_THREADS": "1",
            "UAD_BENCH_CPU_SLOTS": "off", **extra}  # as conftest: never wait for other jobs


def _launch(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HARNESS, *args], cwd=REPO, env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(thresh_run):
    """The uninterrupted run's per-volume rows."""
    return pd.read_csv(thresh_run / "per_volume.csv").sort_values(KEYS, ignore_index=True)


def _complete_files_only(run: Path) -> None:
    """Every file at its final name reads whole; only hidden *.tmp files may be partial."""
    for path in run.rglob("*"):
        if path.name.startswith("."):
            continue
        if path.suffix == ".npz":
            with np.load(path) as f:
                [f[k] for k in f.files]
        elif path.suffix == ".csv":
            pd.read_csv(path)


def _same_numbers(run: Path, reference: pd.DataFrame) -> None:
    rows = pd.read_csv(run / "per_volume.csv").sort_values(KEYS, ignore_index=True)
    assert not rows.duplicated(KEYS).any()
    cols = KEYS + ["auprc", "auroc", "dice", "threshold"]
    pd.testing.assert_frame_equal(rows[cols], reference[cols])


def test_kill_9_loses_nothing_and_resume_finishes(toy_root, tmp_path, reference):
    """Killed inside the second part (half a maps file written), then -- resumed -- between
    its files (per_volume.csv but not per_dataset.csv), then -- resumed again -- after its
    done.json but before the run-level tables; the last resume runs no part at all."""
    args = RUN + ["--data-root", str(toy_root), "--out", str(tmp_path), "--run-id", "r"]
    run = RunDir(tmp_path / "r")
    first, second = run.part("thresh", "t2", 0), run.part("thresh", "t2", 1)
    done_before = None
    for moment in ("inside-part", "between-files", "before-collect"):
        proc = _launch(args + (["--resume"] if done_before else []), CRASH_AT=moment)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == -9, err[-2000:]
        assert first.is_done() and second.is_done() == (moment == "before-collect"), moment
        if moment == "inside-part":
            assert list(second.path.glob("maps/.*.tmp")), "the kill hit a maps file mid-write"
        _complete_files_only(run.path)
        # the run-level tables hold what was collected: the first part's rows only
        assert set(pd.read_csv(run.path / "per_volume.csv")["fold"]) == {0}, moment
        done_before = done_before or first.done_path.stat().st_mtime_ns
        assert first.done_path.stat().st_mtime_ns == done_before, "a finished part is redone"
    assert main(args + ["--resume"]) == 0
    _same_numbers(run.path, reference)
    assert not list(second.path.rglob(".*.tmp")), "the killed attempts' leftovers are cleared"


def test_a_second_launch_is_refused_then_waits(toy_root, tmp_path, reference, capsys):
    args = RUN + ["--data-root", str(toy_root), "--out", str(tmp_path), "--run-id", "r"]
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = _launch(args, CRASH_AT="hold", READY=str(ready), GO=str(go))
    deadline = time.monotonic() + 300
    while not ready.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.1)
    # the first launch holds the run: a second is refused at once, naming it
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert f"run {tmp_path / 'r'} is in use by pid {first.pid}" in err and "--wait" in err
    # --wait: starts when the first finishes, skips its parts, rebuilds the tables
    threading.Timer(1.0, go.touch).start()
    assert main(args + ["--resume", "--wait"]) == 0
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert "waiting: run" in capsys.readouterr().err
    _same_numbers(tmp_path / "r", reference)
