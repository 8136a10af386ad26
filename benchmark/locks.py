"""OS file locks that name their holder (docs/failures.md).

A lock is ``<base>.lock`` (an OS lock: the kernel releases it when its process dies, kill
-9 included) with a record of its holder in ``<base>.json`` (pid, host, since, command)
while held, so that a refusal can say who is in the way.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from .atomic import write_json

if TYPE_CHECKING:
    from .rundir import Part


class RunLockedError(RuntimeError):
    """Another process holds the run's launch lock; the message names it."""


class IncompleteRunError(RuntimeError):
    """Parts were skipped because other processes are running them (exit status 3)."""


class PartClaimedError(RuntimeError):
    """Another process is training or evaluating this part; the message names it."""

    def __init__(self, part: Part, holder: dict) -> None:
        self.part, self.holder = part, holder
        super().__init__(f"part {part.key} of {part.run.path} is being run by "
                         f"{describe_holder(holder)}")


def holder_record() -> dict:
    """Who this process is: pid, host, since, command."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another process (no holder record)"
    text = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
    return text + (f" ({holder['command']})" if holder.get("command") else "")


def read_holder(base: Path) -> dict:
    """The holder record of the lock ``<base>.lock`` ({} when there is none)."""
    try:
        return json.loads(Path(str(base) + ".json").read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def exclusive(base: Path, what: str, wait: bool,
              busy: Callable[[dict], Exception]) -> Iterator[None]:
    """Hold ``<base>.lock`` and record the holder in ``<base>.json`` while held.

    Held elsewhere: raise ``busy(holder record)``, or with ``wait`` block until it is free.
    """
    lock = filelock.FileLock(str(base) + ".lock")
    record = Path(str(base) + ".json")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        holder = read_holder(base)
        if not wait:
            raise busy(holder) from None
        print(f"waiting: {what} is held by {describe_holder(holder)}", file=sys.stderr)
        lock.acquire(timeout=-1, poll_interval=0.5)
    try:
        write_json(record, holder_record())
        yield
    finally:
        record.unlink(missing_ok=True)
        lock.release()


@contextmanager
def waiting(base: Path, timeout: float) -> Iterator[None]:
    """Hold ``<base>.lock``, waiting up to ``timeout`` seconds (short critical sections
    that several processes take in turn, e.g. rebuilding a run's tables)."""
    with filelock.FileLock(str(base) + ".lock", timeout=timeout):
        yield
