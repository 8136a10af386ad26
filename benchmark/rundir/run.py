"""A run directory: its records, its parts and its run-level tables.

    runs/<run-id>/config.json            fully resolved configuration (benchmark.runconfig)
    runs/<run-id>/environment.json       package versions, device, git commit
    runs/<run-id>/<method>/<seq>/fold<k>/  a part (benchmark.rundir.part)
    runs/<run-id>/per_volume.csv ...     the run-level tables: every finished part's rows
    runs/<run-id>/experiments/<name>/    outputs of `benchmark experiment <name>`
    runs/<run-id>/launch/<job-id>/       a launcher's job files (submitit: pickles, logs)

Concurrency (docs/failures.md): a process that launches work on a run holds
:meth:`RunDir.launch_lock` for its whole life (a second launch is refused, or waits); a
process that trains or evaluates a part holds :meth:`Part.claim`; :meth:`RunDir.collect`
rebuilds the run-level tables under a short lock of its own.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import is_leftover, read_json, write_csv, write_json
from ..locks import RunLockedError, describe_holder, exclusive, waiting
from .part import RESULT_FILES, Part

if TYPE_CHECKING:
    from ..data.module import DataConfig
    from ..runconfig import RunConfig

CONFIG, ENVIRONMENT = "config.json", "environment.json"
EXPERIMENTS, LAUNCH = "experiments", "launch"
# locks: <run>/.launch.lock (+ .launch.json: who holds it), <run>/.collect.lock
LAUNCH_LOCK, COLLECT_LOCK = ".launch", ".collect"
COLLECT_TIMEOUT_S = 600.0


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


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

    def run_config(self) -> RunConfig:
        """The run's configuration (config.json, of any version), typed; a file that is
        not one is a ValueError naming it."""
        from ..runconfig import RunConfig

        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run directory (no {CONFIG})")
        return RunConfig.read(self.config_path)

    def environment(self) -> dict:
        path = self.path / ENVIRONMENT
        return read_json(path) if path.is_file() else {}

    def write_records(self, config: RunConfig) -> None:
        """config.json and environment.json of this launch; the environments of earlier
        launches of the run (a resume on another machine or commit) stay listed under
        ``earlier_launches``."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, config.to_json())
        from ..environment import environment

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

        with exclusive(self.path / LAUNCH_LOCK, f"run {self.path}", wait, busy):
            yield self

    def data_config(self, sequence: str, fold: int, **overrides: Any) -> DataConfig:
        """The data configuration the run's part (sequence, fold) was evaluated with
        (benchmark.runconfig.RunConfig.data_config, from config.json)."""
        return self.run_config().data_config(sequence, fold, **overrides)

    def evaluation_sets(self, part: Part, max_volumes: int | None = None) -> dict:
        """{dataset: {split: records}} of a part, as it was evaluated (capped further by
        ``max_volumes``)."""
        from ..data.module import BenchmarkDataModule

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
        import pandas as pd

        with waiting(self.path / COLLECT_LOCK, COLLECT_TIMEOUT_S):
            parts = self.parts()
            for name in RESULT_FILES:
                frames = [pd.read_csv(p.table_path(name)) for p in parts
                          if p.table_path(name).is_file()]
                if frames:
                    write_csv(self.table_path(name), pd.concat(frames, ignore_index=True))
                else:
                    self.table_path(name).unlink(missing_ok=True)
            for leftover in self.path.glob(".*.tmp"):  # of a collect killed mid-write
                if any(is_leftover(leftover, n) for n in RESULT_FILES):
                    leftover.unlink(missing_ok=True)

    def table_path(self, name: str) -> Path:
        """A run-level table (one of the parts' tables, RESULT_FILES, collected)."""
        if name not in RESULT_FILES:
            raise ValueError(f"unknown run table {name!r}; allowed: {', '.join(RESULT_FILES)}")
        return self.path / name

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
