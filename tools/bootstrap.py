"""Set up the project's virtual environment on first use, then run the main job or the tests.

    python3 tools/bootstrap.py run  [ARGS...]   # python -m benchmark run --methods cddpm,pddpm ARGS
    python3 tools/bootstrap.py test [ARGS...]   # python -m pytest -q ARGS
    python3 tools/bootstrap.py perf [ARGS...]   # python -m pytest perf ARGS (speed suite)
    python3 tools/bootstrap.py setup            # only the environment
    python3 tools/bootstrap.py torch            # print the torch choice for this machine

`make run` / `make test` call this script (ARGS="..." passes arguments through). It needs
nothing but Python >= 3.10 with its standard library (venv, ensurepip).

First use: create `<repo>/.venv`, install torch, install the project with its dev extras,
write a stamp. Later uses compare the stamp (a hash of pyproject.toml and the torch
choice) and install nothing unless one of them changed.

Torch choice (first match wins):
- `TORCH_SPEC` set: that pip requirement (e.g. `TORCH_SPEC="torch==2.5.1"`), from
  `TORCH_INDEX_URL` if set, else pip's configured index.
- a working `nvidia-smi` (on PATH, exits 0, lists a GPU): `torch==2.13.0` from pip's
  index (PyPI's Linux wheels are the CUDA build); `TORCH_INDEX_URL` picks another CUDA
  build, e.g. https://download.pytorch.org/whl/cu126.
- otherwise the CPU build `torch==2.13.0`: on Linux from PyTorch's CPU index when that
  answers within a few seconds (PyPI's Linux wheel would pull several GB of CUDA
  libraries), else from pip's configured index (a local wheel, a mirror). Set
  `TORCH_INDEX_URL=` (empty) to skip the probe and use pip's configured index.
`UAD_BENCH_VENV` moves the environment (default `<repo>/.venv`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAMP_NAME = ".uad-bench-stamp.json"
MAIN_JOB = ["-m", "benchmark", "run"]
DEFAULT_METHODS = ["--methods", "cddpm,pddpm"]
TEST_JOB = ["-m", "pytest", "-q"]
PERF_JOB = ["-m", "pytest", "perf"]


def log(message: str) -> None:
    print(f"[bootstrap] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TorchChoice:
    """What to `pip install` for torch, and why (printed, and part of the stamp)."""

    spec: str
    index_url: str | None
    reason: str
    expect_cuda: bool = False
    try_cpu_index: bool = False  # probe CPU_INDEX at install time, else pip's index

    def pip_args(self, reachable=None) -> list[str]:
        """pip arguments; `reachable(url)` decides a `try_cpu_index` choice (at install
        time only, so the stamp does not change with the network)."""
        index = self.index_url
        if self.try_cpu_index and (reachable or index_reachable)(CPU_INDEX + "/"):
            index = CPU_INDEX
        return [self.spec] + (["--index-url", index] if index else [])


def gpu_present(which=shutil.which, run=subprocess.run) -> bool:
    """True if `nvidia-smi -L` exists, exits 0 and lists at least one GPU. An installed
    nvidia-smi without a loaded driver exits non-zero: no usable GPU."""
    exe = which("nvidia-smi")
    if exe is None:
        return False
    try:
        done = run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def index_reachable(url: str, timeout: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - any failure (DNS, refused, TLS, HTTP) means "not usable"
        return False


def choose_torch(env=os.environ, has_gpu=gpu_present, platform: str = sys.platform) -> TorchChoice:
    """The torch requirement for this machine (see the module docstring for the rules)."""
    index = env.get("TORCH_INDEX_URL")
    explicit_index = index or None  # "" means: pip's configured index, no probe
    if env.get("TORCH_SPEC"):
        return TorchChoice(env["TORCH_SPEC"], explicit_index, "TORCH_SPEC")
    pinned = f"torch=={TORCH_VERSION}"
    if has_gpu():
        return TorchChoice(pinned, explicit_index, "CUDA build: nvidia-smi lists a GPU",
                           expect_cuda=True)
    reason = "CPU build: no working nvidia-smi"
    if index is not None or not platform.startswith("linux"):
        return TorchChoice(pinned, explicit_index, reason)
    return TorchChoice(pinned, None, reason, try_cpu_index=True)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def stamp_data(root: Path, choice: TorchChoice) -> dict:
    """What an installed environment was built from; any change means reinstall."""
    pyproject = (root / "pyproject.toml").read_bytes()
    return {"pyproject_sha256": hashlib.sha256(pyproject).hexdigest(), "torch": asdict(choice)}


def stamp_current(venv: Path, data: dict) -> bool:
    path = venv / STAMP_NAME
    if not venv_python(venv).exists() or not path.exists():
        return False
    try:
        return json.loads(path.read_text()) == data
    except ValueError:
        return False


def _check(cmd: list[str], run=subprocess.run) -> None:
    """Run a command, streaming its output; a failure stops with the command named."""
    if run(cmd).returncode != 0:
        raise SystemExit(f"[bootstrap] failed: {' '.join(map(str, cmd))}")


def ensure_env(root: Path, venv: Path, choice: TorchChoice, run=subprocess.run,
               reachable=None) -> Path:
    """Create/update the environment unless its stamp is current; return its python."""
    data = stamp_data(root, choice)
    py = venv_python(venv)
    if stamp_current(venv, data):
        return py
    if not py.exists():
        log(f"creating {venv}")
        if run([sys.executable, "-m", "venv", str(venv)]).returncode != 0:
            raise SystemExit(
                f"[bootstrap] `{sys.executable} -m venv {venv}` failed. On Debian/Ubuntu the "
                "venv module is a separate package: apt install python3-venv")
    (venv / STAMP_NAME).unlink(missing_ok=True)  # a failed install below must not look done
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    _check(pip + ["--upgrade", "pip>=23"], run)
    torch_args = choice.pip_args(reachable)
    log(f"installing {' '.join(torch_args)} ({choice.reason})")
    _check(pip + torch_args, run)
    log("installing the project with its dev extras (pip install -e .[dev])")
    _check(pip + ["-e", f"{root}[dev]"], run)
    if choice.expect_cuda:
        probe = run([str(py), "-c", "import torch, sys; sys.exit(not torch.cuda.is_available())"])
        if probe.returncode != 0:
            log("warning: a GPU is present but the installed torch cannot use it; "
                "set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu126) or TORCH_SPEC")
    (venv / STAMP_NAME).write_text(json.dumps(data, indent=1) + "\n")
    log(f"environment ready: {venv}")
    return py


def job_command(task: str, args: list[str]) -> list[str]:
    """The python arguments of a task; `run` adds the main job's methods unless given."""
    if task == "run":
        given = any(a == "--methods" or a.startswith("--methods=") for a in args)
        return MAIN_JOB + ([] if given else DEFAULT_METHODS) + args
    if task == "test":
        return TEST_JOB + args
    if task == "perf":
        return PERF_JOB + args
    raise ValueError(f"unknown task {task!r}; expected run, test or perf")


TASKS = ("run", "test", "perf", "setup", "torch")
USAGE = f"usage: python3 tools/bootstrap.py {{{','.join(TASKS)}}} [ARGS...]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if sys.version_info < (3, 10):  # noqa: UP036 - the script may be run by an older python3
        raise SystemExit(f"[bootstrap] Python >= 3.10 needed, this is {sys.version.split()[0]}")
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in TASKS:
        print(USAGE, file=sys.stderr)
        return 2
    task, args = argv[0], argv[1:]
    choice = choose_torch()
    if task == "torch":
        print(" ".join(choice.pip_args()), f"# {choice.reason}")
        return 0
    venv = Path(os.environ.get("UAD_BENCH_VENV") or ROOT / ".venv").resolve()
    py = ensure_env(ROOT, venv, choice)
    if task == "setup":
        return 0
    cmd = [str(py)] + job_command(task, args)
    log(" ".join(cmd[1:]))
    return subprocess.run(cmd, check=False, cwd=ROOT).returncode


if __name__ == "__main__":
    raise SystemExit(main())
