"""The synthetic default data: layout, determinism, exact labels, contrast, lesion placement."""
from __future__ import annotations

import dataclasses
import gzip
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from benchmark.data import synth
from benchmark.data.synth import subjects as synth_subjects
from benchmark.data.synth.anatomy import GRID_SHAPE, SPACING_MM


@pytest.fixture(scope="session")
def root(synth_root):
    return synth_root  # conftest.py: shared with the tests that verify the data set


def _load(root, rel):
    return np.asarray(nib.load(root / "Data" / rel.lstrip("/")).dataobj)


def test_layout_and_split_csvs_follow_the_authors_format(root):
    splits = root / "Data" / "splits"
    expected = {f"IXI_{s}_fold{k}.csv" for s in ("train", "val") for k in range(5)}
    expected |= {"IXI_test.csv", "avail_t2.csv"}
    expected |= {f"{c}_{s}.csv" for c in ("Brats21", "MSLUB", "ATLAS_v2", "WMH")
                 for s in ("val", "test", "healthy")}
    assert {p.name for p in splits.iterdir()} == expected
    df = pd.read_csv(splits / "IXI_train_fold0.csv")
    assert df.columns[0].startswith("Unnamed")  # the leading unnamed index column
    assert list(df.columns[1:7]) == ["img_name", "age", "label", "img_path", "mask_path", "seg_path"]
    assert df["img_path"].str.match(r"^/Train/ixi/t1/IXI\d{3}-\w+-\d{4}_t1\.nii\.gz$").all()
    assert (df["label"] == 0).all()
    sizes = synth.SIZES["smoke"]
    assert len(df) == sizes.ixi_pool - sizes.ixi_val
    vals = [set(pd.read_csv(splits / f"IXI_val_fold{k}.csv")["img_name"]) for k in range(5)]
    assert sum(len(v) for v in vals) == len(set().union(*vals))  # disjoint validation folds
    test = pd.read_csv(splits / "Brats21_test.csv")
    assert test["seg_path"].str.startswith("/Test/Brats21/seg/").all() and (test["label"] == 1).all()
    t2 = pd.read_csv(splits / "avail_t2.csv")
    for rel in list(df["img_path"]) + list(t2["img_path"]) + list(test["seg_path"]):
        assert (root / "Data" / rel.lstrip("/")).is_file(), rel


def test_volumes_are_96x96x50_at_2mm_int16(root):
    img = nib.load(root / "Data" / "Train" / "ixi" / "t1" / next(
        (root / "Data" / "Train" / "ixi" / "t1").iterdir()).name)
    assert img.shape == GRID_SHAPE == (96, 96, 50)
    assert np.allclose(img.header.get_zooms(), (SPACING_MM,) * 3)
    assert img.get_data_dtype() == np.int16


def test_cohort_sequences(root):
    test = root / "Data" / "Test"
    assert {p.name for p in (test / "Brats21").iterdir()} == {"t2", "mask", "seg"}
    assert {p.name for p in (test / "MSLUB").iterdir()} == {"t2", "mask", "seg"}
    assert {p.name for p in (test / "ATLAS_v2").iterdir()} == {"t1", "mask", "seg"}
    assert {p.name for p in (test / "WMH").iterdir()} == {"t1", "mask", "seg"}
    assert {p.name for p in (root / "Data" / "Train" / "ixi").iterdir()} == {"t1", "t2", "mask"}


def test_manifest_records_every_file_and_matches(root, tmp_path):
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["version"] == synth.GENERATOR_VERSION
    assert manifest["parameters"]["seed"] == 0
    n_files = sum(1 for p in (root / "Data").rglob("*") if p.is_file())
    assert len(manifest["files"]) == n_files
    assert synth.manifest_matches(root, "smoke", 0, verify=True)
    assert not synth.manifest_matches(root, "smoke", 1)  # another seed is stale
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))  # files missing
    assert not synth.manifest_matches(tmp_path, "smoke", 0)


