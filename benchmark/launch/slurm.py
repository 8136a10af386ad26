"""``--launcher slurm``: the parts as one Slurm job array (submitit's SlurmExecutor).

One array task per (method, sequence, fold), at most ``--max-parallel`` running at once
(``#SBATCH --array=0-N%P``); ``--partition``, ``--account``, ``--time-limit``,
``--cpus-per-part``, ``--mem-per-part``, ``--gpus-per-part`` and ``--sbatch KEY=VALUE``
become #SBATCH lines, ``--job-setup`` lines run before the job (module loads, a venv).
A part with several GPUs (``--gpus-per-part 1,cddpm=4``) is its own array with one task
per GPU: Lightning reads the ranks from Slurm (SLURM_PROCID, ...) and trains it with DDP,
rank 0 evaluates and writes. Parts with different resources go to different arrays.

The run directory must be on a filesystem every node sees (the jobs write their parts
there; submitit's pickles and logs go to ``<run>/launch/``). Submitit asks Slurm to signal
a job 90 s before its time limit; the job then requeues itself and continues from its
last epoch (``last-<stage>.ckpt``), at most three times for time limits (preemptions do
not count).

Without ``--detach`` the launcher waits, polling the scheduler (``sacct``, else
``squeue``) every UAD_BENCH_POLL_SECONDS (default 30) and printing each part as it ends.
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable

import submitit

from ..rundir import Part, RunDir
from . import LaunchError, LaunchOptions, report_line
from .job import PartJob, now
from .status import run_status

DEFAULT_TIME_MIN = 24 * 60   # submitit's own default is 5 minutes


def executor_parameters(run: RunDir, opts: LaunchOptions, gpus: int) -> dict:
    """submitit SlurmExecutor parameters for parts with ``gpus`` GPUs each."""
    params: dict = {
        "job_name": f"uad-{run.path.name}", "time": opts.time_limit_min or DEFAULT_TIME_MIN,
        "ntasks_per_node": max(1, gpus), "nodes": 1,
        "setup": ["export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
                  "export MKL_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}", *opts.setup],
    }
    if gpus:
        params["gpus_per_node"] = gpus
    if opts.cpus_per_part:
        params["cpus_per_task"] = opts.cpus_per_part
    if opts.mem_per_part:
        params["mem"] = opts.mem_per_part
    if opts.partition:
        params["partition"] = opts.partition
    if opts.account:
        params["account"] = opts.account
    if opts.max_parallel:
        params["array_parallelism"] = opts.max_parallel
    if opts.sbatch:
        params["additional_parameters"] = dict(opts.sbatch)
    return params


def make_executor(run: RunDir, opts: LaunchOptions, gpus: int) -> submitit.SlurmExecutor:
    try:
        executor = submitit.SlurmExecutor(folder=run.launch_dir / "%j")
    except RuntimeError as exc:  # no srun here
        raise LaunchError(f"--launcher slurm: {exc} (submit from a machine of the cluster, "
                          "e.g. its login node)") from None
    try:
        executor.update_parameters(**executor_parameters(run, opts, gpus))
    except ValueError as exc:
        raise LaunchError(f"--launcher slurm: {str(exc).splitlines()[0]}") from None
    return executor


def submit_slurm(cfg, parts: list[Part], opts: LaunchOptions,
                 say: Callable[[str], None]) -> list[str]:
    """Submit ``parts`` (one array per GPU count); returns the job ids."""
    run = RunDir(cfg.run_dir)
    groups: dict[int, list[Part]] = defaultdict(list)
    for part in parts:
        groups[opts.gpus_for(part.method) or 0].append(part)
    ids: list[str] = []
    for gpus, group in sorted(groups.items()):
        executor = make_executor(run, opts, gpus)
        try:
            with executor.batch():
                jobs = [executor.submit(PartJob(), cfg, p.method, p.sequence, p.fold, gpus,
                                        opts.cpus_per_part) for p in group]
        except (submitit.core.utils.FailedJobError, OSError) as exc:
            lines = [x for x in str(exc).splitlines() if x.strip()]
            raise LaunchError("sbatch refused the job: " + (lines[-1] if lines else repr(exc))
                              + f" (submission file under {run.launch_dir})") from None
        for part, job in zip(group, jobs):
            part.path.mkdir(parents=True, exist_ok=True)
            part.update_submission(launcher="slurm", job_id=str(job.job_id),
                                   stdout=str(job.paths.stdout), stderr=str(job.paths.stderr),
                                   submitted=now(), gpus=gpus)
            ids.append(str(job.job_id))
        array = str(jobs[0].job_id).split("_")[0]
        say(f"slurm: submitted {len(group)} part(s) as job {array}"
            + (f" ({gpus} GPU(s) each)" if gpus else ""))
    return ids


def poll_seconds() -> float:
    return float(os.environ.get("UAD_BENCH_POLL_SECONDS", "30"))


def wait_slurm(run: RunDir, parts: list[Part], opts: LaunchOptions,
               say: Callable[[str], None]) -> None:
    """Wait until no part is queued or running, printing each part as it ends."""
    import time

    reported: set[str] = set()
    try:
        while True:
            rows = run_status(run, parts)
            for row in rows:
                if row.state in ("done", "failed") and row.part not in reported:
                    reported.add(row.part)
                    say(report_line(row, len(reported), len(parts)))
            if all(r.state in ("done", "failed") for r in rows):
                return
            time.sleep(poll_seconds())
    except KeyboardInterrupt:
        say(f"\nstopped waiting; the jobs keep running. Follow them with: python -m "
            f"benchmark status {run.path} (cancel with scancel)")
        raise
