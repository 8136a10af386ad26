"""The run directory: the results contract every later tool reads, and its only owner.

    runs/<run-id>/config.json            fully resolved configuration
    runs/<run-id>/environment.json       package versions, device, git commit
    runs/<run-id>/<method>/<seq>/fold<k>/  a part: best-*.ckpt, logs/, maps/, contrast<cl>/,
                                         hparams.json, per_volume.csv, per_dataset.csv,
                                         recon_quality.csv, curves.csv, timings.csv,
                                         domain_shift.csv, done.json (written last);
                                         while unfinished: last-<stage>.ckpt (training
                                         state to resume from); under a launcher:
                                         submission.json (what was submitted: job id, log
                                         files) and job.json (what the job reports)
    runs/<run-id>/per_volume.csv ...     the run-level tables: every finished part's rows
    runs/<run-id>/experiments/<name>/    outputs of `benchmark experiment <name>`
    runs/<run-id>/launch/<job-id>/       a launcher's job files (submitit: pickles, logs)

Every reader and writer goes through :class:`RunDir` and :class:`Part`: nothing else
spells these paths or globs the tree. A part is finished when its ``done.json`` exists;
``done.json`` records the part's result tags (the method's ``result_tags()``), so
re-scoring and the leaderboard know which columns name a variant without a list of tag
names anywhere. File names recorded in a run are resolved inside the run directory only.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = ("torch", "lightning", "monai", "torchio", "numpy", "scipy", "scikit-learn",
            "pandas", "nibabel", "SimpleITK", "nilearn", "mlxtend", "uad-bench")
# per-part tables that the run-level tables of the same name collect
RESULT_FILES = ("per_volume.csv", "per_dataset.csv", "timings.csv", "recon_quality.csv",
                "curves.csv", "domain_shift.csv")
CONFIG, ENVIRONMENT, DONE = "config.json", "environment.json", "done.json"
EXPERIMENTS, LAUNCH = "experiments", "launch"
RESUME_CHECKPOINT = "last-{stage}.ckpt"  # a stage's training state while the part is unfinished
SUBMISSION, JOB = "submission.json", "job.json"  # a launched part's records
TAGS_COLUMN = "tags"  # per-row JSON object of the part's result tags


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------------------- atomic writes
def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a crash never leaves a half-written file behind."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


# ---------------------------------------------------------------------------- tags
def encode_tags(tags: dict[str, Any]) -> str:
    """The ``tags`` column: a JSON object, keys in the method's order."""
    return json.dumps({k: _plain(v) for k, v in tags.items()})


