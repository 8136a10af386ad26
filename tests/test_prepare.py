"""Raw-scan preparation: step functions on known answers, bad inputs, real samples end to end.

Real samples (../shared/data/real-samples or $UAD_BENCH_REAL_SAMPLES) are skipped when
absent. They run once per session with coarse registration settings (the pipeline logic is
the same; only the optimiser budget is smaller).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from benchmark.data.prepare import (
    configure_prepare_parser,
    configure_verify_parser,
    parse_sequences,
    prepare_main,
    run_prepare,
    steps,
    verify_main,
)
from benchmark.data.prepare.cohorts import COHORTS, discover, lesion_from_label
from benchmark.data.prepare.output import ixi_splits, val_test_split
from benchmark.data.prepare.steps import RegistrationSettings, _nearest_downsample
from benchmark.data.prepare.subject import PrepareSettings, prepare_subject

REPO = Path(__file__).resolve().parents[1]
TINY = RegistrationSettings(shrink=(8,), smooth=(1.0,), sampling=0.1, iterations=40)


def tiny_settings(sequences, **kw) -> PrepareSettings:
    return PrepareSettings(tuple(sequences), registration=TINY, n4_iterations=(10,), **kw)


def real_samples() -> Path | None:
    env = os.environ.get("UAD_BENCH_REAL_SAMPLES")  # when set, the only place looked at
    candidates = [Path(env)] if env else [REPO.parent / "shared/data/real-samples",
                                          REPO.parent.parent / "shared/data/real-samples"]
    return next((c for c in candidates if (c / "ms_patient07").is_dir()), None)


# ---------------------------------------------------------------- step functions

def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None) -> sitk.Image:
    img = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0)).astype(np.float32))
    img.SetSpacing(spacing)
    if direction is not None:
        img.SetDirection(direction)
    return img


def test_reorient_resample_label_stays_binary_and_keeps_volume():
    label = np.zeros((20, 20, 20))
    label[5:11, 6:12, 4:10] = 1  # 216 voxels of 8 mm^3
    flipped = (-1.0, 0, 0, 0, 0, 1.0, 0, 1.0, 0)  # x flipped, y/z swapped
    out = steps.reorient_resample(_image(label, (2.0, 2.0, 2.0), flipped), is_label=True)
    arr = sitk.GetArrayFromImage(out)
    assert out.GetSpacing() == (1.0, 1.0, 1.0)
    assert np.allclose(out.GetDirection(), np.eye(3).ravel())
    assert set(np.unique(arr)) == {0.0, 1.0}
    assert arr.sum() == 216 * 8  # nearest neighbour: no dilation, no erosion


def test_nearest_downsample_neither_dilates_nor_shifts():
    label = np.zeros((8, 8, 8), np.uint8)
    label[2:4, 2:4, 2:4] = 1  # one aligned 2x2x2 block -> exactly one coarse voxel
    label[6, 6, 6] = 1  # a lone voxel off the sampled child -> dropped, not dilated
    out = _nearest_downsample(label, 2)
    assert out.sum() == 1 and out[1, 1, 1] == 1
    slab = np.zeros((8, 8, 8), np.uint8)
    slab[:, :, 3:5] = 1  # a 2-voxel slab cutting blocks in half keeps its volume
    assert _nearest_downsample(slab, 2).sum() * 8 == slab.sum()


def test_pad_downsample_shape_spacing_and_lesion_count():
    arr = np.zeros((150, 180, 150), np.float32)
    arr[10:140, 10:170, 10:140] = 100.0
    seg = np.zeros_like(arr)
    seg[60:80, 60:80, 70:90] = 1  # 8000 mm^3 -> 1000 coarse voxels
    out = steps.pad_downsample(_image(arr), _image(arr > 0), _image(seg))
    assert out["image"].shape == out["mask"].shape == out["seg"].shape == steps.FINAL_SHAPE
    assert np.allclose(np.abs(np.diag(out["affine"])[:3]), 2.0)
    assert out["seg_voxels_1mm"] == 8000
    # the padding offset is odd in x and z: blocks straddle both lesion faces there
    assert abs(int(out["seg"].sum()) * 8 - 8000) <= 0.05 * 8000
    assert (out["image"][out["mask"] == 0] == 0).all()


def test_head_top_initializer_finds_a_brain_above_a_neck():
    brain = np.zeros((60, 60, 60), np.uint8)
    grid = np.indices(brain.shape)
    brain[((grid - 30) ** 2 / np.array([20, 24, 18])[:, None, None, None] ** 2).sum(0) < 1] = 1
    head = np.zeros_like(brain)
    shift = np.array([3, -2, 8])  # voxels of 2 mm
    head[tuple(slice(max(s, 0), 60 + min(s, 0)) for s in shift)] = brain[
        tuple(slice(max(-s, 0), 60 - max(s, 0)) for s in shift)]
    head[25:35, 25:35, :20] = 1  # a neck: pulls the centre of mass, not the vertex
    tpl, subj = _image(brain, (2.0,) * 3), _image(head, (2.0,) * 3)
    init = steps.head_top_initializer(subj, subj, tpl, depth_mm=40.0)
    # maps template points to subject points: the brain's shift, within the 10 mm scalp slack
    assert np.allclose(init.GetTranslation(), shift * 2.0, atol=6.0)


def test_splits_ixi_paper_sizes_disjoint_and_deterministic():
    sids = [f"IXI{i:03d}-HH-{i:04d}" for i in range(560)]
    splits = ixi_splits(sids, COHORTS["ixi"])
    assert len(splits["IXI_test"]) == 158
    vals = [set(splits[f"IXI_val_fold{k}"]) for k in range(5)]
    for k in range(5):
        train = set(splits[f"IXI_train_fold{k}"])
        assert len(train) == 358 and len(vals[k]) == 44
        assert not train & vals[k] and not (train | vals[k]) & set(splits["IXI_test"])
    assert all(not vals[i] & vals[j] for i in range(5) for j in range(i + 1, 5))
    assert splits == ixi_splits(list(reversed(sids)), COHORTS["ixi"])


def test_splits_unhealthy_sizes():
    sizes = {"brats21": (100, 1151), "mslub": (10, 20), "atlas": (66, 589), "wmh": (15, 45)}
    for name, (n_val, n_test) in sizes.items():
        cohort = COHORTS[name]
        split = val_test_split([f"s{i}" for i in range(n_val + n_test)], cohort)
        assert (len(split[f"{cohort.set_name}_val"]), len(split[f"{cohort.set_name}_test"])) \
            == (n_val, n_test)
    assert [len(v) for v in val_test_split(["a"], COHORTS["mslub"]).values()] == [0, 1]


def test_naming_table_finds_subjects(tmp_path):
    names = ["IXI/IXI002-Guys-0828-T1.nii.gz", "IXI/IXI002-Guys-0828-T2.nii.gz",
             "B/BraTS2021_00000/BraTS2021_00000_t2.nii.gz",
             "B/BraTS2021_00000/BraTS2021_00000_seg.nii.gz",
             "W/Utrecht/0/pre/T1.nii.gz", "W/Utrecht/0/wmh.nii.gz",
             "A/R001/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz",
             ("A/R001/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_"
              "label-L_desc-T1lesion_mask.nii.gz")]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    ixi = discover(tmp_path / "IXI", COHORTS["ixi"])["IXI002-Guys-0828"]
    assert sorted(ixi.images) == ["t1", "t2"]
    brats = discover(tmp_path / "B", COHORTS["brats21"])["BraTS2021_00000"]
    assert brats.seg.name.endswith("_seg.nii.gz") and list(brats.images) == ["t2"]
    wmh = discover(tmp_path / "W", COHORTS["wmh"])["Utrecht_0"]
    assert wmh.seg.name == "wmh.nii.gz" and list(wmh.images) == ["t1"]
    atlas = discover(tmp_path / "A", COHORTS["atlas"])["sub-r001s001"]
    assert "lesion" in atlas.seg.name and list(atlas.images) == ["t1"]


def test_label_conversion():
    raw = np.array([0, 1, 2, 4, 2])
    assert lesion_from_label(raw, COHORTS["brats21"]).tolist() == [0, 1, 1, 1, 1]
    assert lesion_from_label(raw, COHORTS["wmh"]).tolist() == [0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="allowed values"):
        parse_sequences("t1,dwi", COHORTS["ixi"])


# ---------------------------------------------------------------- bad input, synthetic

def _phantom(shape=(45, 55, 45), spacing=4.0, lesion=True):
    """A brain-sized ellipsoid (mm) with a brighter core and an optional bright lesion."""
    grid = np.stack(np.meshgrid(*[(np.arange(n) - n / 2) * spacing for n in shape],
                                indexing="ij"))
    r = np.sqrt((grid[0] / 65) ** 2 + (grid[1] / 80) ** 2 + (grid[2] / 60) ** 2)
    img = np.where(r < 1, 60.0, 0.0) + np.where(r < 0.6, 40.0, 0.0)
    seg = (np.sqrt((grid[0] - 20) ** 2 + grid[1] ** 2 + grid[2] ** 2) < 12).astype(np.uint8)
    if lesion:
        img[seg > 0] = 150.0
    return img.astype(np.float32), seg


def _save(path: Path, array: np.ndarray, spacing=4.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([spacing, spacing, spacing, 1.0])), path)


@pytest.fixture(scope="module")
def bad_cohort(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    img, seg = _phantom()
    _save(raw / "good/t2.nii.gz", img)
    _save(raw / "good/seg.nii.gz", seg)
    _save(raw / "nosequence/seg.nii.gz", seg)
    _save(raw / "offgrid/t2.nii.gz", img)
    _save(raw / "offgrid/seg.nii.gz", seg[:-3])
    _save(raw / "emptymask/t2.nii.gz", img)
    _save(raw / "emptymask/seg.nii.gz", seg)
    (raw / "corrupt").mkdir()
    (raw / "corrupt/t2.nii.gz").write_bytes(b"\x1f\x8b not a nifti at all")
    _save(raw / "corrupt/seg.nii.gz", seg)
    masks = tmp_path_factory.mktemp("masks")
    _save(masks / "emptymask_brain.nii.gz", np.zeros_like(seg))
    out = tmp_path_factory.mktemp("out")
    result = run_prepare(COHORTS["custom"], raw, out, tiny_settings(["t2"]),
                         mask_dir=str(masks), echo=lambda *_: None)
    return raw, masks, out, result


def test_bad_inputs_named_and_others_still_done(bad_cohort):
    _, _, out, result = bad_cohort
    assert result["ok"] == ["good"]
    expected = {"nosequence": "missing sequence t2", "offgrid": "grid differs",
                "emptymask": "empty brain mask", "corrupt": "cannot read"}
    assert sorted(result["failed"]) == sorted(expected)
    for sid, phrase in expected.items():
        assert result["failed"][sid].startswith(sid) and phrase in result["failed"][sid]
    vol = nib.load(out / "Data/Test/custom/t2/good_t2.nii.gz")
    assert vol.shape == steps.FINAL_SHAPE


def test_resume_skips_done_subjects(bad_cohort):
    raw, masks, out, _ = bad_cohort
    again = run_prepare(COHORTS["custom"], raw, out, tiny_settings(["t2"]),
                        mask_dir=str(masks), echo=lambda *_: None)
    assert again["skipped"] == ["good"] and again["ok"] == [] and len(again["failed"]) == 4
    record = json.loads((out / "Data/.prepare/custom/good.json").read_text())
    assert record["skull_strip"] == "nonzero"  # the phantom has no skull and no mask file


def test_cli_summary_and_verify(bad_cohort, tmp_path, capsys):
    raw, _, out, _ = bad_cohort
    only_bad = tmp_path / "raw"  # subjects that fail before any costly step
    only_bad.mkdir()
    for sid in ("nosequence", "corrupt"):
        (only_bad / sid).symlink_to(raw / sid)
    parser = argparse.ArgumentParser()
    configure_prepare_parser(parser)
    args = parser.parse_args(["--cohort", "custom", "--raw", str(only_bad), "--out",
                              str(tmp_path / "out"), "--sequence", "t2", "--fast"])
    assert prepare_main(args) == 1
    text = capsys.readouterr().out
    assert "0 prepared" in text and "2 failed" in text and "FAILED corrupt: cannot read" in text
    vparser = argparse.ArgumentParser()
    configure_verify_parser(vparser)
    assert verify_main(vparser.parse_args([str(out)])) == 0
    victim = out / "Data/Test/custom/mask/good_mask.nii.gz"
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert verify_main(vparser.parse_args([str(out)])) == 1
    assert "changed: Test/custom/mask/good_mask.nii.gz" in capsys.readouterr().out


# ---------------------------------------------------------------- real samples

@pytest.fixture(scope="session")
def prepared_real(tmp_path_factory):
    root = real_samples()
    if root is None:
        pytest.skip("real samples not found (set UAD_BENCH_REAL_SAMPLES)")
    raw_ixi = tmp_path_factory.mktemp("ixi_raw")
    for name in ("IXI012-HH-1211_T1.nii.gz", "IXI012-HH-1211_T1_DLMUSE.nii.gz"):
        (raw_ixi / name).symlink_to(root / "ixi_t1" / name)
    out = tmp_path_factory.mktemp("prepared")
    quiet = {"echo": lambda *_: None}
    ms = run_prepare(COHORTS["mslub"], root / "ms_patient07", out,
                     tiny_settings(["flair"]), **quiet)
    ixi = run_prepare(COHORTS["ixi"], raw_ixi, out, tiny_settings(["t1"], skull_strip="mask"),
                      mask_dir=str(raw_ixi), **quiet)
    assert not ms["failed"] and not ixi["failed"], (ms["failed"], ixi["failed"])
    return out / "Data", raw_ixi


def _load(data: Path, rel: str) -> np.ndarray:
    return np.asarray(nib.load(data / rel).dataobj)


@pytest.mark.slow
def test_real_output_shapes_and_brain_inside_mask(prepared_real):
    data, _ = prepared_real
    for img_rel, mask_rel in [("Test/MSLUB/flair/patient07_flair.nii.gz",
                               "Test/MSLUB/mask/patient07_mask.nii.gz"),
                              ("Train/ixi/t1/IXI012-HH-1211_t1.nii.gz",
                               "Train/ixi/mask/IXI012-HH-1211_mask.nii.gz")]:
        img, mask = _load(data, img_rel), _load(data, mask_rel)
        assert img.shape == mask.shape == (96, 96, 50)
        assert set(np.unique(mask)) == {0, 1}
        assert (img[mask == 0] == 0).all() and (img[mask == 1] > 0).mean() > 0.95
        # a brain, not a speck nor the whole box: 0.8-2.5 litres at 8 mm^3 per voxel
        assert 0.8e6 < mask.sum() * 8 < 2.5e6


@pytest.mark.slow
def test_real_lesion_binary_count_and_alignment(prepared_real):
    data, _ = prepared_real
    seg = _load(data, "Test/MSLUB/seg/patient07_seg.nii.gz")
    flair = _load(data, "Test/MSLUB/flair/patient07_flair.nii.gz")
    mask = _load(data, "Test/MSLUB/mask/patient07_mask.nii.gz")
    assert set(np.unique(seg)) == {0, 1}
    record = json.loads((data / ".prepare/MSLUB/patient07.json").read_text())
    # nearest neighbour: coarse count x 8 matches the 1 mm lesion volume in the kept slab
    # (the 8 possible sampling offsets of the raw mask give 1208-1368 for 1300 voxels)
    kept = record["lesion_voxels_1mm_kept"]
    assert abs(8 * int(seg.sum()) - kept) < 0.15 * kept
    assert (seg <= mask).all()
    brain = flair[(mask == 1) & (seg == 0)]
    assert flair[seg == 1].mean() > 1.2 * brain.mean()  # MS lesions are FLAIR-bright
    assert flair[seg == 1].mean() > np.percentile(brain, 75)


@pytest.mark.slow
def test_real_splits_and_layout(prepared_real):
    data, _ = prepared_real
    import pandas as pd

    test = pd.read_csv(data / "splits/MSLUB_test.csv", index_col=0)
    assert list(test.columns) == ["img_name", "age", "label", "img_path", "mask_path",
                                  "seg_path"]
    assert test.img_path.tolist() == ["/Test/MSLUB/flair/patient07_flair.nii.gz"]
    # one healthy subject: training folds only; empty val/test splits are not written
    fold0 = pd.read_csv(data / "splits/IXI_train_fold0.csv", index_col=0)
    assert fold0.img_name.tolist() == ["IXI012-HH-1211"]
    assert fold0.img_path.str.startswith("/Train/ixi/t1/").all()
    assert not (data / "splits/IXI_val_fold0.csv").exists()
    assert not (data / "splits/IXI_test.csv").exists()
    manifest = json.loads((data / "manifest.json").read_text())
    assert "Train/ixi/mask/IXI012-HH-1211_mask.nii.gz" in manifest["files"]


@pytest.mark.slow
def test_real_scans_look_like_their_sequence(prepared_real):
    """The modality check (modality.py) on real scans: the IXI T1 looks like a T1, the MS
    FLAIR is between T1 and T2 (no opinion), and neither is warned about."""
    data, _ = prepared_real
    ixi = json.loads((data / ".prepare/IXI/IXI012-HH-1211.json").read_text())
    ms = json.loads((data / ".prepare/MSLUB/patient07.json").read_text())
    assert ixi["tissue_contrast"]["t1"]["looks_like"] == "t1"
    assert ms["tissue_contrast"]["flair"]["looks_like"] is None
    assert not any("does not look like" in w for r in (ixi, ms) for w in r.get("warnings", []))


@pytest.mark.slow
def test_real_deterministic(prepared_real, tmp_path):
    data, raw_ixi = prepared_real
    sub = discover(raw_ixi, COHORTS["ixi"])["IXI012-HH-1211"]
    sub.mask = raw_ixi / "IXI012-HH-1211_T1_DLMUSE.nii.gz"
    again = prepare_subject(sub, COHORTS["ixi"], tiny_settings(["t1"], skull_strip="mask"),
                            tmp_path / "Data")
    first = json.loads((data / ".prepare/IXI/IXI012-HH-1211.json").read_text())
    assert again["sha256"] == first["sha256"]
