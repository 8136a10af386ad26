"""The one loader: reference layout, folds, normalisation, resampling, bad input."""
from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.data import layout
from benchmark.data.layout import DataLayoutError, VolumeRecord
from benchmark.data.loader import (
    TARGET_SHAPE,
    SliceDataset,
    VolumeDataset,
    load_volume,
    paper_augmentation,
)
from benchmark.data.module import BenchmarkDataModule, DataConfig


def _nii(path, array, spacing=2.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([spacing] * 3 + [1.0])), str(path))
    return path


def _record(tmp_path, image, mask, seg=None, spacing=2.0):
    img = _nii(tmp_path / "img.nii.gz", image.astype(np.float32), spacing)
    msk = _nii(tmp_path / "mask.nii.gz", mask.astype(np.uint8), spacing)
    sg = None if seg is None else _nii(tmp_path / "seg.nii.gz", seg.astype(np.uint8), spacing)
    return VolumeRecord("vol", "X", "t2", img, msk, sg)


def test_volumes_have_the_target_shape_and_range(toy_root):
    rec = layout.unhealthy_split(toy_root, "Brats21", "test")[0]
    vol = load_volume(rec)
    assert vol.image.shape == vol.mask.shape == vol.seg.shape == TARGET_SHAPE
    assert vol.image.dtype == np.float32 and 0 <= vol.image.min() and vol.image.max() <= 1
    assert not vol.image[~vol.mask].any(), "background must be 0"
    assert vol.seg.any() and (vol.seg <= vol.mask).all()
    assert vol.slices().shape == (TARGET_SHAPE[2], 1, 96, 96)


def test_percentile_normalisation_inside_the_mask(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros(TARGET_SHAPE, bool)
    mask[20:76, 20:76, 10:40] = True
    image = np.where(mask, rng.uniform(100, 200, TARGET_SHAPE), 0)
    vol = load_volume(_record(tmp_path, image, mask))
    inside = vol.image[vol.mask]
    # 1st..99th percentile -> 0..1, clipped: about 1 % of brain voxels at each end
    assert (inside == 0).mean() == pytest.approx(0.01, abs=0.002)
    assert (inside == 1).mean() == pytest.approx(0.01, abs=0.002)


def test_loading_leaves_the_global_rng_alone(tmp_path):
    # torchio draws from torch's RNG while reading; a cache hit does not. Were that visible,
    # a part's training would depend on whether an earlier part had loaded the same volumes.
    mask = np.zeros(TARGET_SHAPE, bool)
    mask[20:76, 20:76, 10:40] = True
    image = np.where(mask, np.random.default_rng(0).uniform(100, 200, TARGET_SHAPE), 0)
    record = _record(tmp_path, image, mask)  # not constant: that is an error (below)
    torch.manual_seed(0)
    load_volume(record)                           # a miss: reads the file
    after_miss = torch.rand(3)
    torch.manual_seed(0)
    load_volume(record)                           # a hit: from the cache
    assert torch.equal(torch.rand(3), after_miss)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after_miss)


def test_folds_are_disjoint_deterministic_and_exclude_test(toy_root):
    folds = [layout.healthy_splits(toy_root, "t1", k, seed=0) for k in range(5)]
    test = {r.name for r in folds[0]["test"]}
    vals = [{r.name for r in f["val"]} for f in folds]
    pool = set().union(*vals)
    assert all(not (a & b) for i, a in enumerate(vals) for b in vals[i + 1:])
    assert not pool & test
    for f, v in zip(folds, vals):
        assert {r.name for r in f["train"]} == pool - v
    again = layout.healthy_splits(toy_root, "t1", 2, seed=0)
    assert [r.name for r in again["val"]] == [r.name for r in folds[2]["val"]]
    other = [sorted(r.name for r in layout.healthy_splits(toy_root, "t1", 0, seed=s)["val"])
             for s in range(1, 6)]
    assert any(o != sorted(vals[0]) for o in other), "the seed must change the folds"


def test_reference_folds_are_read_as_published(toy_root):
    ref = layout.healthy_splits(toy_root, "t1", 1, scheme="reference")
    csv = pd.read_csv(toy_root / "Data/splits/IXI_val_fold1.csv")
    assert [r.name for r in ref["val"]] == csv["img_name"].tolist()
    with pytest.raises(ValueError, match="fold scheme"):
        layout.healthy_splits(toy_root, "t1", 0, scheme="overlapping")


