"""``python -m benchmark status RUN``: one line per part: done / running / pending / failed.

    part                state    job       elapsed  log / error
    ae/t2/fold0         done     4711_0    0:03:12  runs/r/launch/4711_0/4711_0_0_log.err
    cddpm/t2/fold0      running  4711_1    1:02:40  runs/r/launch/4711_1/4711_1_0_log.err
    pddpm/t2/fold0      failed   4711_2    0:00:41  RuntimeError: CUDA out of memory ...

A part is done when its done.json exists. Otherwise the state comes from the records a
launcher and its job leave in the part (submission.json, job.json; see
:mod:`benchmark.launch.job`) and from the scheduler: Slurm's ``sacct`` where the cluster
keeps accounting, else ``squeue`` (which knows finished jobs for MinJobAge seconds); for
the local launcher, whether the job's process is alive. A job that ended without done.json
is failed; its error line is the job's own record of the exception, else the last line of
its log, else the scheduler's state (TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL).
A part without job records (run in-process by ``benchmark run``) is running while a live
process holds its claim (the claim's record names the process), else pending.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..rundir import Part, RunDir

PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                  "RESIZING", "SUSPENDED", "STOPPED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"}
UNKNOWN_GRACE_S = 60  # a job id Slurm does not list this long after sbatch is gone


@dataclass
class PartStatus:
    part: str                 # method/sequence/fold<k>
    state: str                # done | running | pending | failed
    job_id: str | None = None
    launcher: str | None = None
    log: str | None = None
    elapsed: float | None = None   # seconds
    error: str | None = None
    scheduler_state: str | None = None

    def line(self, widths: tuple[int, ...]) -> str:
        detail = self.error if self.state == "failed" and self.error else (self.log or "")
        cells = (self.part, self.state, self.job_id or "-", _clock(self.elapsed), detail)
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths + (0,))).rstrip()


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{h}:{m:02d}:{s:02d}"


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _elapsed(job: dict, running: bool) -> float | None:
    start = _time(job.get("started"))
    if start is None:
        return None
    end = datetime.now(timezone.utc) if running else _time(job.get("finished"))
    return None if end is None else max(0.0, (end - start).total_seconds())


# ---------------------------------------------------------------------------- scheduler
def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def slurm_states(job_ids: list[str]) -> dict[str, str] | None:
    """{job id: Slurm state} for the ids Slurm still knows (array tasks as ``A_i``); None
    when Slurm could not be asked at all.

    sacct first (every job the accounting database keeps), then squeue for what sacct did
    not give (a cluster without accounting, or a job too recent for it).
    """
    ids = sorted({j for j in job_ids if j})
    if not ids:
        return {}
    states: dict[str, str] = {}
    roots = sorted({j.split("_")[0] for j in ids})
    acct = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(roots)])
    for line in (acct or "").splitlines():
        job, _, state = line.partition("|")
        if job.strip() and "." not in job:
            states[job.strip()] = state.split()[0] if state.strip() else "UNKNOWN"
    missing = [j for j in ids if j not in states]
    queue = None
    if missing:
        queue = _run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T",
                      "-j", ",".join(sorted({j.split("_")[0] for j in missing}))])
        for line in (queue or "").splitlines():
            job, _, state = line.partition("|")
            if job.strip():
                states[job.strip()] = state.strip()
    if acct is None and queue is None and missing:
        return None
    return states


def _pid_alive(pid: int | None, host: str | None) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (can't tell)."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has finished
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def last_error_line(log: str | None) -> str | None:
    """The last line of a job's log that says what went wrong (a traceback's last line,
    else the last non-empty line)."""
    if not log or not Path(log).is_file():
        return None
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = [x.strip() for x in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return None
    lines = [x for x in lines if x]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt", "Exit")) or line.startswith(
                ("slurmstepd: error", "srun: error", "Killed")):
            return line
    return lines[-1] if lines else None


# ---------------------------------------------------------------------------- parts
def planned_parts(run: RunDir) -> list[Part]:
    """The run's parts from config.json (methods x sequences x folds), then any other part
    directory found in the run."""
    config = run.run_config()
    parts = [run.part(m, s, f) for m in config.methods for s in config.sequences
             for f in config.fold_list()]
    seen = set(parts)
    return parts + [p for p in run.parts(done=False) if p not in seen]


def part_status(part: Part, scheduler: dict[str, str] | None = None) -> PartStatus:
    """Where one part stands. scheduler: Slurm's states by job id (None: Slurm could not
    be asked; the job's own record decides then)."""
    sub, job = part.submission(), part.job()
    name = f"{part.method}/{part.sequence}/fold{part.fold}"
    job_id = sub.get("job_id") or job.get("job_id")
    launcher = sub.get("launcher")
    log = sub.get("stderr") or sub.get("stdout")
    out = PartStatus(name, "pending", job_id, launcher, log)
    if part.is_done():
        out.state = "done"
        out.elapsed = _elapsed(job, running=False)  # none for an in-process part
        return out
    if not sub and not job:
        # never submitted, or run in-process (no job records): running while a live
        # process holds the part's claim (`benchmark run`, or another process's)
        holder = part.claim_holder()
        if holder and _pid_alive(holder.get("pid"), holder.get("host")) is not False:
            out.state = "running"
            out.log = holder.get("command") or None
            out.elapsed = _elapsed({"started": holder.get("since")}, running=True)
        return out
    reported = job.get("state")   # running | interrupted | failed | done (then done.json)
    sched = None
    if launcher == "slurm":
        if scheduler is None:     # Slurm did not answer: trust the job's record
            out.state = {"running": "running", "failed": "failed"}.get(reported, "pending")
        else:
            sched = scheduler.get(str(job_id))
            if sched in PENDING_STATES:
                out.state = "pending"
            elif reported == "failed":
                out.state = "failed"
            elif sched in RUNNING_STATES:
                out.state = "running"
            elif sched is None:
                # unknown to Slurm: forgotten (MinJobAge, and no accounting to ask) or
                # cancelled before it started; sbatch returns once the job is registered,
                # so only a job submitted moments ago may be missing
                submitted = _time(sub.get("submitted"))
                recent = submitted is not None and (
                    datetime.now(timezone.utc) - submitted).total_seconds() < UNKNOWN_GRACE_S
                out.state = "pending" if not job and recent else "failed"
            else:
                out.state = "failed"
    else:  # local: is the job's process or its controller (which restarts a requeued job
        # and ends with it) alive?
        task = _pid_alive(job.get("pid"), job.get("host")) if job else False
        controller = _pid_alive(sub.get("pid"), sub.get("host")) if sub else False
        if reported == "failed":
            out.state = "failed"
        elif task or controller or (None in (task, controller) and reported == "running"):
            out.state = "running"
        else:
            out.state = "failed"
    out.scheduler_state = sched
    if out.state == "failed":
        last = last_error_line(log)
        if reported == "failed" and job.get("error"):
            out.error = job["error"]
        elif sched and sched not in ("FAILED", "COMPLETED"):
            out.error = f"job {sched}" + (f"; last log line: {last}" if last else "")
        elif launcher == "slurm" and scheduler is not None and sched is None and not job:
            out.error = (f"Slurm no longer knows job {job_id} and it never started "
                         "(cancelled while pending?)")
        else:
            out.error = ("the job ended without a result (killed? out of memory?)"
                         + (f"; last log line: {last}" if last else ""))
    out.elapsed = _elapsed(job, running=out.state == "running")
    return out


def run_status(run: RunDir, parts: list[Part] | None = None) -> list[PartStatus]:
    parts = planned_parts(run) if parts is None else parts
    subs = [p.submission() for p in parts]
    slurm_ids = [s.get("job_id") for s in subs if s.get("launcher") == "slurm"]
    scheduler = slurm_states(slurm_ids) if slurm_ids else {}
    return [part_status(p, scheduler) for p in parts]


def format_table(rows: list[PartStatus]) -> str:
    names = ("part", "state", "job", "elapsed")
    cells = [(r.part, r.state, r.job_id or "-", _clock(r.elapsed)) for r in rows]
    widths = tuple(max(len(str(c)) for c in col) for col in zip(names, *cells))
    lines = ["  ".join(h.ljust(w) for h, w in zip(names, widths)) + "  log / error"]
    lines += [r.line(widths) for r in rows]
    counts = {s: sum(r.state == s for r in rows) for s in ("done", "running", "pending", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" (of {len(rows)} parts)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory (runs/<run-id>)")
    p.add_argument("--json", action="store_true", help="one JSON object per part instead")


def main(args: argparse.Namespace) -> int:
    run = RunDir(args.run_dir)
    rows = run_status(run)
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
    else:
        print(format_table(rows))
    return 0
