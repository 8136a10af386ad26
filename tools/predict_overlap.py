"""Overlap of a `benchmark predict` lesion mask with a reference lesion mask, against chance.

    python tools/predict_overlap.py OUT/patient07_T1 patient07_seg.nii.gz

reads OUT/patient07_T1_{anomaly,lesions}.nii.gz (the input's grid) and prints the Dice of
the lesion mask, the Dice a random mask of the same size would reach in expectation
(chance), and the AUPRC of the map against its chance level (the lesion prevalence).
Both are counted in the scored region: the voxels where the map is defined (> 0: the
prepared brain, the central 100 mm axially). A random mask of P voxels in a region of N
voxels holding L_r of the L lesion voxels has E[TP] = P L_r / N, so chance Dice =
2 P L_r / (N (P + L)).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmark import metrics


def overlap(prefix: str, reference: Path) -> dict[str, float]:
    amap = nib.load(f"{prefix}_anomaly.nii.gz")
    lesions = nib.load(f"{prefix}_lesions.nii.gz")
    truth = nib.load(reference)
    if truth.shape != amap.shape or not np.allclose(truth.affine, amap.affine, atol=1e-4):
        raise SystemExit(f"{reference} is not on the prediction's grid")
    scores, pred = amap.get_fdata(dtype=np.float32), lesions.get_fdata() > 0
    y = truth.get_fdata() > 0
    region = scores > 0
    c = metrics.confusion(pred, y)
    p, n_lesion, n_region = int(pred.sum()), int(y.sum()), int(region.sum())
    lesion_in_region = int((y & region).sum())
    return {
        "dice": metrics.overlap_scores(c["tp"], c["fp"], c["fn"])["dice"],
        "dice_chance": 2 * p * lesion_in_region / (n_region * (p + n_lesion)),
        "auprc": metrics.auprc(scores[region], y[region]),
        "auprc_chance": lesion_in_region / n_region,
        "predicted_voxels": p, "lesion_voxels": n_lesion,
        "lesion_voxels_scored": lesion_in_region, "scored_voxels": n_region,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="OUT/<name>: the prediction's files without suffix")
    parser.add_argument("reference", type=Path, help="the reference lesion mask (> 0 = lesion)")
    args = parser.parse_args(argv)
    got = overlap(args.prefix, args.reference)
    print(f"Dice {got['dice']:.4f} (chance {got['dice_chance']:.4f}, "
          f"x{got['dice'] / got['dice_chance']:.2f}); AUPRC {got['auprc']:.4f} (chance "
          f"{got['auprc_chance']:.4f}, x{got['auprc'] / got['auprc_chance']:.2f}); "
          f"{got['predicted_voxels']} voxels flagged, {got['lesion_voxels']} lesion voxels "
          f"({got['lesion_voxels_scored']} in the {got['scored_voxels']} scored)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
