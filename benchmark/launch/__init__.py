"""Launchers: where the parts of a run are trained.

``python -m benchmark run ... --launcher inprocess|local|slurm``

- ``inprocess`` (default): every (method, sequence, fold) part in turn in this process
  (:func:`benchmark.runner.run_benchmark`).
- ``local``: each part is a job on this machine, ``--max-parallel`` at a time, one GPU
  each where there are GPUs (CUDA_VISIBLE_DEVICES per job), else an even slice of the
  CPU threads each (:mod:`benchmark.launch.local`).
- ``slurm``: each part is a task of a Slurm job array (:mod:`benchmark.launch.slurm`).

Jobs are submitted through submitit, a well-kept engine for exactly this (a pickled call
per job, logs per job, requeue on time limit or preemption); no scheduler of our own. Every
job writes its own part directory exactly as the in-process loop does
(:class:`benchmark.launch.job.PartJob` calls :func:`benchmark.runner.run_part`), so
``evaluate``, ``leaderboard`` and ``--resume`` see no difference; each job rebuilds the
run-level tables when its part is done, and the launcher once more at the end.
``python -m benchmark status RUN`` shows where every part stands;
``run --resume`` submits again only the parts that are neither done nor queued/running.
"""
from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from ..rundir import Part, RunDir
from .status import PartStatus, format_table, run_status

LAUNCHERS = ("inprocess", "local", "slurm")


@dataclass
class LaunchOptions:
    launcher: str = "inprocess"
    max_parallel: int | None = None          # parts at a time (local slots / array %N)
    gpus_per_part: int | None = None         # None: 1 where there are GPUs (local), 0 (slurm)
    gpus_by_method: dict[str, int] = field(default_factory=dict)
    cpus_per_part: int | None = None         # threads per part (local) / --cpus-per-task
    mem_per_part: str | None = None          # Slurm --mem, e.g. 32G
    time_limit_min: int | None = None        # Slurm --time / local timeout, in minutes
    partition: str | None = None
    account: str | None = None
    sbatch: dict[str, str | bool] = field(default_factory=dict)  # extra #SBATCH lines
    setup: list[str] = field(default_factory=list)  # shell lines before each job
    detach: bool = False                     # slurm: submit and return

    def gpus_for(self, method: str) -> int | None:
        return self.gpus_by_method.get(method, self.gpus_per_part)


# ---------------------------------------------------------------------------- CLI
def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``run``'s launcher flags (docs/cluster.md)."""
    g = p.add_argument_group("launcher (docs/cluster.md)")
    g.add_argument("--launcher", default="inprocess", choices=LAUNCHERS,
                   help="inprocess: parts in turn in this process (default); local: parts as "
                        "parallel jobs on this machine; slurm: parts as a Slurm job array")
    g.add_argument("--max-parallel", type=int, default=None, metavar="N",
                   help="parts running at once (local default: one per GPU, else one per "
                        "CPU core with one thread each; slurm: the array's %%N limit, "
                        "default none)")
    g.add_argument("--gpus-per-part", default=None, metavar="N|N,METHOD=N",
                   help="GPUs per part, e.g. 1 or 1,cddpm=4 (several: DDP inside the part's "
                        "job, one task per GPU; slurm only). Default: 1 each where there are "
                        "GPUs (local), 0 (slurm)")
    g.add_argument("--cpus-per-part", type=int, default=None, metavar="N",
                   help="CPU threads per part (local default: the CPUs divided evenly; "
                        "slurm: --cpus-per-task)")
    g.add_argument("--mem-per-part", default=None, metavar="SIZE",
                   help="slurm --mem per part, e.g. 32G")
    g.add_argument("--time-limit", default=None, metavar="TIME",
                   help="per job: minutes or [D-]HH:MM[:SS] (slurm --time; a job that reaches "
                        "it is requeued and resumes from its last epoch)")
    g.add_argument("--partition", default=None, help="slurm partition")
    g.add_argument("--account", default=None, help="slurm account")
    g.add_argument("--sbatch", action="append", default=[], metavar="KEY[=VALUE]",
                   help="an extra #SBATCH --KEY=VALUE line (repeatable), e.g. qos=high, "
                        "constraint=a100, exclusive")
    g.add_argument("--job-setup", action="append", default=[], metavar="LINE",
                   help="a shell line run before each job (repeatable), e.g. 'module load "
                        "cuda/12.4' or 'source /path/venv/bin/activate'")
    g.add_argument("--detach", action="store_true",
                   help="slurm: submit and return (follow with `python -m benchmark status`)")


class LaunchError(ValueError):
    """A bad launcher flag or a failed submission: one line, exit status 2."""


