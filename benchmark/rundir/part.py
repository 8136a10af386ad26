"""One (method, sequence, fold) part of a run: its directory and every file in it.

    <run>/<method>/<seq>/fold<k>/   best-<stage>.ckpt, logs/, maps/, contrast<cl>/maps/,
                                    hparams.json, per_volume.csv, per_dataset.csv,
                                    recon_quality.csv, curves.csv, timings.csv,
                                    domain_shift.csv, histograms*.npz, done.json (last);
                                    while unfinished: last-<stage>.ckpt (training state
                                    to resume from); under a launcher: submission.json
                                    (what was submitted) and job.json (what the job says)

A part is finished when its ``done.json`` exists; ``done.json`` records the checkpoint it
was evaluated with and the method's result tags. Only this class spells these names.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import read_json, write_csv, write_json
from ..locks import PartClaimedError, exclusive, read_holder
from ..tags import plain

if TYPE_CHECKING:
    import pandas as pd

    from .run import RunDir

# per-part tables that the run-level tables of the same name collect
RESULT_FILES = ("per_volume.csv", "per_dataset.csv", "timings.csv", "recon_quality.csv",
                "curves.csv", "domain_shift.csv")
DONE, HPARAMS = "done.json", "hparams.json"
BEST_CHECKPOINT = "best-{stage}.ckpt"    # the checkpoint a stage keeps (selected)
RESUME_CHECKPOINT = "last-{stage}.ckpt"  # a stage's training state while the part is unfinished
LOGS = "logs"                            # the loggers' folder
SUBMISSION, JOB = "submission.json", "job.json"  # a launched part's records
CLAIM_LOCK = ".claim"                    # <part>/.claim.lock (+ .claim.json: who holds it)


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
        with exclusive(self.path / CLAIM_LOCK, f"part {self.key}", False,
                       lambda holder: PartClaimedError(self, holder)):
            yield self

    def claim_holder(self) -> dict:
        """Who holds :meth:`claim`, from the record the holder keeps beside the lock ({}
        when nobody does; a holder killed with -9 leaves its record, so check its pid)."""
        return read_holder(self.path / CLAIM_LOCK)

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
            keep |= {"curves.csv", LOGS}
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
        ok = (bool, int, float, str, type(None))
        if not isinstance(tags, dict) or not all(
                isinstance(k, str) and k and isinstance(v, ok) for k, v in tags.items()):
            raise ValueError(f"{self.done_path}: 'tags' must be an object of names and plain "
                             f"values (e.g. {{\"pretrained\": false}}), got {tags!r}")
        return dict(tags)

    def ids(self, **extra: Any) -> dict[str, Any]:
        """The identifying columns of this part's result rows."""
        return {"method": self.method, "fold": self.fold, "sequence": self.sequence, **extra}

    # ------------------------------------------------------------ checkpoints and logs
    def checkpoint(self) -> Path:
        """The checkpoint the part was evaluated with (done.json), inside the part only."""
        name = self.done().get("checkpoint") if self.is_done() else None
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{self.done_path}: 'checkpoint' must be a file name, got {name!r}")
        default = BEST_CHECKPOINT.format(stage="main")
        for candidate in ([name] if name else []) + [default]:
            path = self.file(candidate)
            if path.is_file():
                return path
        raise FileNotFoundError(f"no checkpoint in {self.path} (expected {name or default})")

    def best_checkpoint(self, stage: str = "main") -> Path:
        """Where training keeps the selected checkpoint of ``stage``."""
        return self.path / BEST_CHECKPOINT.format(stage=stage)

    def resume_checkpoint(self, stage: str) -> Path:
        """Where training keeps the state of ``stage`` to resume from (unfinished parts)."""
        return self.path / RESUME_CHECKPOINT.format(stage=stage)

    def resume_checkpoints(self) -> list[Path]:
        """The training state an unfinished part resumes from (``last-<stage>.ckpt``)."""
        return sorted(self.path.glob(RESUME_CHECKPOINT.format(stage="*")))

    @property
    def logs_dir(self) -> Path:
        """The loggers' folder (``logs/<version>/`` for CSV; ``<logger>/`` for others)."""
        return self.path / LOGS

    def resumed_log_version(self, stage: str) -> str:
        """The log folder name of a resumed stage (``<stage>-resumedN``, N counting the
        resumes logged so far in any logger's folder), so the first attempt's logs stay."""
        return f"{stage}-resumed{len(list(self.path.glob(f'*/{stage}-resumed*'))) + 1}"

    # ------------------------------------------------------------ cached maps
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

    # ------------------------------------------------------------ tables and records
    def table_path(self, name: str) -> Path:
        if name not in RESULT_FILES:
            raise ValueError(f"unknown part table {name!r}; allowed: {', '.join(RESULT_FILES)}")
        return self.path / name

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        write_csv(self.table_path(name), frame)

    def table(self, name: str) -> pd.DataFrame | None:
        """One of the part's tables (RESULT_FILES), None if it has not been written."""
        path = self.table_path(name)
        if not path.is_file():
            return None
        import pandas as pd

        return pd.read_csv(path)

    def write_json(self, name: str, payload: dict) -> None:
        write_json(self.file(name), payload)

    def write_hparams(self, hparams: dict) -> None:
        """hparams.json: the method's resolved keyword arguments."""
        write_json(self.path / HPARAMS, hparams)

    def mark_done(self, checkpoint: Path, tags: dict[str, Any], **record: Any) -> None:
        """done.json, written last: the part is complete on disk before it exists. Then the
        training state kept for resuming (last-<stage>.ckpt) goes: finished parts keep
        weights only."""
        write_json(self.done_path, {"checkpoint": Path(checkpoint).name,
                                    "tags": {k: plain(v) for k, v in tags.items()}, **record})
        for path in self.resume_checkpoints():
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------ launched jobs
    @property
    def submission_path(self) -> Path:
        """What a launcher submitted for this part (job id, log files); launcher-written."""
        return self.path / SUBMISSION

    @property
    def job_path(self) -> Path:
        """What the part's job reports (state, host, pid, times, error); job-written."""
        return self.path / JOB

    def submission(self) -> dict:
        """submission.json ({} if absent or unreadable)."""
        return _record(self.submission_path)

    def job(self) -> dict:
        """job.json ({} if absent or unreadable)."""
        return _record(self.job_path)

    def update_submission(self, **values: Any) -> dict:
        return _update(self.submission_path, values)

    def update_job(self, **values: Any) -> dict:
        return _update(self.job_path, values)

    def forget_job(self) -> None:
        """A new attempt: the old attempt's submission.json and job.json go."""
        self.submission_path.unlink(missing_ok=True)
        self.job_path.unlink(missing_ok=True)


def _record(path: Path) -> dict:
    try:
        return read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _update(path: Path, values: dict) -> dict:
    record = {**_record(path), **values}
    write_json(path, record)
    return record
