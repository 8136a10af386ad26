"""Dice of deepbet's brain mask against the DLMUSE label maps (label > 0 = brain).

    OMP_NUM_THREADS=1 python datasets/real-mini/deepbet_dice.py \
        ../shared/data/real-samples/ixi_t1_cohort > datasets/real-mini/deepbet_dice.csv

Each scan in its own space (2 mm, as stored): deepbet runs through the same wrapper
``data prepare`` uses (benchmark.data.prepare.skull.deepbet_mask), one CPU thread.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmark.data.prepare import skull, steps


def main(folder: Path) -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    print("subject,dice,deepbet_ml,dlmuse_ml,cpu_s")
    for path in sorted(folder.glob("*_T1.nii.gz")):
        sid = path.name[: -len("_T1.nii.gz")]
        image = steps.read_image(path, sid, "t1")
        labels = steps.read_image(folder / f"{sid}_T1_DLMUSE.nii.gz", sid, "DLMUSE")
        start = time.process_time()
        mask = sitk.GetArrayFromImage(skull.deepbet_mask(image, sid)) > 0
        cpu = time.process_time() - start
        ref = sitk.GetArrayFromImage(labels) > 0
        ml = np.prod(image.GetSpacing()) / 1000
        dice = 2 * (mask & ref).sum() / (mask.sum() + ref.sum())
        print(f"{sid},{dice:.4f},{mask.sum() * ml:.0f},{ref.sum() * ml:.0f},{cpu:.1f}",
              flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
