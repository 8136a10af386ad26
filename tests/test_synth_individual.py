"""Individual anatomies (synth.individual): the tissue maps of a known phantom label map,
the train/test split of the scans, and a smoke data set rendered from them."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from benchmark.data import layout, synth
from benchmark.data.synth import individual
from benchmark.data.synth.anatomy import Warp, grid_affine, reference_anatomy, warp_anatomy


def _labels(shift: int = 0) -> np.ndarray:
    """A MUSE-style label map of the template's dominant tissue per voxel (CSF 51, GM 100,
    WM 81, background 0) on the synthetic grid, shifted by ``shift`` voxels in x."""
    a = reference_anatomy()
    tissue = np.argmax(np.stack([a.csf, a.gm, a.wm]), 0)
    labels = np.choose(tissue, [51, 100, 81]) * a.mask
    return np.roll(labels, shift, 0).astype(np.int16)


def _prepared_root(tmp_path, n: int = 6, drop_labels_of: str | None = None):
    """A prepared-layout healthy T1 root of ``n`` phantom scans (each shifted differently),
    with the prepare records, identity transforms and raw label maps beside raw scans."""
    import SimpleITK as sitk

    prep, raw = tmp_path / "prep", tmp_path / "raw"
    records = prep / "Data" / ".prepare" / "IXI"
    records.mkdir(parents=True)
    raw.mkdir()
    for i in range(n):
        name = f"S{i:02d}"
        labels = _labels(shift=i - n // 2)
        for key, arr in (("t1", labels.astype(np.float32)), ("mask", (labels > 0).astype(np.uint8))):
            path = prep / "Data" / layout.volume_paths(name, ("t1",))[key].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, grid_affine()), path)
        nib.save(nib.Nifti1Image(labels.astype(np.float32), grid_affine()), raw / f"{name}_T1.nii.gz")
        if name != drop_labels_of:
            nib.save(nib.Nifti1Image(labels, grid_affine()), raw / f"{name}_T1_DLMUSE.nii.gz")
        sitk.WriteTransform(sitk.AffineTransform(3), str(records / f"{name}_t1.tfm"))
        (records / f"{name}.json").write_text(json.dumps(
            {"inputs": {"t1": str(raw / f"{name}_T1.nii.gz")}, "transforms": {"t1": f"{name}_t1.tfm"}}))
    return prep


def test_tissue_maps_follow_the_labels():
    maps = individual.tissue_maps(np.array([0, 1, 51, 4, 81, 95, 35, 100, 36, 207]))
    assert maps["csf"].tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert maps["wm"].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert maps["gm"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]


def test_sulcal_csf_inside_grey_matter_labels_hand_computed():
    # lateral ventricles at T1 200; a cortical label (100) at 1000 with one voxel at 600
    # (half CSF) and one at 100 (darker than the ventricles: all CSF); a deep-grey label
    # (36) at 1200 with one voxel at 700 ((1200 - 700) / (1200 - 200) = 0.5 CSF)
    labels = np.array([51] * 5 + [100] * 9 + [36] * 7 + [81] * 3)
    t1 = np.array([200.0] * 5 + [1000.0] * 7 + [600.0, 100.0] + [1200.0] * 6 + [700.0]
                  + [1500.0] * 3)
    maps = individual.tissue_fractions(t1, labels)
    assert np.allclose(maps["csf"], [1] * 5 + [0] * 7 + [0.5, 1.0] + [0] * 6 + [0.5] + [0] * 3)
    assert np.allclose(maps["gm"], [0] * 5 + [1] * 7 + [0.5, 0.0] + [1] * 6 + [0.5] + [0] * 3)
    assert np.allclose(maps["wm"], [0] * 21 + [1] * 3)
    with pytest.raises(ValueError, match="shape"):
        individual.tissue_fractions(t1[:-1], labels)
    with pytest.raises(ValueError, match="ventricles"):
        individual.tissue_fractions(t1, np.where(labels == 51, 4, labels))


def test_individual_template_recovers_the_phantom_anatomy(tmp_path):
    from scipy import ndimage

    prep = _prepared_root(tmp_path, n=3)
    labels = _labels(shift=0)  # S01 is unshifted
    anatomy = warp_anatomy(Warp(), individual.individual_template(str(prep), "S01"))
    for label, tissue in ((51, "csf"), (100, "gm"), (81, "wm")):
        # voxels whose whole 3x3x3 neighbourhood has this label: nearly pure
        core = ndimage.binary_erosion(labels == label, np.ones((3, 3, 3)))
        assert core.sum() > 50, tissue
        assert getattr(anatomy, tissue)[core].mean() > 0.85, tissue
    dice = 2 * (anatomy.mask & (labels > 0)).sum() / (anatomy.mask.sum() + (labels > 0).sum())
    assert dice > 0.97


def test_missing_label_map_is_named(tmp_path):
    prep = _prepared_root(tmp_path, n=3, drop_labels_of="S02")
    with pytest.raises(FileNotFoundError, match="S02_T1_DLMUSE.nii.gz"):
        individual.fingerprint(prep)


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
    assert len(manifest["parameters"]["anatomy"]["files"]) == 18  # 6 x (t1, labels, transform)
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
