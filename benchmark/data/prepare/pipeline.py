"""Raw scans -> benchmark-ready data: the subjects in parallel, the splits, the manifest,
and the ``data prepare`` command (see the package doc)."""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import SimpleITK as sitk

from benchmark.data.prepare.cohorts import (
    SEQUENCES,
    Cohort,
    SubjectFiles,
    discover,
    find_user_masks,
)
from benchmark.data.prepare.output import MIN_HEALTHY, write_manifest, write_splits
from benchmark.data.prepare.steps import PrepareError
from benchmark.data.prepare.subject import PrepareSettings, is_done, prepare_subject, summary_line

log = logging.getLogger("benchmark.prepare")


def _init_worker(threads: int) -> None:
    # one ITK thread per process: parallelism comes from subjects, and single-threaded
    # registration metrics sum in a fixed order (bit-identical reruns)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _run_one(sub: SubjectFiles, cohort: Cohort, settings: PrepareSettings, data: Path,
             cohort_mask: str | None) -> tuple[str, str, dict | str]:
    try:
        return "ok", sub.sid, prepare_subject(sub, cohort, settings, data, cohort_mask)
    except PrepareError as err:
        return "failed", sub.sid, str(err)
    except Exception as err:  # noqa: BLE001 - one odd scan must not stop the cohort
        return "failed", sub.sid, f"{sub.sid}: {type(err).__name__}: {err}"


def _progress(total: int):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="subject", file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None


def run_prepare(cohort: Cohort, raw: Path, out: Path, settings: PrepareSettings, *,
                jobs: int = 1, threads: int = 1, mask_dir: str | None = None,
                force: bool = False, n_val: int | None = None, echo=print) -> dict:
    """Prepare every subject of ``raw`` into ``out/Data``.

    Returns {"ok", "skipped", "failed", "splits"}: ``failed`` maps subject id -> error
    message, ``splits`` split name -> subject ids (empty ones are not written). Split CSVs
    and the manifest cover every subject prepared so far (this run and earlier ones with
    the same settings).
    """
    data = Path(out) / "Data"
    subjects = discover(raw, cohort)
    if not subjects:
        raise FileNotFoundError(
            f"no {cohort.name} files found under {raw}; expected names like "
            f"{cohort.example} (see datasets/{cohort.name}.md)")
    cohort_mask = find_user_masks(mask_dir, subjects)
    records, failed, todo = {}, {}, []
    for sid, sub in subjects.items():
        user_mask = sub.mask is not None or cohort_mask is not None
        done = None if force else is_done(data, cohort, sid, settings, user_mask)
        if done is not None:
            records[sid] = done
        else:
            todo.append(sub)
    skipped = sorted(records)
    echo(f"{cohort.name}: {len(subjects)} subjects found, {len(skipped)} already done, "
         f"{len(todo)} to prepare with {jobs} process(es)")
    bar = _progress(len(todo))
    for status, sid, result in _execute(todo, cohort, settings, data, cohort_mask, jobs, threads):
        if status == "ok":
            records[sid] = result
            line = summary_line(result)
        else:
            failed[sid] = result
            line = f"{sid}: FAILED - {result}"
        (bar.write(line) if bar is not None else echo(line))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    splits = {}
    if records:
        splits = write_splits(data, cohort, records, settings.seed, n_val)
        choices = tool_choices(records, settings, mask_dir)
        for line in describe_choices(cohort, choices):
            echo(line)
        write_manifest(data, {"generator": "benchmark.data.prepare",
                              "template": settings.template or "nilearn MNI152 2009a"},
                       choices={cohort.set_name: choices})
        _explain_small(cohort, splits, len(records), echo)
    return {"ok": sorted(set(records) - set(skipped)), "skipped": skipped, "failed": failed,
            "splits": splits}


def tool_choices(records: dict[str, dict], settings: PrepareSettings,
                 mask_dir: str | None) -> dict:
    """What the tool chose for the user, over every subject of the cohort prepared so far:
    the skull-stripping method ``auto`` resolved to (subject ids per method) and the
    subjects whose scans do not look like their sequence (modality.py)."""
    used: dict[str, list[str]] = {}
    for sid, record in sorted(records.items()):
        used.setdefault(str(record.get("skull_strip")), []).append(sid)
    suspect = {sid: [w for w in record.get("warnings", []) if "does not look like" in w]
               for sid, record in sorted(records.items())}
    return {"skull_strip": {"requested": settings.skull_strip, "mask_dir": mask_dir,
                            "used": used},
            "template": settings.template or "nilearn MNI152 2009a",
            "modality_warnings": {sid: w for sid, w in suspect.items() if w}}


def describe_choices(cohort: Cohort, choices: dict) -> list[str]:
    """The summary lines (printed once per `data prepare`) of :func:`tool_choices`."""
    skull = choices["skull_strip"]
    used = ", ".join(f"'{m}' for {len(s)} subject(s)" for m, s in skull["used"].items())
    how = ("chosen by --skull-strip auto (--mask-dir first, then hdbet, deepbet, nonzero, "
           "template); name one to choose it" if skull["requested"] == "auto"
           else f"as asked (--skull-strip {skull['requested']})")
    lines = [f"{cohort.set_name}: skull strip {used}: {how}"]
    odd = choices["modality_warnings"]
    if odd:
        lines.append(f"WARNING {cohort.set_name}: {len(odd)} subject(s) do not look like the "
                     f"sequence they are filed under: {', '.join(odd)} (their records say why)")
    return lines


def _explain_small(cohort: Cohort, splits: dict[str, list[str]], n: int, echo) -> None:
    """Say what a small cohort means for ``run`` (no split is ever written empty)."""
    if cohort.healthy and n < MIN_HEALTHY:
        echo(f"WARNING {cohort.set_name}: {n} subject(s) prepared; `run` needs at least "
             f"{MIN_HEALTHY} healthy subjects (1 test + one per fold)")
    elif not cohort.healthy and not splits.get(f"{cohort.set_name}_val"):
        echo(f"note: {cohort.set_name}: no validation split ({n} subject(s)): `run` scores it "
             "without the `val` threshold source (oracle and fpr* thresholds remain)")


def _execute(todo, cohort, settings, data, cohort_mask, jobs, threads):
    if jobs <= 1 or len(todo) <= 1:
        _init_worker(threads)
        for sub in todo:
            yield _run_one(sub, cohort, settings, data, cohort_mask)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(_run_one, s, cohort, settings, data, cohort_mask) for s in todo]
        for fut in as_completed(futures):
            yield fut.result()


def parse_sequences(text: str | None, cohort: Cohort) -> tuple[str, ...]:
    """``"t1,t2"`` -> ("t1", "t2"); default: the sequences the paper uses for the cohort."""
    if not text:
        return cohort.default_sequences
    seqs = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    bad = [s for s in seqs if s not in SEQUENCES]
    if bad or not seqs:
        raise ValueError(f"--sequence {text!r}: allowed values are {SEQUENCES} (comma list)")
    return seqs
