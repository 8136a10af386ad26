"""Data options (benchmark.data.options): the defaults change nothing, and each option
does what the authors' code does (docs/data-options.md)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torchio as tio
from conftest import write_run_config
from scipy import ndimage as ndi
from torch.utils.data import DataLoader
from torchio.transforms.augmentation.intensity.random_bias_field import BiasField

from benchmark.cli import main
from benchmark.data import layout
from benchmark.data.layout import VolumeRecord
from benchmark.data.loader import (
    TARGET_SHAPE,
    SliceDataset,
    augment_array,
    load_volume,
    paper_augmentation,
)
from benchmark.data.module import BenchmarkDataModule, DataConfig
from benchmark.data.options import PRESETS, DataOptions, parse_data_options
from benchmark.profiles import PROFILES
from benchmark.rundir import RunDir


def _nii(path, array, affine):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _brain(shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    mask = (grid ** 2).sum(0) < 0.8
    image = (200 + 80 * grid[0] + rng.normal(0, 20, shape)) * mask
    return image.astype(np.float32), mask


def _module(root, batch_size=4, **options) -> BenchmarkDataModule:
    return BenchmarkDataModule(DataConfig(root=root, sequence="t2", fold=0,
                                          batch_size=batch_size, options=DataOptions(**options)))


# ---------------------------------------------------------------------------- parsing
def test_preset_authors_sets_every_option_and_keys_override_it():
    assert PRESETS["authors"] == DataOptions(smoothing="curvature_flow", augment_space="volume",
                                             augment_clamp=False, augment_voxel_mm=2.0,
                                             drop_last=True)
    assert parse_data_options([]) == DataOptions() == PRESETS["default"]
    opts = parse_data_options(["preset=authors", "drop_last=false"])
    assert opts == replace(PRESETS["authors"], drop_last=False)
    assert opts.label() == "smoothing:curvature_flow,augment_space:volume,augment_clamp:false," \
                           "augment_voxel_mm:2"
    assert PRESETS["authors"].label() == "authors" and DataOptions().label() is None
    assert parse_data_options(["augment_clamp=no", "augment_voxel_mm=1.5"]) == \
        DataOptions(augment_clamp=False, augment_voxel_mm=1.5)


@pytest.mark.parametrize("item, message", [
    ("smoothing=gaussian", "allowed: none, curvature_flow"),
    ("augment_space=patch", "allowed: slice, volume"),
    ("drop_last=maybe", "allowed: true, false"),
    ("augment_voxel_mm=-2", "voxel size in mm > 0"),
    ("preset=theirs", "allowed: default, authors"),
    ("smooth=none", "unknown key; known: preset, smoothing, augment_space"),
    ("smoothing", "expected KEY=VALUE"),
])
def test_bad_data_options_name_the_allowed_values(item, message, capsys):
    with pytest.raises(ValueError, match=message):
        parse_data_options([item])
    assert main(["run", "--methods", "thresh", "--data-option", item]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------- defaults
class _SliceDatasetBefore(SliceDataset):
    """__getitem__ exactly as it was before the data options existed (commit c655787)."""

    def __getitem__(self, i):
        vol = self.volumes[i % len(self.volumes)]
        k = int(torch.randint(vol.image.shape[2], ()).item())
        image = torch.from_numpy(np.ascontiguousarray(vol.image[..., k], dtype=np.float32))[None]
        mask = torch.from_numpy(np.ascontiguousarray(vol.mask[..., k], dtype=np.float32))[None]
        if self.augment is not None:
            image = self.augment(image[..., None])[..., 0].clamp(0, 1) * mask
        return {"image": image, "mask": mask}


def test_default_options_give_the_batches_and_volumes_of_before(toy_root):
    dm = _module(toy_root)
    plain = layout.healthy_splits(toy_root, "t2", 0)
    assert dm.records["train"] == plain["train"]  # load_volume is called exactly as before
    assert all(r.smoothing == "none" for r in dm.evaluation_sets()["Brats21"]["test"])
    old = DataLoader(_SliceDatasetBefore(dm.train_volumes, augment=paper_augmentation()),
                     batch_size=4, shuffle=True, drop_last=False)
    torch.manual_seed(7)
    new_batches = [b["image"] for b in dm.train_dataloader()]
    torch.manual_seed(7)
    old_batches = [b["image"] for b in old]
    assert len(new_batches) == len(old_batches) == -(-len(dm.train_volumes) // 4)
    assert all(torch.equal(a, b) for a, b in zip(new_batches, old_batches))
    assert any((b > 0).any() for b in new_batches)


# ---------------------------------------------------------------------------- smoothing
@pytest.mark.parametrize("shape, spacing", [
    (TARGET_SHAPE, (1.5, 2.0, 3.0)),   # at the target grid: no resampling, anisotropic
    ((70, 60, 40), (1.0, 1.0, 1.0)),  # 1 mm: smoothed before CropOrPad and Resample(2)
])
def test_curvature_flow_is_simpleitks_on_the_file_as_read(tmp_path, shape, spacing):
    image, mask = _brain(shape)
    affine = np.diag([*spacing, 1.0])
    img = _nii(tmp_path / "img.nii.gz", image, affine)
    msk = _nii(tmp_path / "mask.nii.gz", mask.astype(np.uint8), affine)
    rec = VolumeRecord("vol", "X", "t2", img, msk, None)
    # the authors' reader: SimpleITK reads the file (its own spacing) and smooths it
    read = sitk.ReadImage(str(img), sitk.sitkFloat32)
    smoothed = sitk.GetArrayFromImage(
        sitk.CurvatureFlow(image1=read, timeStep=0.125, numberOfIterations=3)).transpose(2, 1, 0)
    pre = VolumeRecord("pre", "X", "t2", _nii(tmp_path / "pre.nii.gz", smoothed, affine), msk,
                       None)
    plain = load_volume(rec)
    smooth = load_volume(replace(rec, smoothing="curvature_flow"))
    assert np.array_equal(smooth.image, load_volume(pre).image)
    assert np.array_equal(smooth.mask, plain.mask)
    assert not np.array_equal(smooth.image, plain.image), "smoothing must change the image"
    # a cache hit of the unsmoothed volume must not answer for the smoothed one
    assert not np.array_equal(load_volume(rec).image, load_volume(
        replace(rec, smoothing="curvature_flow")).image)


def test_smoothing_reaches_every_record_and_the_runs_data_config(toy_root, tmp_path):
    dm = _module(toy_root, smoothing="curvature_flow")
    sets = dm.evaluation_sets()
    records = dm.records["train"] + [r for s in sets.values() for rs in s.values() for r in rs]
    assert records and all(r.smoothing == "curvature_flow" for r in records)
    write_run_config(tmp_path, toy_root, data_options=DataOptions(smoothing="curvature_flow"))
    cfg = RunDir(tmp_path).data_config("t2", 0)
    assert cfg.options == DataOptions(smoothing="curvature_flow")


# ---------------------------------------------------------------------------- augmentation
def _items(volumes, augment, space, clamp=True, seed=3):
    """(item 0 of a training SliceDataset, the slice index it drew)."""
    ds = SliceDataset(volumes, augment=augment, augment_space=space, clamp=clamp)
    torch.manual_seed(seed)
    k = int(torch.randint(volumes[0].image.shape[2], ()).item())
    torch.manual_seed(seed)
    return ds[0], k


def test_volume_space_gives_slices_of_one_augmented_volume(toy_root):
    vol = _module(toy_root).train_volumes[0]
    before = vol.image.copy()
    field = BiasField(coefficients=[0.0, 0.5, 0.0, 0.0], order=1)  # exp(0.5 z): along z only
    whole = field(torch.from_numpy(vol.image)[None])
    for seed in (3, 4, 5):
        item, k = _items([vol], field, "volume", seed=seed)
        mask = torch.from_numpy(vol.mask[..., k].astype(np.float32))[None]
        assert torch.equal(item["image"], whole[..., k].clamp(0, 1) * mask)
        flat, _ = _items([vol], field, "slice", seed=seed)  # a single slice has no z extent
        assert torch.equal(flat["image"], torch.from_numpy(vol.image[..., k])[None])
    assert np.array_equal(vol.image, before), "augmenting must not change the cached volume"
    # a transform acting voxel by voxel gives the same result in either space
    square = tio.Lambda(lambda t: t ** 2)
    assert torch.equal(_items([vol], square, "volume")[0]["image"],
                       _items([vol], square, "slice")[0]["image"])


def test_without_clamp_values_above_one_and_background_signal_survive(toy_root):
    vol = _module(toy_root).train_volumes[0]
    lift = tio.Lambda(lambda t: 3 * t + 0.5)
    item, k = _items([vol], lift, "slice", clamp=False)
    assert torch.equal(item["image"], 3 * torch.from_numpy(vol.image[..., k])[None] + 0.5)
    assert item["image"].max() > 1 and (item["image"][item["mask"] == 0] == 0.5).all()
    clamped, _ = _items([vol], lift, "slice", clamp=True)
    assert clamped["image"].max() == 1 and not clamped["image"][clamped["mask"] == 0].any()


def test_augmentation_voxel_size_scales_the_blur():
    x = torch.zeros(1, 21, 21, 9)
    x[0, 10, 10, 4] = 1.0
    blur = tio.Blur(std=(2.0, 2.0, 2.0))  # mm
    for mm, sigma in ((1.0, 2.0), (2.0, 1.0)):
        expected = ndi.gaussian_filter(x[0].numpy(), sigma)
        np.testing.assert_allclose(augment_array(blur, x, mm)[0].numpy(), expected, atol=1e-7)


# ---------------------------------------------------------------------------- drop_last
def test_drop_last_gives_whole_batches_in_training_only(toy_root):
    kept, dropped = _module(toy_root, 3), _module(toy_root, 3, drop_last=True)
    n = len(kept.train_dataloader().dataset)
    assert n % 3 != 0, "the toy fold must leave an incomplete batch for this test"
    assert len(kept.train_dataloader()) == -(-n // 3)
    assert len(dropped.train_dataloader()) == n // 3
    assert all(len(b["image"]) == 3 for b in dropped.train_dataloader())
    assert len(dropped.val_dataloader()) == len(kept.val_dataloader())
    small = BenchmarkDataModule(DataConfig(root=toy_root, sequence="t2", fold=0, batch_size=64,
                                           options=DataOptions(drop_last=True)))
    with pytest.raises(ValueError, match="drop_last=true: .* fewer than the batch size 64"):
        small.train_dataloader()


# ---------------------------------------------------------------------------- runs
def test_resume_compares_the_data_options_also_of_runs_recorded_before_them(thresh_run, toy_root,
                                                                            tmp_path, capsys):
    run = tmp_path / "runs" / "r"
    shutil.copytree(thresh_run, run)
    args = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--methods",
            "thresh", "--folds", "0,1", "--data-root", str(toy_root), "--out", str(run.parent),
            "--run-id", "r", "--resume"]
    config = json.loads((run / "config.json").read_text())
    assert config["data_options"] == DataOptions().to_dict()
    del config["data_options"]  # as a version without data options recorded it
    (run / "config.json").write_text(json.dumps(config))
    assert main(args + ["--data-option", "preset=authors"]) == 2
    err = capsys.readouterr().err
    assert "data_options.smoothing: recorded 'none', now 'curvature_flow'" in err
    assert "data_options.drop_last: recorded False, now True" in err
    assert main(args) == 0


def test_a_run_with_the_authors_pipeline_records_and_tags_it(toy_root, tmp_path):
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--methods",
                 "ae", "--data-root", str(toy_root), "--out", str(tmp_path), "--run-id", "r",
                 "--data-option", "preset=authors"]) == 0
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    assert config["data_options"] == PRESETS["authors"].to_dict()
    pv = pd.read_csv(run / "per_volume.csv")
    assert set(pv["data_options"]) == {"authors"}
    assert json.loads((run / "ae/t2/fold0/done.json").read_text())["tags"]["data_options"] \
        == "authors"
    # the test volumes were scored as loaded with the smoothing
    rq = pd.read_csv(run / "recon_quality.csv")
    ixi = layout.healthy_splits(toy_root, "t2", 0)["test"][0]
    x = load_volume(replace(ixi, smoothing="curvature_flow",
                            slice_step=PROFILES["smoke"].slice_step)).image
    with np.load(run / "ae/t2/fold0/maps/IXI_test.npz") as maps:
        i = list(maps["names"]).index(ixi.name)
        rec = maps["reconstruction"][i].astype(np.float32)
    row = rq[(rq["dataset"] == "IXI") & (rq["volume"] == ixi.name)].iloc[0]
    assert row["l1_all"] == pytest.approx(np.abs(x - rec).mean(), rel=1e-6)


# ---------------------------------------------------------------------------- l1 over all voxels
def test_l1_all_counts_the_background_and_table1_shows_it_beside_l1():
    from benchmark.leaderboard.significance import direction
    from benchmark.leaderboard.tables import table1_columns
    from benchmark.scoring.reconstruction import _recon_volume

    brain = np.zeros((16, 16, 2), bool)
    brain[4:12, 4:12] = True                     # a quarter of the voxels
    x = np.where(brain, 0.5, 0.0).astype(np.float32)
    rec = x + np.float32(0.2) * ~brain           # errors only in the background
    row = _recon_volume(x, rec, brain, None, healthy=True)[0]
    assert row["l1"] == 0 and row["l1_all"] == pytest.approx(0.2 * 0.75)
    seg = np.zeros_like(brain)
    seg[6:8, 6:8] = True
    row = _recon_volume(x, rec + np.float32(0.4) * seg, brain, seg, healthy=False)[0]
    assert row["l1_healthy"] == 0 and row["l1_anomalous"] == pytest.approx(0.4)
    assert row["l1_all"] == pytest.approx((0.2 * 384 + 0.4 * 8) / 512)
    assert direction("l1_all") == -1
    board = pd.DataFrame([{"dataset": "IXI", "sequence": "t2", "level": "healthy",
                           "metric": m, "threshold_source": "none"}
                          for m in ("ssim", "psnr", "l1", "l1_all")])
    labels = [c.spec.label for c in table1_columns(board)]
    assert labels == ["SSIM ↑", "PSNR ↑", "l1-error (e-3) ↓", "l1 all voxels (e-3) ↓"]
    assert "l1 all voxels (e-3) ↓" not in [
        c.spec.label for c in table1_columns(board[board["metric"] != "l1_all"])]


def test_check_reports_drop_last_that_would_train_nothing(toy_root, tmp_path):
    from benchmark.profiles import PROFILES
    from benchmark.runconfig import RunConfig
    from benchmark.validate import check_run

    cfg = RunConfig(methods=["thresh"], profile=replace(PROFILES["smoke"], batch_size=64),
                    data_root=toy_root, run_dir=tmp_path / "r", sequences=["t2"],
                    data_options=DataOptions(drop_last=True))
    problems = [str(p) for p in check_run(cfg)]
    assert any("drop_last=true: t2 fold0 has 8 training items per epoch, fewer than the "
               "batch size 64" in p for p in problems), problems
    assert not check_run(replace(cfg, data_options=DataOptions()))
    assert not (tmp_path / "r").exists()
