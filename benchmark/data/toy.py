"""A tiny data set in the reference layout, for tests: ellipsoid "brains", planted lesions.

Not a benchmark (see :mod:`benchmark.data.synth` for the synthetic default); it exists so
the loader, the harness and the CLI can be tested in seconds, with lesions whose location
is known exactly. ``write_toy_dataset(root)`` writes ``root/Data/...`` and returns root.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SHAPE = (96, 96, 50)
COHORTS = {"Brats21": "t2", "MSLUB": "t2", "ATLAS_v2": "t1", "WMH": "t1"}
_AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _brain(rng: np.random.Generator, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A smooth ellipsoid 'brain' (image in arbitrary units) and its mask."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    radii = np.array([0.8, 0.85, 0.9]) * rng.uniform(0.9, 1.05, 3)
    r = np.sqrt(((grid / radii[:, None, None, None]) ** 2).sum(0))
    mask = r < 1
    image = (300 + 200 * np.cos(3 * grid[0]) * np.cos(2 * grid[1]) + 50 * grid[2]) * mask
    image += rng.normal(0, 10, shape) * mask
    return image.astype(np.float32), mask


def _lesion(rng: np.random.Generator, mask: np.ndarray, radius: float) -> np.ndarray:
    inside = np.argwhere(mask)
    centre = inside[rng.integers(len(inside))]
    idx = np.indices(mask.shape)
    dist = np.sqrt(sum((idx[i] - centre[i]) ** 2 for i in range(3)))
    return (dist < radius) & mask


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, _AFFINE), str(path))


def _rows(kind: str, names: list[str], cohort_dir: str, seq: str, labelled: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "img_name": names, "age": 50, "label": int(labelled),
        "img_path": [f"/{kind}/{cohort_dir}/{seq}/{n}_{seq}.nii.gz" for n in names],
        "mask_path": [f"/{kind}/{cohort_dir}/mask/{n}_mask.nii.gz" for n in names],
        "seg_path": [f"/{kind}/{cohort_dir}/seg/{n}_seg.nii.gz" for n in names]
        if labelled else [np.nan] * len(names),
    })


def write_toy_dataset(root: Path, n_healthy: int = 12, n_test: int = 3, seed: int = 0) -> Path:
    """Write healthy IXI (t1+t2, 5 fold CSVs + test) and four labelled cohorts."""
    rng = np.random.default_rng(seed)
    ddir = Path(root) / "Data"
    names = [f"IXI{i:03d}-Toy-{i:04d}" for i in range(n_healthy)]
    for name in names:
        image, mask = _brain(rng)
        for seq, scale in (("t1", 1.0), ("t2", 1.3)):
            _save(image * scale, ddir / "Train/ixi" / seq / f"{name}_{seq}.nii.gz")
        _save(mask.astype(np.uint8), ddir / "Train/ixi/mask" / f"{name}_mask.nii.gz")
    splits = ddir / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    n_test_healthy = max(1, n_healthy // 6)
    test, pool = names[:n_test_healthy], names[n_test_healthy:]
    _rows("Train", test, "ixi", "t1", False).to_csv(splits / "IXI_test.csv")
    for k, chunk in enumerate(np.array_split(np.array(pool), 5)):
        rest = [n for n in pool if n not in set(chunk)]
        _rows("Train", rest, "ixi", "t1", False).to_csv(splits / f"IXI_train_fold{k}.csv")
        _rows("Train", list(chunk), "ixi", "t1", False).to_csv(splits / f"IXI_val_fold{k}.csv")
    pd.DataFrame({"img_name": names}).to_csv(splits / "avail_t2.csv")
    for cohort, seq in COHORTS.items():
        cnames = [f"{cohort}_{i:05d}" for i in range(2 * n_test)]
        for name in cnames:
            image, mask = _brain(rng)
            seg = _lesion(rng, mask, radius=rng.uniform(3, 7))
            image = np.where(seg, image * (1.8 if seq == "t2" else 0.4), image)
            _save(image.astype(np.float32), ddir / "Test" / cohort / seq / f"{name}_{seq}.nii.gz")
            _save(mask.astype(np.uint8), ddir / "Test" / cohort / "mask" / f"{name}_mask.nii.gz")
            _save(seg.astype(np.uint8), ddir / "Test" / cohort / "seg" / f"{name}_seg.nii.gz")
        _rows("Test", cnames[:n_test], cohort, seq, True).to_csv(splits / f"{cohort}_val.csv")
        _rows("Test", cnames[n_test:], cohort, seq, True).to_csv(splits / f"{cohort}_test.csv")
    return Path(root)
