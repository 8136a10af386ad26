"""Domain shift (paper Sec. 4.5.2): every finished part's test sets with inputs x ** cl.

    python -m benchmark experiment domain-shift runs/<id> [--methods ae,cddpm]

For each finished (method, sequence, fold) part of the run, the trained method
reconstructs every test set at each contrast level (maps cached in the part's
``contrast<cl>/maps/``); the protocol then scores them against thresholds from the part's
own unshifted validation maps and writes ``domain_shift.csv`` (per part and for the run:
AUPRC, Dice, SSIM/l1 and the histogram divergences per contrast level). ``evaluate``
re-scores the cached shifted maps without a model.
"""
from __future__ import annotations

import argparse

from benchmark.experiments.common import device as torch_device
from benchmark.rundir import RunDir
from benchmark.tags import tag_columns


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory with finished parts")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all)")
    parser.add_argument("--sequence", default=None, help="t1 or t2 (default: both)")
    parser.add_argument("--fold", type=int, default=None, help="default: every fold")
    parser.add_argument("--contrasts", default=None,
                        help="comma-separated contrast levels cl (inputs x ** cl; 1 is the "
                             "part's own maps); default: the paper's, "
                             "benchmark.scoring.domain_shift.CONTRAST_LEVELS")
    parser.add_argument("--device", default="auto",
                        help="auto (default: cuda where available, else cpu), cpu, cuda, ...")


def main(args: argparse.Namespace) -> int:
    from benchmark.checkpoint import load_method
    from benchmark.scoring.domain_shift import (
        CONTRAST_LEVELS,
        infer_contrast_levels,
        score_domain_shift,
    )

    run = RunDir(args.run_dir)
    config = run.run_config()
    contrasts = args.contrasts or ",".join(f"{c:g}" for c in CONTRAST_LEVELS)
    levels = tuple(float(c) for c in contrasts.split(",") if c.strip())
    if any(c <= 0 for c in levels):
        raise ValueError(f"--contrasts {contrasts!r}: contrast levels must be > 0")
    methods = args.methods.split(",") if args.methods else None
    parts = run.find_parts(methods, args.sequence, args.fold)
    if not parts:
        raise FileNotFoundError(f"{run.path}: no finished part matches")
    device = torch_device(args.device)
    for part in parts:
        method = load_method(part.checkpoint()).to(device)
        sets = run.evaluation_sets(part)
        infer_contrast_levels(method, sets, part, device, levels=levels,
                              batch_size=config.profile.eval_batch_size)
        ids = part.ids(profile=config.profile.name, data_source=config.data_source,
                       **tag_columns(part.tags()))
        part.write_table("domain_shift.csv", score_domain_shift(part, sets, ids))
        print(f"{part.method} {part.sequence} fold{part.fold}: done", flush=True)
    run.collect()
    print(f"wrote domain_shift.csv for {len(parts)} part(s) of {run.path}")
    return 0
