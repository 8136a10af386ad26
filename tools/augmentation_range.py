"""How often the augmentation clamp acts (docs/data-options.md, augment_clamp).

    python tools/augmentation_range.py [--root DATA_ROOT] [--volumes 8] [--repeats 50]

Draws training items of the healthy IXI T2 volumes of fold 0 (default root: the quick
synthetic set, generated if missing) under the authors' data pipeline without the clamp
(``preset=authors``: volume space, no clamp, 2 mm) and prints the share of slices with
values above 1, below 0, and with signal (|x| > 0.01) outside the brain mask.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmark.data.loader import SliceDataset, paper_augmentation
from benchmark.data.module import BenchmarkDataModule, DataConfig
from benchmark.data.options import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--volumes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.root is None:
        from benchmark.data.synth import ensure_synthetic

        args.root = ensure_synthetic(size="quick", progress=False)
    torch.set_num_threads(1)
    data = BenchmarkDataModule(DataConfig(root=args.root, sequence="t2", fold=0,
                                          max_train_volumes=args.volumes))
    opts = PRESETS["authors"]
    ds = SliceDataset(data.train_volumes, repeats=args.repeats, augment=paper_augmentation(),
                      augment_space=opts.augment_space, clamp=opts.augment_clamp,
                      voxel_mm=opts.augment_voxel_mm)
    torch.manual_seed(args.seed)
    above = below = background = 0
    for i in range(len(ds)):
        item = ds[i]
        x, brain = item["image"], item["mask"] > 0
        above += bool(x.max() > 1)
        below += bool(x.min() < 0)
        background += bool((x[~brain].abs() > 0.01).any())
    n = len(ds)
    print(f"{n} training items of {len(data.train_volumes)} IXI T2 volumes, preset=authors: "
          f"max > 1 in {above / n:.1%}, min < 0 in {below / n:.1%}, background signal in "
          f"{background / n:.1%}")


if __name__ == "__main__":
    main()
