"""CPU cost of the data options (benchmark.data.options, docs/data-options.md).

    OMP_NUM_THREADS=1 python -m perf.bench_data_options --batches 20

Prints CPU seconds (``time.process_time``, one thread) per training batch of
``SliceDataset`` with the paper's augmentation, for batch 16 (quick/reference profiles)
and 32 (paper), under the default and each option that changes the per-item work; then
the load-time cost of ``smoothing=curvature_flow`` per volume (paid once per volume and
process: load_volume caches), for a 96x96x50 file at 2 mm and a 192x192x100 file at 1 mm.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmark.data.loader import SliceDataset, Volume, load_volume, paper_augmentation
from benchmark.data.options import PRESETS, DataOptions
from perf.test_loading import write_case
from perf.workload import make_volume

VARIANTS = {
    "default (slice, clamp, 1 mm)": DataOptions(),
    "augment_space=volume": DataOptions(augment_space="volume"),
    "augment_clamp=false": DataOptions(augment_clamp=False),
    "augment_voxel_mm=2": DataOptions(augment_voxel_mm=2.0),
    "preset=authors": PRESETS["authors"],
}


def _volumes(n: int) -> list[Volume]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        _, _, brain = make_volume(rng)
        image = np.clip(0.5 + 0.2 * rng.standard_normal(brain.shape), 0, 1) * brain
        out.append(Volume(None, image.astype(np.float32), brain, None))  # record unused here
    return out


def batch_seconds(volumes: list[Volume], opts: DataOptions, batch: int, batches: int) -> float:
    """CPU seconds per batch of ``batch`` augmented training items."""
    ds = SliceDataset(volumes, repeats=max(1, batch * batches // len(volumes) + 1),
                      augment=paper_augmentation(), augment_space=opts.augment_space,
                      clamp=opts.augment_clamp, voxel_mm=opts.augment_voxel_mm)
    torch.manual_seed(0)
    ds[0]  # warm-up
    start = time.process_time()
    for i in range(batch * batches):
        ds[i]
    return (time.process_time() - start) / batches


def smoothing_seconds(repeats: int) -> dict[str, tuple[float, float]]:
    """{case: (seconds to load without smoothing, with)} per uncached load."""
    load = load_volume.__wrapped__
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spacing, name in ((2, "2 mm 96x96x50"), (1, "1 mm 192x192x100")):
            record, _, _ = write_case(Path(tmp), spacing)
            times = []
            for rec in (record, replace(record, smoothing="curvature_flow")):
                load(rec)
                start = time.process_time()
                for _ in range(repeats):
                    load(rec)
                times.append((time.process_time() - start) / repeats)
            out[name] = (times[0], times[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="batches timed per variant")
    parser.add_argument("--volumes", type=int, default=8)
    parser.add_argument("--load-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    volumes = _volumes(args.volumes)
    print(f"CPU s per training batch ({args.batches} batches, {args.volumes} volumes 96x96x50)")
    for batch in (16, 32):
        base = None
        for label, opts in VARIANTS.items():
            s = batch_seconds(volumes, opts, batch, args.batches)
            base = base or s
            print(f"  batch {batch:>2}  {label:<30} {s:7.3f} s  ({s / base:4.1f}x)")
    print(f"CPU s per volume load, uncached (mean of {args.load_repeats})")
    for name, (plain, smooth) in smoothing_seconds(args.load_repeats).items():
        print(f"  {name:<18} none {plain:6.3f} s   curvature_flow {smooth:6.3f} s "
              f"(+{smooth - plain:.3f} s)")


if __name__ == "__main__":
    main()
