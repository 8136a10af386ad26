"""The run directory: the results contract every later tool reads.

    runs/<run-id>/config.json            fully resolved configuration
    runs/<run-id>/environment.json       package versions, device, git commit
    runs/<run-id>/<method>/<seq>/fold<k>/  best-*.ckpt, logs/, maps/, per_volume.csv,
                                         timings.json, done.json (written last)
    runs/<run-id>/per_volume.csv         all finished (method, sequence, fold) parts
    runs/<run-id>/per_dataset.csv        pooled per-dataset metrics
    runs/<run-id>/timings.csv            one row per (method, sequence, fold)

Every part is written when it finishes, so a crash loses nothing already done, and
``--resume`` skips the parts whose ``done.json`` exists.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

PACKAGES = ("torch", "lightning", "monai", "torchio", "numpy", "scipy", "scikit-learn",
            "pandas", "nibabel", "SimpleITK", "nilearn", "mlxtend", "uad-bench")
RESULT_FILES = ("per_volume.csv", "per_dataset.csv", "timings.csv", "recon_quality.csv",
                "curves.csv")


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def part_dir(run: Path, method: str, sequence: str, fold: int) -> Path:
    return Path(run) / method / sequence / f"fold{fold}"


def is_done(run: Path, method: str, sequence: str, fold: int) -> bool:
    return (part_dir(run, method, sequence, fold) / "done.json").is_file()


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a crash never leaves a half-written file behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def collect(run: Path) -> None:
    """Rebuild the run-level CSVs from every finished part (cheap; called after each part)."""
    run = Path(run)
    for name in RESULT_FILES:
        parts = sorted(p for p in run.glob(f"*/*/fold*/{name}")
                       if (p.parent / "done.json").is_file())
        if parts:
            write_csv(run / name, pd.concat([pd.read_csv(p) for p in parts], ignore_index=True))


def hardware() -> str:
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
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


def environment() -> dict:
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
