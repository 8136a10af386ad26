"""How a run uses the CPU: the memory allocator, the memory layout of conv nets, and a
machine-wide claim on cores so that two commands never oversubscribe the machine.

None of this changes what is computed (perf/bench_throughput.py measures each piece
against the old path and checks the numbers; docs/throughput.md has the measurements):

- :func:`tune_allocator`: glibc hands every allocation above a (dynamic, at most 32 MiB)
  threshold to ``mmap`` and returns it to the kernel on ``free``, so a network that
  allocates the same large activations at every call page-faults them in again each
  time. A DDPM inference pass over one 96x96x50 volume spent 1.2 s of kernel time in
  such faults next to 1.6 s of arithmetic. Raising the mmap and trim thresholds keeps
  those blocks in the heap for reuse; the price is that a process keeps its peak heap
  until it exits (the peak itself is unchanged).
- :func:`channels_last`: on a CPU, oneDNN convolutions in NHWC ("channels last") layout
  are up to 6x faster than in NCHW at the small channel counts of the CPU profiles, but
  PyTorch's GroupNorm backward is 5-17x slower in it, so a method declares where the
  layout pays off (``AnomalyMethod.channels_last``, measured per method).
- :class:`CpuSlots`: one lock file per core; a process claims as many as it runs
  threads, and waits (saying who holds them) rather than run on cores that another
  uad-bench process is using. The thread count never adapts to the load: a different
  thread count changes floating-point reduction order, hence the numbers.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the launcher's CLI stays light
    import torch
    from torch import nn

log = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
ALLOCATOR_THRESHOLD = 1 << 30   # 1 GiB: far above any activation of the CPU profiles
ALLOCATOR_ENV = "UAD_BENCH_MALLOC"  # "default": leave glibc's dynamic thresholds alone
SLOTS_ENV = "UAD_BENCH_CPU_SLOTS"   # "off": no machine-wide claim on cores
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Keep large tensor buffers in the heap instead of mmap/munmap per allocation
    (glibc only; elsewhere, or with $UAD_BENCH_MALLOC=default, nothing happens).
    Idempotent; True when the thresholds are (already) raised."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get(ALLOCATOR_ENV, "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, ALLOCATOR_THRESHOLD)
                  and mallopt(_M_TRIM_THRESHOLD, ALLOCATOR_THRESHOLD))
    return _tuned


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's malloc_trim). With the raised
    trim threshold of :func:`tune_allocator`, memory freed by one part otherwise stays
    resident into the next, and the next part's peak-memory record would include it.
    True where it ran (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def to_memory_format(module: nn.Module, channels_last: bool) -> None:
    """Convert the 4-D parameters and buffers of ``module`` in place (same values)."""
    import torch

    module.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# oneDNN's 1x1 strided convolution writes past its workspace in the weight gradient when
# the input has fewer channels than its block (16 with AVX-512) in NHWC layout: a crash, or
# silently wrong gradients (uxlfoundation/oneDNN issue 6035; reproduced here with torch
# 2.13.0+cpu: Conv2d(4, 8, 1, stride=2) backward aborts with "double free or corruption")
_ONEDNN_MIN_CHANNELS = 16


def channels_last_training_hazards(module: nn.Module) -> list[str]:
    """Conv layers whose weight gradient oneDNN computes wrongly in channels-last layout:
    1x1 kernels with a stride > 1 and fewer than 16 input channels (names, or [])."""
    from torch import nn

    return [name for name, m in module.named_modules()
            if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
            and max(m.stride) > 1 and m.in_channels < _ONEDNN_MIN_CHANNELS]


def is_channels_last(module: nn.Module) -> bool:
    """Whether the first 4-D parameter of ``module`` is stored channels-last."""
    import torch

    for p in module.parameters():
        if p.dim() == 4 and p.shape[1] > 1:  # (O, 1, k, k) is both layouts at once
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


@contextlib.contextmanager
def channels_last(module: nn.Module, enabled: bool) -> Iterator[Callable]:
    """Run ``module`` in channels-last layout inside the block; afterwards it is in the
    layout it had before (so a learning-curve evaluation inside a channels-last training
    stage leaves it channels-last).

    Yields a function that converts a 4-D input (N, C, H, W) to the layout (other inputs
    pass unchanged). Disabled, it changes nothing and the function is the identity."""
    if not enabled:
        yield lambda x: x
        return
    import torch

    before = is_channels_last(module)
    to_memory_format(module, True)
    try:
        yield lambda x: x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    finally:
        to_memory_format(module, before)


# ---------------------------------------------------------------------------- cores
def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def slots_dir() -> Path:
    """Per user and host (a cluster's shared home must not make nodes wait for each
    other): where the cores' lock files live."""
    import socket

    base = os.environ.get("UAD_BENCH_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "uad-bench"
    return root / "cpu-slots" / socket.gethostname()


class CpuSlots:
    """``with CpuSlots(n).claim(say=print): ...``: hold n of this machine's cores.

    Each core is a lock file (``slot-<i>.lock``, an OS lock: a killed process releases it)
    with a note of its holder (``slot-<i>.json``: pid, command, since). When fewer than n
    are free the claim waits, naming the holders once, and takes them as they free up.
    n is capped at the number of cores. $UAD_BENCH_CPU_SLOTS=off disables the claim; inside
    a Slurm job (SLURM_JOB_ID set) the scheduler's allocation already is the claim.
    """

    def __init__(self, n: int, directory: Path | None = None, total: int | None = None,
                 poll_seconds: float = 2.0) -> None:
        self.total = total or cpu_count()
        self.n = max(1, min(int(n), self.total))
        self.directory = directory or slots_dir()
        self.poll_seconds = poll_seconds

    def holders(self) -> list[dict]:
        """The notes of the slots held now by other processes (best effort)."""
        out = []
        for i in range(self.total):
            note = self.directory / f"slot-{i}.json"
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(note.read_text())
                if info.get("pid") != os.getpid() and _alive(info.get("pid")):
                    out.append(info)
        return out

    @contextlib.contextmanager
    def claim(self, say: Callable[[str], None] | None = None) -> Iterator[list[int]]:
        if os.environ.get(SLOTS_ENV, "").lower() == "off" or os.environ.get("SLURM_JOB_ID"):
            yield []
            return
        from filelock import FileLock, Timeout

        self.directory.mkdir(parents=True, exist_ok=True)
        held: list[tuple[int, FileLock]] = []
        told = False
        try:
            while len(held) < self.n:
                for i in range(self.total):
                    if len(held) == self.n or any(j == i for j, _ in held):
                        continue
                    lock = FileLock(str(self.directory / f"slot-{i}.lock"))
                    try:
                        lock.acquire(timeout=0)
                    except Timeout:
                        continue
                    held.append((i, lock))
                    _write_note(self.directory / f"slot-{i}.json")
                if len(held) < self.n:
                    if not told and say is not None:
                        who = ", ".join(f"pid {h.get('pid')} ({h.get('command', '?')})"
                                        for h in self.holders()) or "another process"
                        say(f"waiting for {self.n - len(held)} of {self.total} CPU core(s), "
                            f"held by {who}; set {SLOTS_ENV}=off to run anyway")
                        told = True
                    time.sleep(self.poll_seconds)
            yield [i for i, _ in held]
        finally:
            for i, lock in held:
                with contextlib.suppress(OSError):
                    (self.directory / f"slot-{i}.json").unlink()
                lock.release()


def _write_note(path: Path) -> None:
    program = Path(sys.argv[0]).name
    if program == "__main__.py":  # python -m benchmark
        program = "python -m " + Path(sys.argv[0]).parent.name
    command = " ".join([program, *sys.argv[1:4]])
    with contextlib.suppress(OSError):
        path.write_text(json.dumps({"pid": os.getpid(), "command": command,
                                    "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def claim_threads(threads: int | None, device: torch.device,
                  say: Callable[[str], None] | None = None) -> Iterator[int]:
    """Set torch's threads (None: keep torch's default) and, on a CPU, hold that many
    cores for the block. Yields the thread count. On a GPU nothing is claimed."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    n = torch.get_num_threads()
    if device.type != "cpu":
        yield n
        return
    with CpuSlots(n).claim(say=say):
        yield n