def test_same_seed_same_bytes(root, tmp_path):
    # gzip headers carry no mtime: a file written now equals the one written earlier
    manifest = json.loads((root / "manifest.json").read_text())["files"]
    for cohort in ("ixi", "Brats21", "WMH"):
        spec = synth.plan("smoke", 0)[cohort][0]
        again = synth.write_subject(spec, tmp_path / "Data")
        for rel, digest in again.items():
            assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes(), rel
            assert manifest[rel] == digest
    data = (tmp_path / rel).read_bytes()
    assert gzip.decompress(data) and data[4:8] == b"\x00\x00\x00\x00"  # mtime field
    first = synth.plan("smoke", 0)["ixi"][0]
    other = synth_subjects.IXI.subject(0, seed=1)  # another seed, another subject
    assert not np.array_equal(synth_subjects.render_subject(other).mask,
                              _load(root, synth._relpaths(first)["mask"]))


@pytest.mark.parametrize("cohort", ["MSLUB", "ATLAS_v2", "WMH"])
def test_label_is_exactly_the_altered_voxels(root, cohort):
    """The stored image differs from the same subject rendered without a lesion exactly on seg."""
    spec = synth.plan("smoke", 0)[cohort][0]
    healthy_cohort = dataclasses.replace(spec.cohort, pathology=None)
    healthy = synth_subjects.render_subject(dataclasses.replace(spec, cohort=healthy_cohort))
    paths = synth._relpaths(spec)
    seq = spec.cohort.sequences[0]
    image, seg = _load(root, paths[seq]), _load(root, paths["seg"]).astype(bool)
    assert seg.sum() >= synth_subjects.MIN_LESION_VOXELS
    np.testing.assert_array_equal(image != healthy.images[seq], seg)
    np.testing.assert_array_equal(_load(root, paths["mask"]), healthy.mask)
    # T2 lesions (MS) are brighter than the tissue they replace, T1 ones (stroke, WMH) darker
    sign = 1 if seq == "t2" else -1
    change = image[seg].astype(float) - healthy.images[seq][seg]
    assert sign * change.mean() > 0 and (sign * change > 0).mean() > 0.9


def test_tumour_label_is_exactly_the_altered_voxels():
    # the tumour's mass effect is part of the subject's anatomy: compare with the same
    # warped subject before the tumour tissue is pasted in
    rendered = synth_subjects.render_subject(synth_subjects.UNHEALTHY["Brats21"].subject(0, 0))
    np.testing.assert_array_equal(rendered.images["t2"] != rendered.healthy["t2"],
                                  rendered.seg.astype(bool))
    assert rendered.seg.sum() > 100


def test_lesions_lie_inside_the_brain(root):
    for name in synth_subjects.UNHEALTHY:
        df = pd.read_csv(root / "Data" / "splits" / f"{name}_test.csv")
        for row in df.itertuples():
            mask = _load(root, row.mask_path).astype(bool)
            seg = _load(root, row.seg_path).astype(bool)
            assert seg.any() and not (seg & ~mask).any(), row.img_name
            assert not _load(root, row.img_path)[~mask].any()  # skull-stripped


@pytest.fixture(scope="module")
def ixi_subject():
    return synth_subjects.render_subject(synth_subjects.IXI.subject(0, 0))


@pytest.mark.parametrize("sequence, order", [("t1", ("csf", "gm", "wm")),
                                              ("t2", ("wm", "gm", "csf"))])
def test_tissue_intensity_order(ixi_subject, sequence, order):
    """T1: WM > GM > CSF; T2: CSF > GM > WM, measured on pure-tissue voxels of the image."""
    image, anatomy = ixi_subject.images[sequence].astype(float), ixi_subject.anatomy
    means = [image[(getattr(anatomy, t) > 0.7) & anatomy.mask].mean() for t in order]
    assert means[0] < means[1] < means[2], (sequence, dict(zip(order, means)))
    assert means[1] - means[0] > 0.05 * means[2]  # visibly different, not just ordered


def test_healthy_variants_are_other_sites_without_lesions(root):
    df = pd.read_csv(root / "Data" / "splits" / "WMH_healthy.csv")
    assert (df["label"] == 0).all()
    assert set(df["site"]) <= set(synth_subjects.UNHEALTHY["WMH"].sites)
    for rel in df["seg_path"]:
        assert not _load(root, rel).any()


def test_bad_size_and_foreign_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="smoke"):
        synth.ensure_synthetic("huge", root=tmp_path / "x")
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="manifest"):
        synth.ensure_synthetic("smoke", root=tmp_path, progress=False)
    assert (tmp_path / "mine.txt").exists()
