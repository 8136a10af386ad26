"""Figure of the synthetic data: a few axial slices per cohort, image and label.

    python tools/plot_synthetic.py [--root DIR] [--size quick] [--out docs/img/synthetic.png]

Reads the files as written on disk (generating the data set first if needed), shows for
each cohort three subjects at the slice with the most lesion voxels (the middle slice
for healthy ones): the image, and the image with the label outlined in red.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from benchmark.data.synth import ensure_synthetic

ROWS = [  # (title, split csv, sequence swap)
    ("IXI-like healthy, T1", "IXI_test", None),
    ("IXI-like healthy, T2", "avail_t2", None),
    ("tumour (BraTS-like), T2", "Brats21_test", None),
    ("MS (MSLUB-like), T2", "MSLUB_test", None),
    ("stroke (ATLAS-like), T1", "ATLAS_v2_test", None),
    ("WMH (WMH-like), T1", "WMH_test", None),
    ("other-site healthy (WMH scanners), T1", "WMH_healthy", None),
]


def _load(data: Path, rel) -> np.ndarray | None:
    if not isinstance(rel, str) or not rel:
        return None
    return np.asarray(nib.load(data / rel.lstrip("/")).dataobj)


def plot(root: Path, out: Path, per_row: int = 3) -> None:
    data = root / "Data"
    fig, axes = plt.subplots(len(ROWS), 2 * per_row, figsize=(2.0 * per_row * 2, 2.1 * len(ROWS)))
    for r, (title, split, _) in enumerate(ROWS):
        df = pd.read_csv(data / "splits" / f"{split}.csv").head(per_row)
        for c, row in enumerate(df.itertuples()):
            image = _load(data, row.img_path).astype(float)
            seg = _load(data, row.seg_path)
            z = int(np.argmax(seg.sum((0, 1)))) if seg is not None and seg.any() else image.shape[2] // 2
            vmax = np.percentile(image[image > 0], 99.5)
            for k in range(2):
                ax = axes[r, 2 * c + k]
                ax.imshow(image[:, :, z].T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
                if k == 1 and seg is not None and seg[:, :, z].any():
                    ax.contour(seg[:, :, z].T, [0.5], colors="red", linewidths=0.8, origin="lower")
                ax.set_xticks([]), ax.set_yticks([])
            n = int(seg.sum()) if seg is not None else 0
            axes[r, 2 * c].set_title(f"{row.img_name} ({row.site})", fontsize=7)
            axes[r, 2 * c + 1].set_title(f"label: {n} voxels" if n else "no lesion", fontsize=7)
        axes[r, 0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="data root (default: generate)")
    parser.add_argument("--size", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--out", type=Path, default=Path("docs/img/synthetic.png"))
    args = parser.parse_args()
    root = args.root or ensure_synthetic(args.size)
    plot(root, args.out)


if __name__ == "__main__":
    main()
