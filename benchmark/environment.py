"""What a run was computed with: package versions, hardware, git commit, command line.

Recorded in each run's ``environment.json`` (every launch of a resumed run is kept) and
in each exported bundle.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "lightning", "monai", "torchio", "numpy", "scipy", "scikit-learn",
            "pandas", "nibabel", "SimpleITK", "nilearn", "mlxtend", "uad-bench")


def hardware() -> str:
    """The GPU's name, else the CPU model and core count."""
    import torch  # here, not at the top: `status` and the launchers need no torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def git_commit() -> str | None:
    """The commit of this source tree (``+dirty`` with uncommitted changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                               text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


def environment() -> dict:
    import torch

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "hardware": hardware(), "cuda": torch.version.cuda,
        "gpus": torch.cuda.device_count(), "packages": versions,
        "git_commit": git_commit(), "command": " ".join(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
