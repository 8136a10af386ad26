"""Launchers (issue 15): parts as parallel jobs on this machine and on a real one-node Slurm,
`status` on real job states, requeue with resume from the last epoch, `plan`'s estimates.

The end-to-end tests run the command line in a subprocess (as a user would) on the toy
data, smoke profile, and compare every per-volume number with the in-process run
(fixture smoke_run). The Slurm test starts munged/slurmctld/slurmd on this machine with
tools/slurm-localhost.sh and skips, saying why, where that cannot work (not root, Slurm
not installed, daemons that do not start).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_run_config

from benchmark.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress"]  # = smoke_run's
NUMBERS = ["method", "dataset", "volume", "threshold_source", "auprc", "auroc", "dice",
           "threshold"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _record(part: Path, name: str = "job.json") -> dict:
    try:
        return json.loads((part / name).read_text())
    except (OSError, ValueError):  # not written yet
        return {}


def _wait_for(condition, timeout: float = 600, poll: float = 0.02, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(poll)


class _Meanwhile(threading.Thread):
    """Do something to a job while the launcher (main(), in this process) waits for it."""

    def __init__(self, action) -> None:
        super().__init__(daemon=True)
        self.action, self.error = action, None
        self.start()

    def run(self) -> None:
        try:
            self.action()
        except Exception as exc:  # noqa: BLE001 (re-raised in the test by check())
            self.error = exc

    def check(self) -> None:
        self.join(timeout=60)
        if self.error is not None:
            raise self.error


def _numbers(run: Path, method: str | None = None) -> pd.DataFrame:
    rows = pd.read_csv(run / "per_volume.csv")
    if method is not None:
        rows = rows[rows["method"] == method]
    return rows[NUMBERS].sort_values(NUMBERS[:4]).reset_index(drop=True)


def _threads() -> list[str]:
    """--cpus-per-part as many threads as this process (= smoke_run's) has: torch's CPU
    kernels sum in an order that depends on the thread count, so jobs with other thread
    counts differ from the in-process numbers in the 4th digit."""
    import torch

    return ["--cpus-per-part", str(torch.get_num_threads())]


def _status(run: Path, capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["status", str(run), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {r["part"]: r for r in rows}


# ---------------------------------------------------------------------------- local
def test_local_launcher_runs_parts_in_parallel_with_the_inprocess_numbers_and_redoes_a_killed_one(
        smoke_run, toy_root, tmp_path, capsys):
    args = RUN + ["--methods", "thresh,ae", "--data-root", str(toy_root), "--out", str(tmp_path),
                  "--run-id", "loc", "--launcher", "local", "--max-parallel", "2", *_threads()]
    run = tmp_path / "loc"
    ae, thresh = run / "ae/t2/fold0", run / "thresh/t2/fold0"

    def kill_ae() -> None:  # as the OOM killer or a lost node would
        _wait_for(lambda: _record(ae).get("state") == "running", what="ae's job to start")
        os.kill(_record(ae)["pid"], signal.SIGKILL)

    killer = _Meanwhile(kill_ae)
    assert main(args) == 1
    killer.check()
    out = capsys.readouterr().out
    assert "2 at a time" in out and "failed ae/t2/fold0" in out and "--resume" in out
    # side by side: ae's job started before thresh's ended (one at a time, it would wait)
    assert _record(ae)["started"] < _record(thresh)["finished"]
    assert _record(thresh, "submission.json")["job_id"] != _record(ae, "submission.json")["job_id"]

    status = _status(run, capsys)
    assert status["thresh/t2/fold0"]["state"] == "done"
    failed = status["ae/t2/fold0"]
    assert failed["state"] == "failed" and "ended without a result" in failed["error"]
    assert failed["job_id"] == _record(ae, "submission.json")["job_id"]
    assert failed["log"].endswith("_log.err") and Path(failed["log"]).is_file()
    pd.testing.assert_frame_equal(_numbers(run, "thresh"), _numbers(smoke_run, "thresh"))

    stamp = (thresh / "done.json").stat().st_mtime_ns
    assert main(args + ["--resume"]) == 0
    assert "[1/1] done   ae/t2/fold0" in capsys.readouterr().out
    assert (thresh / "done.json").stat().st_mtime_ns == stamp, "a finished part was redone"
    assert {r["state"] for r in _status(run, capsys).values()} == {"done"}
    # every number of both parts, as the in-process run has them
    pd.testing.assert_frame_equal(_numbers(run), _numbers(smoke_run))


def test_a_preempted_job_is_requeued_and_resumes_from_its_last_epoch(toy_root, tmp_path):
    """USR2 is what Slurm sends before a time limit (submitit's --signal=USR2@90) and what
    submitit's local executor sends at its timeout: the job checkpoints, is started again
    and continues from last-main.ckpt instead of from epoch 0."""
    epochs = 12
    part = tmp_path / "rq/ae/t2/fold0"

    def preempt() -> None:
        _wait_for(lambda: _record(part).get("state") == "running", what="the job to start")
        pid = _record(part)["pid"]
        _wait_for(lambda: (part / "last-main.ckpt").is_file(), poll=0.002,
                  what="the first epoch's last-main.ckpt")
        os.kill(pid, signal.SIGUSR2)

    signaller = _Meanwhile(preempt)
    assert main(RUN + ["--methods", "ae", "--epochs", str(epochs), "--data-root", str(toy_root),
                       "--out", str(tmp_path), "--run-id", "rq", "--launcher", "local"]) == 0
    signaller.check()
    done = json.loads((part / "done.json").read_text())
    job = _record(part)
    assert job["attempt"] == 2 and job["resume_from"] == ["last-main.ckpt"], job
    assert 1 <= done["resumed_from"]["main"] < epochs, done.get("resumed_from")
    assert done["epochs"] == epochs
    assert not list(part.glob("last-*.ckpt")), "a finished part keeps weights only"
    log = Path(_record(part, "submission.json")["stderr"]).read_text()
    assert "Caught signal SIGUSR2" in log and "Restored all states" in log


def test_fit_continues_a_stage_from_its_last_checkpoint(toy_root, tmp_path):
    import torch

    from benchmark.data.module import BenchmarkDataModule, DataConfig
    from benchmark.profiles import get_profile
    from benchmark.registry import get_method
    from benchmark.rundir import RunDir
    from benchmark.train import TrainerOptions, fit

    def train(epochs: int):
        method = get_method("ae").from_profile("smoke")
        data = BenchmarkDataModule(DataConfig(root=toy_root, sequence="t2", fold=0, batch_size=4,
                                              max_train_volumes=8, val_slices=2))
        return fit(method, data, part, get_profile("smoke"),
                   TrainerOptions(epochs=epochs, progress=False))

    part = RunDir(tmp_path / "r").part("ae", "t2", 0)
    assert train(2).resumed_from == {}
    steps = get_profile("smoke").limit_train_batches  # optimiser steps per epoch
    state = torch.load(part.path / "last-main.ckpt", weights_only=False)
    assert state["global_step"] == 2 * steps and "optimizer_states" in state
    assert train(3).resumed_from == {"main": 2}  # one more epoch, not three
    # the first attempt's logs stay; the resumed stage logs beside them
    assert (part.path / "logs/main/metrics.csv").is_file()
    assert (part.path / "logs/main-resumed1/metrics.csv").is_file()
    state = torch.load(part.path / "last-main.ckpt", weights_only=False)
    assert state["global_step"] == 3 * steps
    # the training time counts the first attempt's two epochs too (done.json's train_seconds)
    timer = next(v for k, v in state["callbacks"].items() if "EpochTimer" in k)
    assert timer["stage"] == "main" and len(timer["durations"]) == 3
    result = train(3)  # everything done before the "interruption": no epoch trained
    assert result.train_seconds >= sum(timer["durations"])
    assert result.seconds_per_epoch == pytest.approx(sum(timer["durations"]) / 3)
    assert result.resumed_from == {"main": 3} and result.checkpoint.name == "best-main.ckpt"
    assert part.resume_checkpoints() == [part.path / "last-main.ckpt"]
    part.mark_done(result.checkpoint, {})
    assert part.resume_checkpoints() == [] and (part.path / "best-main.ckpt").is_file()


class _Payload:
    """A crafted resume state: unpickling it runs os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_resume_state_is_refused_without_running_code(toy_root, tmp_path):
    import torch

    from benchmark.checkpoint import UnsafeCheckpointError
    from benchmark.data.module import BenchmarkDataModule, DataConfig
    from benchmark.profiles import get_profile
    from benchmark.registry import get_method
    from benchmark.rundir import RunDir
    from benchmark.train import TrainerOptions, fit

    part = RunDir(tmp_path / "r").part("ae", "t2", 0)
    part.path.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"epoch": 0, "global_step": 0, "x": _Payload(marker)}, part.path / "last-main.ckpt")
    method = get_method("ae").from_profile("smoke")
    data = BenchmarkDataModule(DataConfig(root=toy_root, sequence="t2", fold=0, batch_size=4,
                                          max_train_volumes=8, val_slices=2))
    with pytest.raises(UnsafeCheckpointError, match="last-main.ckpt: refused"):
        fit(method, data, part, get_profile("smoke"), TrainerOptions(epochs=1, progress=False))
    assert not marker.exists(), "a resume state must never run code"


