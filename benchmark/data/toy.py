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

from . import layout

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


def _rows(names: list[str], cohort: str | None, seq: str) -> list[dict]:
    """Split rows; cohort None: healthy IXI training subjects."""
    rows = []
    for n in names:
        paths = layout.volume_paths(n, [seq], cohort)
        rows.append({"img_name": n, "age": 50, "label": int(cohort is not None),
                     "img_path": paths[seq], "mask_path": paths["mask"],
                     "seg_path": paths.get("seg", np.nan)})
    return rows


def write_toy_dataset(root: Path, n_healthy: int = 12, n_test: int = 3, seed: int = 0) -> Path:
    """Write healthy IXI (t1+t2, 5 fold CSVs + test) and four labelled cohorts."""
    rng = np.random.default_rng(seed)
    ddir = Path(root) / "Data"
    names = [f"IXI{i:03d}-Toy-{i:04d}" for i in range(n_healthy)]
    for name in names:
        image, mask = _brain(rng)
        paths = layout.volume_paths(name, layout.SEQUENCES)
        for seq, scale in (("t1", 1.0), ("t2", 1.3)):
            _save(image * scale, ddir / paths[seq].lstrip("/"))
        _save(mask.astype(np.uint8), ddir / paths["mask"].lstrip("/"))
    splits = ddir / "splits"
    n_test_healthy = max(1, n_healthy // 6)
    test, pool = names[:n_test_healthy], names[n_test_healthy:]
    layout.write_split(splits, f"{layout.HEALTHY_COHORT}_test", _rows(test, None, "t1"))
    for k, chunk in enumerate(np.array_split(np.array(pool), layout.N_FOLDS)):
        rest = [n for n in pool if n not in set(chunk)]
        layout.write_split(splits, layout.ixi_split_name("train", k), _rows(rest, None, "t1"))
        layout.write_split(splits, layout.ixi_split_name("val", k), _rows(list(chunk), None, "t1"))
    pd.DataFrame({"img_name": names}).to_csv(splits / "avail_t2.csv")
    for cohort, seq in COHORTS.items():
        cnames = [f"{cohort}_{i:05d}" for i in range(2 * n_test)]
        for name in cnames:
            image, mask = _brain(rng)
            seg = _lesion(rng, mask, radius=rng.uniform(3, 7))
            image = np.where(seg, image * (1.8 if seq == "t2" else 0.4), image)
            paths = layout.volume_paths(name, [seq], cohort)
            _save(image.astype(np.float32), ddir / paths[seq].lstrip("/"))
            _save(mask.astype(np.uint8), ddir / paths["mask"].lstrip("/"))
            _save(seg.astype(np.uint8), ddir / paths["seg"].lstrip("/"))
        layout.write_split(splits, f"{cohort}_val", _rows(cnames[:n_test], cohort, seq))
        layout.write_split(splits, f"{cohort}_test", _rows(cnames[n_test:], cohort, seq))
    return Path(root)
