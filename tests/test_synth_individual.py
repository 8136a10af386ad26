"""Individual anatomies (synth.individual): tissue fractions of a known phantom, the
train/test split of the scans, and a smoke data set rendered from them."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from benchmark.data import layout, synth
from benchmark.data.synth import individual
from benchmark.data.synth.anatomy import grid_affine, reference_anatomy


def _phantom(seed: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A T1-like image of crisp tissue (the template's dominant tissue per voxel: CSF 300,
    GM 660, WM 1000), blurred by half a voxel, noise 10, shifted by ``shift`` voxels in x;
    its mask and its labels (0 outside, 1 CSF, 2 GM, 3 WM)."""
    from scipy import ndimage

    a = reference_anatomy()
    labels = (1 + np.argmax(np.stack([a.csf, a.gm, a.wm]), 0)) * a.mask
    image = np.choose(labels, [0.0, 300.0, 660.0, 1000.0])
    image = ndimage.gaussian_filter(image, 0.5) * a.mask
    image += np.random.default_rng(seed).normal(0, 10, image.shape) * a.mask
    roll = lambda x: np.roll(x, shift, 0)
    return roll(image).astype(np.float32), roll(a.mask).astype(np.uint8), roll(labels)


def _prepared_root(tmp_path, n: int = 6):
    """A prepared-layout healthy T1 root of ``n`` phantoms (each shifted differently)."""
    for i in range(n):
        image, mask, _ = _phantom(i, shift=i - n // 2)
        for key, arr in (("t1", image), ("mask", mask)):
            rel = layout.volume_paths(f"S{i:02d}", ("t1",))[key]
            path = tmp_path / "prep" / "Data" / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, grid_affine()), path)
    return tmp_path / "prep"


def test_partial_volume_fractions_hand_computed():
    # three pure tissues of 1000 voxels each and three mixed voxels
    values = np.concatenate([np.full(1000, 300.0), np.full(1000, 660.0), np.full(1000, 1000.0),
                             [830.0, 480.0, 1200.0]])
    image = values.reshape(1, 1, -1)
    maps = individual.tissue_fractions(image, np.ones_like(image))
    assert np.allclose(individual.tissue_means(values), [300, 660, 1000], atol=1)
    got = {t: maps[t][0, 0, -3:] for t in ("csf", "gm", "wm")}
    # 830 = half GM, half WM; 480 = half CSF, half GM; 1200 beyond WM = pure WM
    assert np.allclose(got["wm"], [0.5, 0.0, 1.0], atol=0.01)
    assert np.allclose(got["gm"], [0.5, 0.5, 0.0], atol=0.01)
    assert np.allclose(got["csf"], [0.0, 0.5, 0.0], atol=0.01)


def test_tissue_fractions_recover_the_phantom_tissues():
    from scipy import ndimage

    image, mask, labels = _phantom(0)
    maps = individual.tissue_fractions(image, mask)
    for k, tissue in enumerate(("csf", "gm", "wm"), start=1):
        # voxels whose whole 3x3x3 neighbourhood is this tissue: nearly pure
        core = ndimage.binary_erosion(labels == k, np.ones((3, 3, 3)))
        assert core.sum() > 50, tissue
        assert maps[tissue][core].mean() > 0.9, tissue
    total = maps["csf"] + maps["gm"] + maps["wm"]
    assert np.allclose(total[mask > 0], 1.0) and not total[mask == 0].any()


def test_tissue_fractions_refuse_bad_input():
    with pytest.raises(ValueError, match="shape"):
        individual.tissue_fractions(np.zeros((4, 4, 4)), np.ones((4, 4, 3)))
    with pytest.raises(ValueError, match="finite"):
        individual.tissue_fractions(np.full((8, 8, 8), np.nan), np.ones((8, 8, 8)))


def test_scans_split_between_training_and_test_anatomies(tmp_path):
    root = _prepared_root(tmp_path, n=6)
    pool, other = individual.assign(root, n_pool=10, n_other=7, salt=3)
    assert set(pool) == {"S00", "S01", "S02", "S03"}  # the first two thirds, cycled
    assert set(other) == {"S04", "S05"}
    with pytest.raises(FileNotFoundError, match="--anatomy-from"):
        individual.healthy_scans(tmp_path / "nothing")


def test_smoke_data_set_from_individual_anatomies(tmp_path):
    prep = _prepared_root(tmp_path, n=6)
    out = synth.ensure_synthetic("smoke", root=tmp_path / "data", progress=False,
                                 workers=1, anatomy_from=prep)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["anatomy"]["method"] == individual.METHOD
    assert len(manifest["parameters"]["anatomy"]["files"]) == 12  # 6 scans x (t1, mask)
    specs = synth.plan("smoke", 0, anatomy_from=prep)
    pool = synth.SIZES["smoke"].ixi_pool
    train_scans = {s.anatomy[1] for s in specs["ixi"][:pool]}
    test_scans = {s.anatomy[1] for c, v in specs.items() for s in
                  (v[pool:] if c == "ixi" else v)}
    assert train_scans <= {"S00", "S01", "S02", "S03"}
    assert test_scans <= {"S04", "S05"} and test_scans
    assert synth.manifest_matches(out, "smoke", 0, anatomy_from=prep)
    assert not synth.manifest_matches(out, "smoke", 0)  # not the template's data set
    # a subject's brain follows its scan: S05 is the phantom shifted by +2 voxels in x
    spec = next(s for s in specs["MSLUB"] if s.anatomy[1] == "S05")
    mask = np.asarray(nib.load(out / "Data" / f"Test/MSLUB/mask/{spec.name}_mask.nii.gz"
                               ).dataobj).astype(bool)
    ref = reference_anatomy().mask
    dice = {s: 2 * (mask & np.roll(ref, s, 0)).sum() / (mask.sum() + ref.sum())
            for s in (-3, 2)}
    assert dice[2] > dice[-3]
    with pytest.raises(ValueError, match="--out"):
        synth.ensure_synthetic("smoke", anatomy_from=prep)
