"""The ``predict`` and ``export`` commands (registered in benchmark/cli.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.prepare.skull import SKULL_STRIP_CHOICES


def configure_predict_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path,
                   help="a finished part RUN/METHOD/SEQ/foldK or a bundle folder (`export`)")
    p.add_argument("--input", required=True, action="append", type=Path, metavar="SCAN",
                   help="a raw NIfTI scan of the model's sequence; repeat for several")
    p.add_argument("--mask", action="append", type=Path, default=None, metavar="BRAIN_MASK",
                   help="the scan's brain mask on its grid (label > 0 = brain); one per "
                        "--input, same order; default: skull stripping as in training")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--threshold", default="fpr5",
                   help="fpr1, fpr5 (default) or fpr10: the threshold chosen on the training "
                        "data's healthy validation scans; or a number")
    p.add_argument("--skull-strip", default=None, choices=SKULL_STRIP_CHOICES,
                   help="override the training data's skull-stripping choice (see `data "
                        "prepare --help`); --mask implies 'mask'")
    p.add_argument("--fast", action="store_true",
                   help="coarse registration + short N4 (previews and tests, not for results)")
    p.add_argument("--ignore-sequence-check", action="store_true",
                   help="predict although data prepare's sequence check finds the scan to be "
                        "another sequence than the model's")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda "
                   "if available)")
    p.add_argument("--seed", type=int, default=3141,
                   help="torch seed before each scan (methods that draw noise)")
    p.add_argument("--batch-size", type=int, default=50, help="slices per forward pass")


def predict_main(args: argparse.Namespace) -> int:
    from .bundle import open_model
    from .predict import PredictOptions, check_inputs, predict_scan

    check_inputs(args.input, args.mask)
    model = open_model(args.model)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    opts = PredictOptions(threshold=args.threshold, device=device, fast=args.fast,
                          skull_strip=args.skull_strip, seed=args.seed,
                          batch_size=args.batch_size,
                          check_sequence=not args.ignore_sequence_check)
    args.out.mkdir(parents=True, exist_ok=True)
    masks = args.mask or [None] * len(args.input)
    for scan, mask in zip(args.input, masks):
        record = predict_scan(model, scan, mask, args.out, opts)
        thr = record["threshold"]
        print(f"{scan}: {model.describe()}, threshold {thr['source']} = {thr['value']:.4g}, "
              f"{record['lesion_voxels']} lesion voxels -> {record['outputs']['anomaly']}, "
              f"{record['outputs']['lesions']}, {record['outputs']['overlay']}")
    return 0


def configure_export_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("part", type=Path, help="a finished part RUN/METHOD/SEQ/foldK")
    p.add_argument("--out", required=True, type=Path,
                   help="the bundle folder to write (must not exist, or be empty)")


def export_main(args: argparse.Namespace) -> int:
    from .bundle import export_part

    out = export_part(args.part, args.out)
    print(f"exported {args.part} -> {out} (model.safetensors, bundle.json, README.md)")
    return 0
