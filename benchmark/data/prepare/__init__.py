"""Raw scans -> benchmark-ready data (paper Sec. 4.2): ``python -m benchmark data prepare``.

    python -m benchmark data prepare --cohort ixi --raw ~/IXI --out ~/uad --jobs 4
    python -m benchmark data prepare --cohort custom --name MyMS --raw ~/ms --out ~/uad
    python -m benchmark data verify ~/uad

Steps per subject (each a function in ``steps``/``skull``): reorient +
1 mm resampling, affine registration to a template, skull stripping, crop + N4, pad +
downsample to 96x96x50, then the authors' layout with split CSVs and a sha256 manifest.
Subjects run in parallel processes; a subject already prepared with the same settings is
skipped; a bad subject is reported by id and the others still run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import SimpleITK as sitk

from benchmark.data.manifest import configure_verify_parser, verify_main  # one `data verify`
from benchmark.data.prepare.cohorts import (
    COHORTS,
    SEQUENCES,
    Cohort,
    SubjectFiles,
    discover,
    find_user_masks,
    get_cohort,
    with_set_name,
)
from benchmark.data.prepare.output import MIN_HEALTHY, write_manifest, write_splits
from benchmark.data.prepare.skull import SKULL_STRIP_CHOICES
from benchmark.data.prepare.steps import PrepareError, RegistrationSettings
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


def configure_prepare_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m benchmark data prepare``."""
    parser.add_argument("--cohort", required=True, choices=sorted(COHORTS))
    parser.add_argument("--name", default=None,
                        help="set name of a labelled cohort (folder Data/Test/NAME, splits "
                             "NAME_{val,test}.csv), so several cohorts of one's own (or one "
                             "cohort in two sequences) live in one data root; default: "
                             "the cohort's (custom: 'custom')")
    parser.add_argument("--raw", required=True, type=Path, help="the raw download (folder)")
    parser.add_argument("--out", required=True, type=Path, help="writes OUT/Data/...")
    parser.add_argument("--sequence", default=None,
                        help="t1|t2|flair or a comma list (first = registration reference); "
                             "default: the paper's sequence(s) for the cohort")
    parser.add_argument("--jobs", type=int, default=1, help="subjects in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1, help="ITK threads per process")
    parser.add_argument("--template", default=None,
                        help="template T1 brain, e.g. SRI24 T1_brain.nii (default: nilearn MNI152)")
    parser.add_argument("--mask-dir", default=None,
                        help="brain masks: a folder (file name starts with the subject id, "
                             "label > 0 = brain) or one file in template space")
    parser.add_argument("--skull-strip", default="auto", choices=SKULL_STRIP_CHOICES,
                        help="auto: --mask-dir (your masks win) > hdbet > deepbet (T1) > "
                             "nonzero (already stripped) > template (crude fallback); see "
                             "datasets/README.md")
    parser.add_argument("--no-n4", action="store_true",
                        help="skip N4 bias correction: the input is already bias-corrected "
                             "(recorded per subject)")
    parser.add_argument("--n-val", type=int, default=None,
                        help="labelled cohorts: subjects in the val split (default: the "
                             "paper's share; custom 25 %%; at least 1 from 2 subjects on; "
                             "0 = no val split)")
    parser.add_argument("--seed", type=int, default=3141, help="split seed")
    parser.add_argument("--fast", action="store_true",
                        help="coarse registration + short N4 (previews/tests, not for results)")
    parser.add_argument("--force", action="store_true", help="redo subjects already prepared")


def prepare_main(args: argparse.Namespace) -> int:
    """0: all subjects prepared; 1: some failed (the rest are written); 2: bad arguments."""
    try:
        cohort = get_cohort(args.cohort)
        if args.name:
            cohort = with_set_name(cohort, args.name)
        seqs = parse_sequences(args.sequence, cohort)
        if args.jobs < 1 or args.threads < 1:
            raise ValueError("--jobs and --threads must be >= 1")
        kw = {"skull_strip": args.skull_strip, "template": args.template, "seed": args.seed,
              "n4": not args.no_n4}
        settings = (PrepareSettings.fast(seqs, **kw) if args.fast
                    else PrepareSettings(seqs, registration=RegistrationSettings(), **kw))
        result = run_prepare(cohort, args.raw, args.out, settings, jobs=args.jobs,
                             threads=args.threads, mask_dir=args.mask_dir, force=args.force,
                             n_val=args.n_val)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done: {len(result['ok'])} prepared, {len(result['skipped'])} skipped (already "
          f"done), {len(result['failed'])} failed -> {Path(args.out) / 'Data'}")
    for msg in result["failed"].values():
        print(f"  FAILED {msg}")
    return 1 if result["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m benchmark.data.prepare {prepare,verify} ...``."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.data.prepare")
    sub = parser.add_subparsers(dest="command", required=True)
    configure_prepare_parser(sub.add_parser("prepare"))
    configure_verify_parser(sub.add_parser("verify"))
    args = parser.parse_args(argv)
    return prepare_main(args) if args.command == "prepare" else verify_main(args)


if __name__ == "__main__":
    sys.exit(main())