def parse_time(text: str | None) -> int | None:
    """Slurm's time formats -> minutes: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if text is None:
        return None
    try:
        days, _, rest = text.partition("-") if "-" in text else ("0", "", text)
        fields = [int(x) for x in rest.split(":")]
        if "-" in text:  # D-H, D-H:M, D-H:M:S
            h, m, s = (fields + [0, 0])[:3]
        elif len(fields) == 1:
            h, m, s = 0, fields[0], 0
        elif len(fields) == 2:
            h, m, s = 0, fields[0], fields[1]
        elif len(fields) == 3:
            h, m, s = fields
        else:
            raise ValueError
        minutes = int(days) * 1440 + h * 60 + m + (1 if s else 0)
        if minutes <= 0 or min(fields) < 0:
            raise ValueError
        return minutes
    except ValueError:
        raise LaunchError(f"--time-limit {text!r}: expected minutes or [D-]HH:MM[:SS], "
                          "e.g. 90, 12:00:00 or 2-00:00:00") from None


def parse_gpus(text: str | None) -> tuple[int | None, dict[str, int]]:
    """``1`` or ``1,cddpm=4`` -> (default, {method: n})."""
    if text is None:
        return None, {}
    default, by_method = None, {}
    try:
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if sep:
                by_method[key.strip()] = int(value)
            else:
                default = int(key)
        if any(n < 0 for n in [*by_method.values(), default or 0]):
            raise ValueError
    except ValueError:
        raise LaunchError(f"--gpus-per-part {text!r}: expected N or N,METHOD=N,... "
                          "with N >= 0") from None
    return default, by_method


def options_from_args(args: argparse.Namespace) -> LaunchOptions:
    default, by_method = parse_gpus(args.gpus_per_part)
    sbatch: dict[str, str | bool] = {}
    for item in args.sbatch:
        key, sep, value = item.lstrip("-").partition("=")
        if not key:
            raise LaunchError(f"--sbatch {item!r}: expected KEY or KEY=VALUE, e.g. qos=high")
        sbatch[key] = value if sep else True
    for flag, value in (("--max-parallel", args.max_parallel),
                        ("--cpus-per-part", args.cpus_per_part)):
        if value is not None and value < 1:
            raise LaunchError(f"{flag} {value}: expected a positive number")
    opts = LaunchOptions(
        launcher=args.launcher, max_parallel=args.max_parallel, gpus_per_part=default,
        gpus_by_method=by_method, cpus_per_part=args.cpus_per_part,
        mem_per_part=args.mem_per_part, time_limit_min=parse_time(args.time_limit),
        partition=args.partition, account=args.account, sbatch=sbatch,
        setup=list(args.job_setup), detach=args.detach)
    slurm_only = {"--partition": args.partition, "--account": args.account,
                  "--mem-per-part": args.mem_per_part, "--sbatch": args.sbatch,
                  "--detach": args.detach}
    if opts.launcher == "slurm" and shutil.which("sbatch") is None:
        raise LaunchError("--launcher slurm: no sbatch on this machine; submit from a machine "
                          "of the cluster (its login node)")
    if opts.launcher != "slurm":
        used = [flag for flag, value in slurm_only.items() if value]
        if used:
            raise LaunchError(f"{', '.join(used)}: only with --launcher slurm")
    if opts.launcher == "inprocess":
        used = [flag for flag, value in (("--max-parallel", args.max_parallel),
                                         ("--gpus-per-part", args.gpus_per_part),
                                         ("--cpus-per-part", args.cpus_per_part),
                                         ("--time-limit", args.time_limit),
                                         ("--job-setup", args.job_setup)) if value]
        if used:
            raise LaunchError(f"{', '.join(used)}: only with --launcher local or slurm "
                              "(in-process: --devices/--strategy for one part's GPUs)")
    return opts


# ---------------------------------------------------------------------------- launching
def _say(text: str) -> None:
    print(text, flush=True)


def launch(cfg, opts: LaunchOptions, say: Callable[[str], None] = _say) -> int:
    """Run ``cfg``'s parts through ``opts.launcher``; 0 when every part is done (or, with
    --detach, submitted), 1 when some failed (``status`` says which and why)."""
    from ..runner import planned_parts, start_run

    run = RunDir(cfg.run_dir)
    with run.launch_lock(wait=cfg.wait):  # a second launch on this run is refused
        start_run(cfg)
        parts = planned_parts(cfg)
        before = {s.part: s for s in run_status(run, parts)}
        todo: list[Part] = []
        active: list[Part] = []
        elsewhere: list[Part] = []
        for part in parts:
            state = before[_name(part)].state
            if state == "done":
                continue
            if state in ("running", "pending") and before[_name(part)].job_id:
                active.append(part)  # queued or running from an earlier launch: leave it
                continue
            if state == "running":  # held by a process outside any launcher (`run`)
                elsewhere.append(part)
                continue
            todo.append(part)
        if active:
            say("already queued or running, not submitted again: "
                + ", ".join(_name(p) for p in active))
        for part in elsewhere:
            say(f"running in another process, not submitted: {_name(part)} "
                f"({before[_name(part)].log}); launch again with --resume once it ends")
        for part in todo:  # a new attempt: the old attempt's records go, its last-*.ckpt stay
            part.forget_job()
        if opts.launcher == "local":
            from .local import run_local

            run_local(cfg, todo, opts, say)
        elif opts.launcher == "slurm":
            from .slurm import submit_slurm, wait_slurm

            submit_slurm(cfg, todo, opts, say)
            if opts.detach:
                say(f"submitted {len(todo)} part(s); follow them with: "
                    f"python -m benchmark status {run.path}")
                return 0
            wait_slurm(run, todo + active, opts, say)
        else:
            raise LaunchError(f"unknown launcher {opts.launcher!r}; allowed: {', '.join(LAUNCHERS)}")
        run.collect()
        final = run_status(run, parts)
    failed = [s for s in final if s.state != "done"]
    if failed:
        say(format_table(failed))
        say(f"{len(failed)} of {len(final)} part(s) not done; details: python -m benchmark "
            f"status {run.path}; redo them with the same command and --resume")
        return 1
    return 0


def _name(part: Part) -> str:
    return f"{part.method}/{part.sequence}/fold{part.fold}"


def report_line(status: PartStatus, index: int, total: int) -> str:
    from .status import _clock

    detail = status.error if status.state == "failed" else ""
    log = f" (log: {status.log})" if status.state == "failed" and status.log else ""
    return (f"[{index}/{total}] {status.state:6s} {status.part}  {_clock(status.elapsed)}"
            f"{'  ' + detail if detail else ''}{log}")