# ---------------------------------------------------------------------------- slurm
@pytest.fixture(scope="session")
def slurm():
    """A one-node Slurm on this machine (tools/slurm-localhost.sh): {"SLURM_CONF": path}."""
    script = REPO / "tools" / "slurm-localhost.sh"
    if os.geteuid() != 0:
        pytest.skip("the local Slurm needs root (slurmd starts jobs as their owner)")
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo")
               if shutil.which(c) is None]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install "
                    "slurmctld slurmd slurm-client munge (.ci/run does)")
    was_running = subprocess.run([str(script), "status"], capture_output=True, check=False).returncode == 0
    started = subprocess.run([str(script), "start"], capture_output=True, text=True,
                             timeout=180, check=False)
    if started.returncode != 0:
        pytest.skip(f"Slurm did not start here: {(started.stderr or started.stdout).strip()[-600:]}")
    conf = subprocess.run([str(script), "env"], capture_output=True, text=True,
                          check=False).stdout
    yield {"SLURM_CONF": conf.strip().split("=", 1)[1]}
    if not was_running:
        subprocess.run([str(script), "stop"], capture_output=True, timeout=120, check=False)


def test_slurm_launcher_runs_a_job_array_that_status_follows_and_resume_completes(
        slurm, smoke_run, toy_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])  # for sbatch, squeue, sacct
    monkeypatch.setenv("UAD_BENCH_POLL_SECONDS", "1")
    args = RUN + ["--methods", "thresh,ae", "--data-root", str(toy_root), "--out", str(tmp_path),
                  "--run-id", "sl", "--launcher", "slurm", *_threads(), "--time-limit", "20",
                  "--max-parallel", "1"]
    run = tmp_path / "sl"
    assert main(args + ["--detach"]) == 0
    out = capsys.readouterr().out
    assert "submitted 2 part(s) as job" in out and "benchmark status" in out, out
    ids = {p: _record(run / p / "t2/fold0", "submission.json")["job_id"] for p in ("thresh", "ae")}
    array = ids["thresh"].split("_")[0]
    assert sorted(ids.values()) == [f"{array}_0", f"{array}_1"]  # one array, one task a part
    sbatch = next((run / "launch").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%1" in sbatch and "#SBATCH --time=20" in sbatch
    assert f"#SBATCH --cpus-per-task={_threads()[1]}" in sbatch

    # one task at a time (%1): ae waits in Slurm's queue while thresh is up
    status = _status(run, capsys)
    assert status["ae/t2/fold0"]["state"] == "pending", status
    assert status["ae/t2/fold0"]["scheduler_state"] == "PENDING"
    assert status["thresh/t2/fold0"]["scheduler_state"] in ("PENDING", "RUNNING", "CONFIGURING")
    # thresh's process dies (as by the OOM killer): Slurm marks the task FAILED
    thresh = run / "thresh/t2/fold0"
    _wait_for(lambda: _record(thresh).get("state") == "running", poll=0.05,
              what="thresh's task to start")
    os.kill(_record(thresh)["pid"], signal.SIGKILL)
    _wait_for(lambda: all(s["state"] in ("done", "failed")
                          for s in _status(run, capsys).values()), poll=1, timeout=300,
              what="both array tasks to end")
    status = _status(run, capsys)
    assert status["ae/t2/fold0"]["state"] == "done"
    assert status["thresh/t2/fold0"]["state"] == "failed"
    assert status["thresh/t2/fold0"]["scheduler_state"] == "FAILED"
    assert "ended without a result" in status["thresh/t2/fold0"]["error"]
    pd.testing.assert_frame_equal(_numbers(run, "ae"), _numbers(smoke_run, "ae"))

    # --resume submits thresh alone, waits for it and rebuilds the run's tables
    assert main(args + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert "submitted 1 part(s)" in out and "[1/1] done   thresh/t2/fold0" in out, out
    assert _record(run / "thresh/t2/fold0", "submission.json")["job_id"].split("_")[0] != array
    assert {s["state"] for s in _status(run, capsys).values()} == {"done"}
    pd.testing.assert_frame_equal(_numbers(run), _numbers(smoke_run))


def test_status_reports_a_part_that_an_in_process_run_holds_as_running(tmp_path):
    """`benchmark run` keeps no job records: its parts are running while it holds their
    claim, and pending again once the claim is released or its holder is dead."""
    from benchmark.launch.status import part_status
    from benchmark.rundir import RunDir

    part = RunDir(tmp_path / "r").part("ae", "t2", 0)
    assert part_status(part).state == "pending"
    with part.claim():
        held = part_status(part)
        assert held.state == "running", held
        assert held.log and "pytest" in held.log  # the holder's command line
        assert held.elapsed is not None and held.elapsed < 60
    assert part_status(part).state == "pending"
    # a holder killed with -9 leaves its record; its dead pid makes the part pending
    dead = subprocess.Popen(["true"])
    dead.wait()
    (part.path / ".claim.json").write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00"}))
    assert part_status(part).state == "pending"


def test_a_launch_leaves_a_part_that_another_process_is_running_alone(toy_root, tmp_path,
                                                                       capsys):
    """A part that an in-process `run` holds is neither submitted again nor called failed."""
    from benchmark.rundir import RunDir

    part = RunDir(tmp_path / "r").part("thresh", "t2", 0)
    with part.claim():
        assert main(RUN + ["--methods", "thresh", "--data-root", str(toy_root), "--out",
                           str(tmp_path), "--run-id", "r", "--launcher", "local"]) == 1
        out = capsys.readouterr().out
        assert "running in another process, not submitted: thresh/t2/fold0" in out, out
        assert "0 done, 1 running, 0 pending, 0 failed" in out, out
        assert not part.submission_path.exists() and not part.job_path.exists()


# ---------------------------------------------------------------------------- options
def test_sbatch_lines_for_partition_account_time_memory_extra_lines_and_a_multi_gpu_part(
        tmp_path, monkeypatch):
    from submitit.slurm.slurm import _make_sbatch_string

    from benchmark.launch import options_from_args
    from benchmark.launch.slurm import executor_parameters
    from benchmark.rundir import RunDir

    args = build_parser().parse_args([
        "run", "--methods", "ae,cddpm", "--launcher", "slurm", "--partition", "gpu",
        "--account", "lab", "--time-limit", "2-00:00:00", "--mem-per-part", "32G",
        "--cpus-per-part", "8", "--gpus-per-part", "1,cddpm=4", "--max-parallel", "3",
        "--sbatch", "qos=high", "--sbatch", "exclusive", "--job-setup", "module load cuda"])
    # options_from_args refuses --launcher slurm where no sbatch is on PATH; this test only
    # writes the sbatch script, so a stand-in is enough (on machines without Slurm too)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    opts = options_from_args(args)
    assert (opts.gpus_for("ae"), opts.gpus_for("cddpm"), opts.time_limit_min) == (1, 4, 2880)
    run = RunDir(tmp_path / "r")
    text = _make_sbatch_string(command="python -m submitit.core._submit X",
                               folder=run.launch_dir / "%j", map_count=10,
                               **executor_parameters(run, opts, gpus=4))
    for line in ("--partition=gpu", "--account=lab", "--time=2880", "--mem=32G",
                 "--cpus-per-task=8", "--gpus-per-node=4", "--ntasks-per-node=4",
                 "--array=0-9%3", "--qos=high", "--exclusive", "--nodes=1"):
        assert f"#SBATCH {line}\n" in text, line
    assert "\nmodule load cuda\n" in text
    assert "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}" in text


@pytest.mark.parametrize("extra, message", [
    (["--launcher", "local", "--partition", "gpu"], "--partition: only with --launcher slurm"),
    (["--max-parallel", "2"], "--max-parallel: only with --launcher local or slurm"),
    (["--launcher", "slurm", "--time-limit", "soon"], "--time-limit 'soon'"),
    (["--launcher", "slurm", "--gpus-per-part", "cddpm=x"], "--gpus-per-part 'cddpm=x'"),
    (["--launcher", "local", "--max-parallel", "0"], "--max-parallel 0"),
])
def test_bad_launcher_flags_are_clear_errors(extra, message, capsys, tmp_path):
    assert main(RUN + ["--methods", "ae", "--out", str(tmp_path)] + extra) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing is written before the flags are checked"


def test_local_slots_one_gpu_each_in_turn_or_an_even_cpu_share(monkeypatch):
    from benchmark.cpu import cpu_count
    from benchmark.launch import LaunchError, LaunchOptions
    from benchmark.launch.local import slots

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the GPUs this launcher may hand out
    three = slots(LaunchOptions("local", max_parallel=3), ["ae"])
    assert [s.gpus for s in three] == [("2",), ("3",), ("2",)]
    assert three[0].environment()["CUDA_VISIBLE_DEVICES"] == "2"
    assert all(s.threads == max(1, cpu_count() // 3) for s in three)
    assert [s.gpus for s in slots(LaunchOptions("local"), ["ae"])] == [("2",), ("3",)]
    cpu = slots(LaunchOptions("local", max_parallel=2, gpus_per_part=0, cpus_per_part=3), ["ae"])
    assert [(s.gpus, s.threads) for s in cpu] == [((), 3), ((), 3)]
    assert cpu[0].environment()["OMP_NUM_THREADS"] == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert [s.gpus for s in slots(LaunchOptions("local", max_parallel=2), ["ae"])] == [(), ()]
    # without GPUs: one single-thread part per core by default (as memory allows)
    monkeypatch.setattr("benchmark.launch.local.cpu_count", lambda: 4)
    monkeypatch.setattr("benchmark.launch.local._parts_in_memory", lambda: 8)
    assert [(s.gpus, s.threads) for s in slots(LaunchOptions("local"), ["ae"])] == [((), 1)] * 4
    monkeypatch.setattr("benchmark.launch.local._parts_in_memory", lambda: 2)
    assert [(s.gpus, s.threads) for s in slots(LaunchOptions("local"), ["ae"])] == [((), 2)] * 2
    with pytest.raises(LaunchError, match="needs --launcher slurm"):
        slots(LaunchOptions("local", gpus_by_method={"cddpm": 2}), ["ae", "cddpm"])


def test_slurm_launcher_without_slurm_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no sbatch anywhere
    assert main(RUN + ["--methods", "ae", "--out", str(tmp_path / "runs"), "--launcher",
                       "slurm"]) == 2
    assert "no sbatch on this machine" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_time_limits_in_slurm_formats():
    from benchmark.launch import parse_time

    assert [parse_time(t) for t in ("90", "90:30", "12:00:00", "1-0", "1-12:30", "2-00:00:00")] \
        == [90, 91, 720, 1440, 2190, 2880]


# ---------------------------------------------------------------------------- plan
def _timing_run(path: Path, data_root: Path, profile: str, device: str = "cuda") -> Path:
    from benchmark.profiles import get_profile

    write_run_config(path, data_root, methods=["ae"], profile=get_profile(profile), folds=[0])
    pd.DataFrame([{"method": "ae", "fold": 0, "sequence": "t2", "device": device,
                   "hardware": "Test GPU", "train_seconds_per_epoch": 36.0,
                   "infer_seconds_per_volume": 30.0}]).to_csv(path / "timings.csv", index=False)
    return path


def test_plan_estimates_from_measured_timings(toy_root, tmp_path, capsys):
    calib = _timing_run(tmp_path / "calib", toy_root, "smoke")
    other = _timing_run(tmp_path / "other", toy_root, "quick")
    assert main(["plan", "--profile", "smoke", "--methods", "ae,vae", "--sequences", "t2",
                 "--folds", "0,1", "--epochs", "10", "--data-root", str(toy_root), "--parts",
                 "--timings", str(calib), str(other)]) == 0
    out = capsys.readouterr().out
    # toy data, smoke caps: 8 training volumes (as measured: no scaling); 12 volumes inferred
    # (IXI test 2 + val 2, Brats21 and MSLUB val 2 + test 2); ae: 10 epochs x 36 s + 12 x 30 s
    # = 720 s = 0.2 h a part, two folds
    assert "ae/t2/fold0  0.20 h" in out and "ae/t2/fold1  0.20 h" in out
    assert "vae/t2/fold0  no estimate" in out
    assert "total: 0.4 GPU-hours on Test GPU (cuda)" in out
    assert "no estimate for: vae" in out and f"timings.csv of {calib}" in out
    assert "profile 'quick', not 'smoke': not used" in out


def test_plan_scales_epoch_time_by_training_volumes_and_uses_reference_figures():
    from benchmark.launch.plan import Counts, Figure, plan_parts
    from benchmark.profiles import get_profile
    from benchmark.runconfig import RunConfig

    def counts(sequence, fold):
        return Counts(train=16, val=4, evaluation=10, source="test")

    def config(method, profile, **kw):
        return RunConfig(methods=[method], profile=get_profile(profile), data_root=Path(),
                         run_dir=Path(), sequences=["t2"], folds=[0], **kw)

    figure = Figure(seconds_per_epoch=10.0, seconds_per_volume=36.0, hardware="H",
                    source="S", train_volumes=8)
    [part] = plan_parts(config("ae", "smoke"), counts, {("ae", "t2"): figure},
                        epochs_override=18)
    # twice the training volumes of the measured run: twice the seconds per epoch
    assert part.train_hours == pytest.approx(18 * 10.0 * 2 / 3600)
    assert part.infer_hours == pytest.approx(10 * 36.0 / 3600)
    [ddpm] = plan_parts(config("ddpm", "paper"), counts, {}, epochs_override=100)
    # README's CPU figures: 0.2 training slices/s, 75 s per volume; one slice per volume
    assert ddpm.train_hours == pytest.approx(100 * 16 / 0.2 / 3600)
    assert ddpm.infer_hours == pytest.approx(10 * 75 / 3600) and "cpu" in ddpm.hardware
    # stages and epochs come from the method's class and hyperparameters, no network built
    [cddpm] = plan_parts(config("cddpm", "paper"), counts, {})
    assert cddpm.epochs == {"pretrain": 1200, "main": 1200}
    [cddpm] = plan_parts(config("cddpm", "paper", overrides={"cddpm": {"pretrain": "false"}}),
                         counts, {})
    assert cddpm.epochs == {"main": 1200}
