"""``--launcher local``: the parts as parallel jobs on this machine (submitit's LocalExecutor).

``--max-parallel N`` parts run at once, each in its own process with its own log files
under ``<run>/launch/<job-id>/``. With GPUs, each job sees one GPU (CUDA_VISIBLE_DEVICES;
with more jobs than GPUs they share them in turn); without, each job gets an even share of
the CPU threads (OMP/MKL/torch threads = CPUs // N, or --cpus-per-part; without GPUs N
defaults to one part per core, within memory). The launcher
stays in the foreground, starts the next part as a slot frees and reports each part as it
ends. A job reaching --time-limit is signalled, checkpoints (submitit) and is restarted
in place, resuming from its last epoch.
"""
from __future__ import annotations

import os
import shlex
import socket
import time
from collections import deque
from collections.abc import Callable

import submitit

from ..cpu import cpu_count
from ..rundir import Part, RunDir
from . import LaunchError, LaunchOptions, report_line
from .job import PartJob, Slot, now
from .status import part_status

NO_LIMIT_MIN = 60 * 24 * 365  # submitit's local default is 2 minutes


def visible_gpus() -> list[str]:
    """GPU ids a job may be given: CUDA_VISIBLE_DEVICES's entries if set, else 0..n-1."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except (RuntimeError, OSError):  # a broken driver is a machine without GPUs here
        return []


def slots(opts: LaunchOptions, methods: list[str]) -> list[Slot]:
    """One slot per part that may run at once: its GPU and its threads."""
    wanted = {opts.gpus_for(m) for m in methods}
    if any(n is not None and n > 1 for n in wanted):
        raise LaunchError("--gpus-per-part > 1 needs --launcher slurm; on one machine run "
                          "such a part in-process with --devices N --strategy ddp")
    gpus = visible_gpus()
    use_gpus = bool(gpus) and wanted != {0}
    # CPU only: one part per core with one thread each by default. Two single-thread parts
    # train ~2.0x as fast as one part alone, one part on two threads ~1.8x, and a thread
    # count that is the same for every part keeps the numbers independent of the machine's
    # load (docs/throughput.md). Capped by memory: a reference-profile part peaks near 2 GB.
    n = opts.max_parallel or (len(gpus) if use_gpus else min(cpu_count(), _parts_in_memory()))
    threads = opts.cpus_per_part or max(1, cpu_count() // n)
    if use_gpus:
        return [Slot(gpus=(gpus[i % len(gpus)],), threads=threads) for i in range(n)]
    return [Slot(threads=threads) for _ in range(n)]


PART_MEMORY_BYTES = 3 * 2**30  # a reference-profile part's peak (1.9 GB) with headroom


def _parts_in_memory() -> int:
    """How many CPU parts this machine's memory holds at once (at least one)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1
    return max(1, int(total // PART_MEMORY_BYTES))


def run_local(cfg, parts: list[Part], opts: LaunchOptions, say: Callable[[str], None]) -> None:
    if not parts:
        return
    run = RunDir(cfg.run_dir)
    free = deque(slots(opts, [p.method for p in parts]))
    executor = submitit.LocalExecutor(folder=run.launch_dir / "%j")
    queue = deque(parts)
    active: dict[Part, tuple[Slot, submitit.local.local.LocalJob]] = {}
    finished = 0
    say(f"local launcher: {len(parts)} part(s), {len(free)} at a time "
        f"({free[0].threads} thread(s) each"
        + (f", GPUs {sorted({g for s in free for g in s.gpus})}" if free[0].gpus else "") + ")")
    try:
        while queue or active:
            while queue and free:
                part, slot = queue.popleft(), free.popleft()
                gpus = 1 if slot.gpus and opts.gpus_for(part.method) != 0 else 0
                env = slot.environment() if gpus else {**slot.environment(),
                                                        "CUDA_VISIBLE_DEVICES": ""}
                executor.update_parameters(
                    timeout_min=opts.time_limit_min or NO_LIMIT_MIN,
                    setup=[f"export {k}={shlex.quote(v)}" for k, v in env.items()]
                    + list(opts.setup))
                job = executor.submit(PartJob(), cfg, part.method, part.sequence, part.fold,
                                      0, slot.threads)
                part.path.mkdir(parents=True, exist_ok=True)
                part.update_submission(launcher="local", job_id=str(job.job_id),
                                       pid=int(job.job_id), host=socket.gethostname(),
                                       stdout=str(job.paths.stdout),
                                       stderr=str(job.paths.stderr), submitted=now(),
                                       gpus=env["CUDA_VISIBLE_DEVICES"], threads=slot.threads)
                active[part] = (slot, job)
            time.sleep(0.5)
            for part, (slot, job) in list(active.items()):
                if job.done():
                    del active[part]
                    free.append(slot)
                    finished += 1
                    say(report_line(part_status(part), finished, len(parts)))
    except KeyboardInterrupt:
        for part, (_, job) in active.items():
            job.cancel(check=False)
        raise
    finally:
        literal = run.launch_dir / "%j"  # submitit's local controller makes it; nothing in it
        if literal.is_dir() and not any(literal.iterdir()):
            literal.rmdir()