def test_t2_paths_and_availability(toy_root, tmp_path):
    recs = layout.healthy_splits(toy_root, "t2", 0)["train"]
    assert all("/t2/" in str(r.image) and r.image.name.endswith("_t2.nii.gz") for r in recs)
    root = tmp_path / "copy"
    shutil.copytree(toy_root, root)
    avail = pd.read_csv(root / "Data/splits/avail_t2.csv")
    dropped = recs[0].name
    avail[avail.img_name != dropped].to_csv(root / "Data/splits/avail_t2.csv")
    names = {r.name for k in range(5) for r in layout.healthy_splits(root, "t2", k)["train"]}
    assert dropped not in names


def test_sequence_decides_the_test_sets(toy_root):
    assert layout.unhealthy_cohorts(toy_root, "t2") == ["Brats21", "MSLUB"]
    assert layout.unhealthy_cohorts(toy_root, "t1") == ["ATLAS_v2", "WMH"]
    dm = BenchmarkDataModule(DataConfig(root=toy_root, sequence="t1", fold=0, batch_size=2))
    assert set(dm.evaluation_sets()) == {"IXI", "ATLAS_v2", "WMH"}


def test_1mm_volumes_are_cropped_and_resampled(tmp_path):
    shape = (200, 190, 110)
    mask = np.zeros(shape, bool)
    mask[40:160, 40:150, 20:90] = True
    seg = np.zeros(shape, bool)
    seg[80:90, 80:90, 50:60] = True  # 1000 voxels at 1 mm -> 125 at 2 mm
    image = np.where(mask, 100.0 + 50 * seg, 0)
    vol = load_volume(_record(tmp_path, image, mask, seg, spacing=1.0))
    assert vol.image.shape == TARGET_SHAPE
    assert vol.seg.sum() == pytest.approx(125, abs=25)  # nearest neighbour: no dilation
    assert vol.image[vol.seg].mean() > vol.image[vol.mask & ~vol.seg].mean()


@pytest.mark.parametrize("problem, message", [
    ("missing", "not found"), ("shape", "does not match its image"), ("nan", "NaN"),
    ("empty_mask", "brain mask of vol is empty"), ("corrupt", "cannot read image"),
])
def test_bad_volumes_name_the_file(tmp_path, problem, message):
    mask = np.ones(TARGET_SHAPE, bool)
    image = np.random.default_rng(0).random(TARGET_SHAPE)
    if problem == "nan":
        image[3, 3, 3] = np.nan
    if problem == "empty_mask":
        mask[:] = False
    rec = _record(tmp_path, image, mask)
    if problem == "missing":
        rec.image.unlink()
    if problem == "shape":
        _nii(rec.mask, np.ones((96, 96, 49), np.uint8))
    if problem == "corrupt":
        rec.image.write_bytes(gzip.compress(b"not a nifti file"))
    with pytest.raises(DataLayoutError, match=message) as err:
        load_volume(rec)
    assert str(rec.image.parent) in str(err.value)


@pytest.mark.parametrize("content, message", [
    ("", "empty"), (",img_name,img_path\n", "missing column"),
    (",img_name,img_path,mask_path\n", "no rows"),
])
def test_bad_split_files_name_the_file(tmp_path, content, message):
    csv = tmp_path / "X_test.csv"
    csv.write_text(content)
    with pytest.raises(DataLayoutError, match=message) as err:
        layout.read_split(csv)
    assert str(csv) in str(err.value)


def test_not_a_data_root(tmp_path):
    with pytest.raises(DataLayoutError, match="not a UAD-Bench data root"):
        layout.data_dir(tmp_path)


def test_slice_and_volume_datasets(toy_root):
    dm = BenchmarkDataModule(DataConfig(root=toy_root, sequence="t2", fold=0, batch_size=2))
    vols = dm.train_volumes
    torch.manual_seed(0)
    train = SliceDataset(vols, repeats=2, augment=paper_augmentation())
    assert len(train) == 2 * len(vols)
    items = [train[i] for i in range(len(train))]
    assert all(it["image"].shape == (1, 96, 96) for it in items)
    assert all(0 <= it["image"].min() and it["image"].max() <= 1 for it in items)
    val = SliceDataset(vols, fixed_slices=3)
    assert torch.equal(val[4]["image"], val[4]["image"]) and len(val) == 3 * len(vols)
    assert torch.equal(val[0]["image"][0], torch.from_numpy(vols[0].image[..., val.fixed[0]]))
    whole = VolumeDataset(vols)[0]
    assert whole["image"].shape == (1, 96, 96, 50)
