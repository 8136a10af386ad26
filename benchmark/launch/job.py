"""One part as one job: what runs on the worker, and the records it leaves in the part.

A launcher submits :class:`PartJob` (through submitit) once per (method, sequence, fold).
The job trains, infers and scores its part with :func:`benchmark.runner.run_part`, exactly
as the in-process loop does, so the part directory is the same whichever launcher made
it. Around that it keeps two small records in the part (paths from
:class:`benchmark.rundir.Part`):

    submission.json   written by the launcher: launcher, job id, log files, resources
    job.json          written by the job: state (running / done / failed / interrupted),
                      host, pid, attempt, start and end times, the error line

``benchmark status`` reads both, with the scheduler's view of the job id. A job that is
preempted or reaches its time limit is requeued by submitit (``checkpoint()`` resubmits
the same call); the requeued job finds the part's ``last-<stage>.ckpt`` and continues
training from there (:func:`benchmark.train.fit`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import submitit

from ..rundir import RunDir

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def error_line(exc: BaseException) -> str:
    """``Type: message`` on one line (the first line of a long message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass(frozen=True)
class Slot:
    """Where one job runs on a local machine: GPUs (CUDA_VISIBLE_DEVICES) and threads."""

    gpus: tuple[str, ...] = ()
    threads: int = 1

    def environment(self) -> dict[str, str]:
        threads = str(self.threads)
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.gpus), "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}


def _rank() -> int:
    from ..runner import launch_rank

    return launch_rank()


def _job_id() -> str | None:
    try:
        return submitit.JobEnvironment().job_id
    except RuntimeError:  # not inside a submitit job (called directly)
        return None


class PartJob(submitit.helpers.Checkpointable):
    """``PartJob()(cfg, method, sequence, fold, gpus=, threads=)``: run one part in a job.

    cfg: the run's :class:`benchmark.runner.RunConfig`. gpus > 1: the part trains with DDP
    over that many devices, one task per device (Slurm), rank 0 evaluates and writes.
    threads: torch's intra-op threads (the job's CPU slice).
    """

    def __call__(self, cfg, method: str, sequence: str, fold: int, gpus: int = 0,
                 threads: int | None = None) -> dict:
        from ..cpu import claim_threads
        from ..runner import _device, _say, run_part

        if gpus > 1:  # DDP inside the job: Lightning reads the ranks from Slurm's variables
            cfg = replace(cfg, trainer=replace(cfg.trainer, devices=gpus, accelerator="gpu",
                                               strategy=cfg.trainer.strategy
                                               if cfg.trainer.strategy != "auto" else "ddp"))
        part = RunDir(cfg.run_dir).part(method, sequence, fold)
        rank = _rank()
        if part.is_done():
            return {"part": f"{method}/{sequence}/fold{fold}", "state": "done", "skipped": True}
        if rank == 0:
            part.path.mkdir(parents=True, exist_ok=True)
            attempt = int(part.job().get("attempt", 0)) + 1
            part.update_job(state="running", job_id=_job_id(), host=socket.gethostname(),
                          pid=os.getpid(), attempt=attempt, started=now(), finished=None,
                          error=None, resume_from=[p.name for p in part.resume_checkpoints()])
        try:
            with claim_threads(threads, _device(cfg.trainer), say=_say), \
                    part.claim() if rank == 0 else contextlib.nullcontext():
                row = None if part.is_done() else run_part(cfg, part)
        except (SystemExit, KeyboardInterrupt) as exc:  # requeue (timeout, preemption), ctrl-C
            if rank == 0:
                part.update_job(state="interrupted", finished=now(),
                              error=f"interrupted ({type(exc).__name__} {getattr(exc, 'code', '')})"
                              .strip())
            raise
        except BaseException as exc:
            if rank == 0:
                part.update_job(state="failed", finished=now(), error=error_line(exc),
                              traceback=traceback.format_exc()[-4000:])
            raise
        if rank != 0:
            return {"part": f"{method}/{sequence}/fold{fold}", "state": "done", "rank": rank}
        try:  # the run-level tables, under the collect lock where the run directory has one
            RunDir(cfg.run_dir).collect()
        except OSError as exc:  # the part is done; the launcher collects again at the end
            log.warning("%s: run-level tables not rebuilt (%s); `run --resume` or the "
                        "launcher's final collect rebuilds them", part.path, exc)
        part.update_job(state="done", finished=now())
        return {"part": f"{method}/{sequence}/fold{fold}", "state": "done",
                "train_seconds": (row or {}).get("train_seconds")}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on a time limit or a preemption: resubmit the same call. The
        training state is on disk (last-<stage>.ckpt), so the call itself is all there is
        to save."""
        return super().checkpoint(*args, **kwargs)
