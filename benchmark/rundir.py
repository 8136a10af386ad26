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

Concurrency (docs/failures.md): a process that launches work on a run holds
:meth:`RunDir.launch_lock` for its whole life (a second launch is refused, or waits); a
process that trains or evaluates a part holds :meth:`Part.claim`; :meth:`RunDir.collect`
rebuilds the run-level tables under a short lock of its own. Every file is written
atomically (a unique temporary name beside it, then a rename), so a reader never sees
half a file and a killed writer leaves only a hidden ``.*.tmp`` behind.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import filelock
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
# locks: <run>/.launch.lock (+ .launch.json: who holds it), <run>/.collect.lock,
# <part>/.claim.lock (+ .claim.json)
LAUNCH_LOCK, CLAIM_LOCK, COLLECT_LOCK = ".launch", ".claim", ".collect"
COLLECT_TIMEOUT_S = 600.0


class RunLockedError(RuntimeError):
    """Another process holds the run's launch lock; the message names it."""


class PartClaimedError(RuntimeError):
    """Another process is training or evaluating this part; the message names it."""

    def __init__(self, part: Part, holder: dict) -> None:
        self.part, self.holder = part, holder
        super().__init__(f"part {part.key} of {part.run.path} is being run by "
                         f"{describe_holder(holder)}")


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------------------- atomic writes
@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, unique to this writer; renamed onto ``path`` when
    the block succeeds, removed when it raises. Readers see the old file or the new one,
    never half of one; a killed writer leaves a hidden ``.<name>.<random>.tmp``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name the writer creates itself (the usual permissions, unlike mkstemp's 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a crash never leaves a half-written file behind."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ---------------------------------------------------------------------------- locks
def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another process (no holder record)"
    text = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
    return text + (f" ({holder['command']})" if holder.get("command") else "")


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def _exclusive(base: Path, what: str, wait: bool,
               busy: Callable[[dict], Exception]) -> Iterator[None]:
    """Hold ``<base>.lock`` (an OS file lock: released by the kernel when its process dies,
    kill -9 included) and record the holder in ``<base>.json`` while held.

    Held elsewhere: raise ``busy(holder record)``, or with ``wait`` block until it is free.
    """
    lock = filelock.FileLock(str(base) + ".lock")
    record = Path(str(base) + ".json")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        holder = _read_holder(record)
        if not wait:
            raise busy(holder) from None
        print(f"waiting: {what} is held by {describe_holder(holder)}", file=sys.stderr)
        lock.acquire(timeout=-1, poll_interval=0.5)
    try:
        write_json(record, _holder())
        yield
    finally:
        record.unlink(missing_ok=True)
        lock.release()


def resumed_log_version(part_dir: Path, stage: str) -> str:
    """The log folder name of a resumed stage (``<stage>-resumedN``, N counting the resumes
    logged so far in any logger's folder), so the first attempt's logs are kept."""
    return f"{stage}-resumed{len(list(Path(part_dir).glob(f'*/{stage}-resumed*'))) + 1}"


def config_diff(recorded: dict, new: dict, ignore: tuple[str, ...] = ()
                ) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (recorded value, new value)} of every setting that differs, compared as
    JSON (tuples and lists alike); keys under a name in ``ignore`` are left out."""
    old_flat = _flatten(json.loads(json.dumps(recorded, default=str)))
    new_flat = _flatten(json.loads(json.dumps(new, default=str)))
    out = {}
    for key in sorted(set(old_flat) | set(new_flat)):
        if any(key == i or key.startswith(i + ".") for i in ignore):
            continue
        missing = "(not set)"
        old, now = old_flat.get(key, missing), new_flat.get(key, missing)
        if old != now:
            out[key] = (old, now)
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def read_json(path: Path) -> dict:
    """A run record (config.json, environment.json, done.json, ...): a JSON object, or a
    ValueError naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):  # bad input, reported as such (a ValueError: exit 2)
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")  # noqa: TRY004
    return data


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

    @property
    def key(self) -> str:
        """``method/sequence/fold<k>``: how messages and status name the part."""
        return f"{self.method}/{self.sequence}/fold{self.fold}"

    # ------------------------------------------------------------ concurrency
    @contextmanager
    def claim(self) -> Iterator[Part]:
        """Hold this part while training or evaluating it (non-blocking).

        A part claimed by another live process raises :class:`PartClaimedError` naming it
        (pid, host, since, command); the caller decides whether that is an error or a part
        to skip (``benchmark run`` skips it and exits 3). The claim dies with its process.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.path / CLAIM_LOCK, f"part {self.key}", False,
                        lambda holder: PartClaimedError(self, holder)):
            yield self

    def claim_holder(self) -> dict:
        """Who holds :meth:`claim`, from the record the holder keeps beside the lock ({}
        when nobody does; a holder killed with -9 leaves its record, so check its pid)."""
        return _read_holder(self.path / (CLAIM_LOCK + ".json"))

    def clear(self) -> None:
        """Empty an unfinished part (a killed attempt's best checkpoint, logs, maps), keeping
        its claim, the launcher's job records and the training state it resumes from
        (last-<stage>.ckpt, with the best-<stage>.ckpt that state points to, the learning
        curve and the logs of that training); call it while holding :meth:`claim`. A
        finished part is never cleared."""
        if self.is_done():
            raise ValueError(f"{self.path}: refusing to clear a finished part")
        if not self.path.is_dir():
            return
        # the training state to resume from, with the best checkpoint it refers to, and the
        # record of the training it holds (the learning curve so far, the loggers' files)
        resume = self.resume_checkpoints()
        keep = {p.name for p in resume} | {SUBMISSION, JOB} | {
            p.name.replace("last-", "best-", 1) for p in resume}
        if resume:
            keep |= {"curves.csv", "logs"}
        for child in self.path.iterdir():
            if child.name.startswith(CLAIM_LOCK + ".") or child.name in keep:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

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
        """The method's result tags as recorded when the part finished: {name: plain
        value}; anything else is a ValueError naming done.json."""
        tags = self.done().get("tags") or {}
        plain = (bool, int, float, str, type(None))
        if not isinstance(tags, dict) or not all(
                isinstance(k, str) and k and isinstance(v, plain) for k, v in tags.items()):
            raise ValueError(f"{self.done_path}: 'tags' must be an object of names and plain "
                             f"values (e.g. {{\"pretrained\": false}}), got {tags!r}")
        return dict(tags)

    def ids(self, **extra: Any) -> dict[str, Any]:
        """The identifying columns of this part's result rows."""
        return {"method": self.method, "fold": self.fold, "sequence": self.sequence, **extra}

    # ------------------------------------------------------------ files
    def checkpoint(self) -> Path:
        """The checkpoint the part was evaluated with (done.json), inside the part only."""
        name = self.done().get("checkpoint") if self.is_done() else None
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{self.done_path}: 'checkpoint' must be a file name, got {name!r}")
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
        """config.json and environment.json of this launch; the environments of earlier
        launches of the run (a resume on another machine or commit) stay listed under
        ``earlier_launches``."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, config)
        env, before = environment(), self.environment()
        if before:
            earlier = before.pop("earlier_launches", [])
            env["earlier_launches"] = [*earlier, before]
        write_json(self.path / ENVIRONMENT, env)

    @contextmanager
    def launch_lock(self, wait: bool = False) -> Iterator[RunDir]:
        """Hold the run for the whole life of a launch (``benchmark run``, ``evaluate``, the
        submitting process of a launcher). Creates the run directory.

        Held elsewhere: :class:`RunLockedError` naming the run and the holder, at once;
        with ``wait`` the call blocks until the holder exits instead. The lock is an OS
        file lock: a killed holder (kill -9 included) releases it.
        """
        self.path.mkdir(parents=True, exist_ok=True)

        def busy(holder: dict) -> RunLockedError:
            return RunLockedError(f"run {self.path} is in use by {describe_holder(holder)}; "
                                  "wait for it to finish, or pass --wait to start when it does")

        with _exclusive(self.path / LAUNCH_LOCK, f"run {self.path}", wait, busy):
            yield self

    def data_config(self, sequence: str, fold: int, **overrides: Any):
        """The data configuration the run's part (sequence, fold) was evaluated with, rebuilt
        from config.json (the one place that does so)."""
        from .data.module import DataConfig
        from .data.options import DataOptions

        config = self.config()
        profile = config.get("profile", {})
        if not isinstance(config.get("data_root"), str) or not isinstance(profile, dict):
            raise ValueError(f"{self.config_path}: no 'data_root' (a path) and 'profile' (an "  # noqa: TRY004
                             "object): not the config.json `benchmark run` writes")
        values = {"root": Path(config["data_root"]), "sequence": sequence, "fold": fold,
                      "fold_scheme": config.get("fold_scheme", "disjoint"),
                      "max_test_volumes": profile.get("max_test_volumes"),
                      "max_val_volumes": profile.get("max_val_volumes"),
                      "max_train_volumes": profile.get("max_train_volumes"),
                      "cohorts": config.get("cohorts"),
                      "options": DataOptions.from_dict(config.get("data_options"))}
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
        """Rebuild the run-level tables from every finished part (cheap; after each part,
        and at the end of every launch, resumed or not).

        Runs under the run's collect lock (blocking; several processes finishing parts at
        once take turns) and writes each table atomically; a table no finished part has
        any more is removed, so the run-level tables always equal the parts' tables.
        """
        with filelock.FileLock(str(self.path / COLLECT_LOCK) + ".lock",
                               timeout=COLLECT_TIMEOUT_S):
            parts = self.parts()
            for name in RESULT_FILES:
                frames = [pd.read_csv(p.path / name) for p in parts if (p.path / name).is_file()]
                if frames:
                    write_csv(self.path / name, pd.concat(frames, ignore_index=True))
                else:
                    (self.path / name).unlink(missing_ok=True)
            for leftover in self.path.glob(".*.tmp"):  # of a collect killed mid-write
                if any(leftover.name.startswith(f".{n}.") for n in RESULT_FILES):
                    leftover.unlink(missing_ok=True)

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
