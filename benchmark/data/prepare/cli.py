"""``python -m benchmark data prepare``: its arguments, and the call of the pipeline
(``pipeline.py``, imported when the command runs: ``--help`` answers at once)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.data.manifest import configure_verify_parser, verify_main  # one `data verify`
from benchmark.data.prepare.cohorts import COHORTS
from benchmark.data.prepare.skull import SKULL_STRIP_CHOICES


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
    from benchmark.data.prepare.cohorts import get_cohort, with_set_name
    from benchmark.data.prepare.pipeline import parse_sequences, run_prepare
    from benchmark.data.prepare.steps import RegistrationSettings
    from benchmark.data.prepare.subject import PrepareSettings

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
    """Stand-alone entry: ``python -m benchmark.data.prepare.cli {prepare,verify} ...``."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.data.prepare.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    configure_prepare_parser(sub.add_parser("prepare"))
    configure_verify_parser(sub.add_parser("verify"))
    args = parser.parse_args(argv)
    return prepare_main(args) if args.command == "prepare" else verify_main(args)


if __name__ == "__main__":
    sys.exit(main())