def decode_tags(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return {}
    return json.loads(text)


def tag_columns(tags: dict[str, Any]) -> dict[str, Any]:
    """The columns a part's result rows carry for its tags: ``tags`` (all of them, JSON)
    and one column per tag (for filtering)."""
    return {TAGS_COLUMN: encode_tags(tags), **{k: _plain(v) for k, v in tags.items()}}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


# ---------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class Part:
    """One (method, sequence, fold) of a run: its directory and everything in it."""

    run: RunDir
    method: str
    sequence: str
    fold: int

    @property
    def path(self) -> Path:
        return self.run.path / self.method / self.sequence / f"fold{self.fold}"

    def file(self, name: str) -> Path:
        """A file of this part by name; a name that would leave the part is an error."""
        path = (self.path / name).resolve()
        if self.path.resolve() not in path.parents:
            raise ValueError(f"{self.path}: refusing file name {name!r} outside the part")
        return self.path / name

    # ------------------------------------------------------------ state
    @property
    def done_path(self) -> Path:
        return self.path / DONE

    def is_done(self) -> bool:
        return self.done_path.is_file()

    def done(self) -> dict:
        if not self.is_done():
            raise FileNotFoundError(f"{self.path}: unfinished part (no {DONE})")
        return read_json(self.done_path)

    def tags(self) -> dict[str, Any]:
        """The method's result tags as recorded when the part finished."""
        return dict(self.done().get("tags") or {})

    def ids(self, **extra: Any) -> dict[str, Any]:
        """The identifying columns of this part's result rows."""
        return {"method": self.method, "fold": self.fold, "sequence": self.sequence, **extra}

    # ------------------------------------------------------------ files
    def checkpoint(self) -> Path:
        """The checkpoint the part was evaluated with (done.json), inside the part only."""
        name = self.done().get("checkpoint") if self.is_done() else None
        for candidate in ([name] if name else []) + ["best-main.ckpt"]:
            path = self.file(candidate)
            if path.is_file():
                return path
        raise FileNotFoundError(f"no checkpoint in {self.path} (expected {name or 'best-main.ckpt'})")

    def maps_dir(self, contrast: float = 1.0) -> Path:
        """Where cached maps live: maps/ (or contrast<cl>/maps/ for x ** cl inputs)."""
        base = self.path if contrast == 1.0 else self.path / f"contrast{contrast:g}"
        return base / "maps"

    def maps_path(self, dataset: str, split: str, contrast: float = 1.0) -> Path:
        return self.maps_dir(contrast) / f"{dataset}_{split}.npz"

    def contrast_levels(self) -> list[float]:
        """1.0 and every contrast level whose maps are cached, ascending."""
        found = {1.0}
        for d in self.path.glob("contrast*"):
            try:
                found.add(float(d.name[len("contrast"):]))
            except ValueError:
                continue
        return sorted(found)

    def histograms_path(self, contrast: float | None = None) -> Path:
        """Pooled intensity histograms (paper Fig. 4) of the part's own test inputs, or of
        the domain-shift study at ``contrast`` (1.0 included)."""
        return self.path / ("histograms.npz" if contrast is None
                            else f"histograms_contrast{contrast:g}.npz")

    def cached_datasets(self, split: str = "test", contrast: float = 1.0) -> list[str]:
        """Data sets whose ``split`` maps are cached, sorted."""
        suffix = f"_{split}.npz"
        return sorted(p.name[:-len(suffix)] for p in self.maps_dir(contrast).glob(f"*{suffix}"))

    def has_maps(self, dataset: str, split: str) -> bool:
        return self.maps_path(dataset, split).is_file()

    # ------------------------------------------------------------ writing
    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        if name not in RESULT_FILES:
            raise ValueError(f"unknown part table {name!r}; allowed: {', '.join(RESULT_FILES)}")
        write_csv(self.path / name, frame)

    def write_json(self, name: str, payload: dict) -> None:
        write_json(self.file(name), payload)

    def table(self, name: str) -> pd.DataFrame | None:
        """One of the part's tables (RESULT_FILES), None if it has not been written."""
        if name not in RESULT_FILES:
            raise ValueError(f"unknown part table {name!r}; allowed: {', '.join(RESULT_FILES)}")
        path = self.path / name
        return pd.read_csv(path) if path.is_file() else None

    def mark_done(self, checkpoint: Path, tags: dict[str, Any], **record: Any) -> None:
        """done.json, written last: the part is complete on disk before it exists. Then the
        training state kept for resuming (last-<stage>.ckpt) goes: finished parts keep
        weights only."""
        write_json(self.done_path, {"checkpoint": Path(checkpoint).name,
                                    "tags": {k: _plain(v) for k, v in tags.items()}, **record})
        for path in self.resume_checkpoints():
            path.unlink(missing_ok=True)

    def resume_checkpoints(self) -> list[Path]:
        """The training state an unfinished part resumes from (``last-<stage>.ckpt``)."""
        return sorted(self.path.glob(RESUME_CHECKPOINT.format(stage="*")))

    # ------------------------------------------------------------ launched jobs
    @property
    def submission_path(self) -> Path:
        """What a launcher submitted for this part (job id, log files); launcher-written."""
        return self.path / SUBMISSION

    @property
    def job_path(self) -> Path:
        """What the part's job reports (state, host, pid, times, error); job-written."""
        return self.path / JOB


# ---------------------------------------------------------------------------- runs
class RunDir:
    """A run directory: its configuration, its parts, its tables."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ------------------------------------------------------------ records
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    def exists(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> dict:
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run directory (no {CONFIG})")
        return read_json(self.config_path)

    def environment(self) -> dict:
        path = self.path / ENVIRONMENT
        return read_json(path) if path.is_file() else {}

    def write_records(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, config)
        write_json(self.path / ENVIRONMENT, environment())

    def data_config(self, sequence: str, fold: int, **overrides: Any):
        """The data configuration the run's part (sequence, fold) was evaluated with, rebuilt
        from config.json (the one place that does so)."""
        from .data.module import DataConfig

        config = self.config()
        profile = config.get("profile", {})
        values = dict(root=Path(config["data_root"]), sequence=sequence, fold=fold,
                      fold_scheme=config.get("fold_scheme", "disjoint"),
                      max_test_volumes=profile.get("max_test_volumes"),
                      max_val_volumes=profile.get("max_val_volumes"),
                      max_train_volumes=profile.get("max_train_volumes"),
                      cohorts=config.get("cohorts"))
        values.update(overrides)
        return DataConfig(**values)

    def evaluation_sets(self, part: Part, max_volumes: int | None = None) -> dict:
        """{dataset: {split: records}} of a part, as it was evaluated (capped further by
        ``max_volumes``)."""
        from .data.module import BenchmarkDataModule

        cfg = self.data_config(part.sequence, part.fold)
        caps = [c for c in (cfg.max_test_volumes, max_volumes) if c is not None]
        cfg.max_test_volumes = min(caps) if caps else None
        return BenchmarkDataModule(cfg).evaluation_sets()

    # ------------------------------------------------------------ parts
    def part(self, method: str, sequence: str, fold: int) -> Part:
        return Part(self, method, sequence, int(fold))

    def parts(self, done: bool = True) -> list[Part]:
        """Parts in the directory (finished ones only unless done=False), sorted."""
        out = []
        if not self.path.is_dir():
            return out
        for fold_dir in sorted(self.path.glob("*/*/fold*")):
            try:
                fold = int(fold_dir.name[len("fold"):])
            except ValueError:
                continue
            part = Part(self, fold_dir.parent.parent.name, fold_dir.parent.name, fold)
            if fold_dir.is_dir() and (part.is_done() or not done):
                out.append(part)
        return out

    def find_parts(self, methods: list[str] | None = None, sequence: str | None = None,
                   fold: int | None = None) -> list[Part]:
        return [p for p in self.parts()
                if (methods is None or p.method in methods)
                and (sequence is None or p.sequence == sequence)
                and (fold is None or p.fold == fold)]

    # ------------------------------------------------------------ tables
    def collect(self) -> None:
        """Rebuild the run-level tables from every finished part (cheap; after each part)."""
        parts = self.parts()
        for name in RESULT_FILES:
            frames = [pd.read_csv(p.path / name) for p in parts if (p.path / name).is_file()]
            if frames:
                write_csv(self.path / name, pd.concat(frames, ignore_index=True))

    @property
    def launch_dir(self) -> Path:
        """A launcher's job files (submitit's folder: pickled calls, stdout/stderr logs)."""
        return self.path / LAUNCH

    def experiment_dir(self, name: str, out: Path | None = None) -> Path:
        """``<run>/experiments/<name>/`` (or ``<out>/<name>``), created."""
        path = (Path(out) if out is not None else self.path / EXPERIMENTS) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def find_table(self, name: str) -> Path | None:
        """A table of the run by file name: the run-level one, else an experiment's output
        of that name (e.g. noise_levels.csv from ``experiment noise-levels``)."""
        if (self.path / name).is_file():
            return self.path / name
        found = sorted((self.path / EXPERIMENTS).glob(f"*/{name}"))
        if len(found) > 1:
            raise ValueError(f"{self.path}: several experiment outputs named {name}: "
                             f"{[str(p) for p in found]}")
        return found[0] if found else None


# ---------------------------------------------------------------------------- environment
def hardware() -> str:
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
