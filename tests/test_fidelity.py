"""benchmark.fidelity: the lesion and tissue statistics on volumes with known answers, the
real-scan reader, and the fidelity command end to end on the smoke data."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.fidelity.stats import (
    Tissues,
    components,
    lesion_statistics,
    tissue_classes,
    tissue_statistics,
)

SHAPE = (48, 48, 40)
WM, GM, CSF = 1.0, 0.6, 0.2  # a T1-like volume
SIGMA = 0.02


def _phantom(seed: int = 0):
    """A T1-like phantom on a 2 mm grid: a 36 x 36 x 30 voxel brain of WM with a 3-voxel
    GM rim and a CSF 'ventricle' slab in the middle, Gaussian noise SIGMA; and a 5x5x5
    voxel cube lesion (1.0 mL) of intensity 0.7 at a known place in the WM."""
    rng = np.random.default_rng(seed)
    brain = np.zeros(SHAPE, bool)
    brain[6:42, 6:42, 5:35] = True
    image = np.where(brain, WM, 0.0)
    inner = np.zeros(SHAPE, bool)
    inner[9:39, 9:39, 8:32] = True
    image[brain & ~inner] = GM
    vent = np.zeros(SHAPE, bool)
    vent[20:28, 16:32, 14:26] = True
    image[vent] = CSF
    lesion = np.zeros(SHAPE, bool)
    lesion[12:17, 22:27, 17:22] = True  # 125 voxels of 8 mm3 = 1.0 mL
    image[lesion] = 0.7
    image = (image + rng.normal(0, SIGMA, SHAPE)) * brain
    return image, brain, lesion, vent


def test_tissue_classes_find_the_phantoms_tissues():
    image, brain, lesion, vent = _phantom()
    t = tissue_classes(image, brain, "t1", exclude=lesion)
    assert isinstance(t, Tissues)
    assert (t.csf == (vent & brain)).mean() > 0.999
    assert t.wm[20, 36, 20] and t.gm[6, 20, 20] and t.csf[24, 24, 20]
    # T2's order is the reverse of T1's: the same image read as T2 swaps CSF and WM
    t2 = tissue_classes(image, brain, "t2", exclude=lesion)
    assert np.array_equal(t2.wm, t.csf) and np.array_equal(t2.csf, t.wm)
    with pytest.raises(ValueError, match="unknown sequence"):
        tissue_classes(image, brain, "dwi")


def test_lesion_statistics_of_a_planted_lesion_of_known_size_and_contrast():
    image, brain, lesion, _ = _phantom()
    s = lesion_statistics(image, brain, lesion, spacing_mm=2.0, sequence="t1")
    assert s["volume_ml"] == pytest.approx(1.0)
    assert s["n_components"] == 1 and s["largest_share"] == 1.0
    # contrast: intensity 0.7 in WM 1.0 / GM 0.6 / CSF 0.2, noise 0.02
    assert s["ratio_wm"] == pytest.approx(0.7, abs=0.005)
    assert s["ratio_gm"] == pytest.approx(0.7 / 0.6, abs=0.01)
    assert s["water_share"] == pytest.approx((0.7 - 1.0) / (0.2 - 1.0), abs=0.01)
    assert s["cnr_wm"] == pytest.approx(-0.3 / SIGMA, rel=0.05)
    assert s["cnr_gm"] == pytest.approx(0.1 / SIGMA, rel=0.05)
    # 0.7 lies above every CSF (0.2) and GM (0.6) voxel and below every WM (1.0) voxel:
    # its percentile is the CSF + GM share of the healthy brain
    healthy = brain & ~lesion
    darker = (image[healthy] < 0.8).mean()
    assert 0.3 < darker < 0.6
    assert s["intensity_percentile"] == pytest.approx(100 * darker, abs=0.5)
    assert s["cv"] == pytest.approx(SIGMA / 0.7, rel=0.15)  # texture: noise only
    # location: the cube's centre (14, 24, 19) is 6 voxels from the slab (x 20..27) and 8
    # from the brain's surface (x 6): medians over its voxels, in mm
    assert s["dist_ventricles_mm"] == pytest.approx(2 * 6, abs=2.5)
    assert s["dist_surface_mm"] == pytest.approx(2 * 9, abs=2.5)
    assert s["wm_share"] > 0.9


def test_components_count_separate_lesions_and_filter_by_size():
    lesion = np.zeros(SHAPE, bool)
    lesion[5:8, 5:8, 5:8] = True       # 27 voxels
    lesion[20, 20, 20] = True          # 1 voxel
    lesion[30:32, 30:32, 30:32] = True  # 8 voxels
    assert components(lesion, 2.0).tolist() == pytest.approx([27 * 8e-3, 8 * 8e-3, 8e-3])
    assert components(lesion, 2.0, min_component_ml=8 * 8e-3).size == 2


def test_tissue_statistics_and_bad_input():
    image, brain, lesion, _ = _phantom()
    t = tissue_statistics(image, brain & ~lesion, "t1")
    assert t["gm_position"] == pytest.approx((GM - WM) / (CSF - WM), abs=0.01)
    assert t["gm_wm_ratio"] == pytest.approx(GM / WM, abs=0.01)
    assert t["wm_cv"] == pytest.approx(SIGMA / WM, rel=0.1)
    # edge density counts tissue boundaries and noise: 2.2 times the noise adds to it
    rng = np.random.default_rng(1)
    noisier = (image + rng.normal(0, 2 * SIGMA, SHAPE)) * brain
    assert tissue_statistics(noisier, brain & ~lesion, "t1")["edge_density"] > \
        1.1 * t["edge_density"]
    with pytest.raises(ValueError, match="does not match"):
        lesion_statistics(image, brain, lesion[:-1], 2.0, "t1")
    with pytest.raises(ValueError, match="brain mask is empty"):
        tissue_statistics(image, np.zeros(SHAPE, bool), "t1")
    bad = image.copy()
    bad[20, 20, 20] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tissue_statistics(bad, brain, "t1")


def test_a_real_scan_is_read_onto_the_2mm_grid(tmp_path):
    """A 1 mm NIfTI with an anisotropic lesion file: resampled to 2 mm, normalised to
    [0, 1] inside its (non-zero) brain, the lesion kept on the same grid."""
    import nibabel as nib

    from benchmark.fidelity.volumes import read_real

    image, _, lesion, _ = _phantom()

    def up(a):
        return np.repeat(np.repeat(np.repeat(a, 2, 0), 2, 1), 2, 2)

    nib.save(nib.Nifti1Image(up(image).astype(np.float32), np.eye(4)), tmp_path / "t1.nii.gz")
    nib.save(nib.Nifti1Image(up(lesion).astype(np.uint8), np.eye(4)), tmp_path / "les.nii.gz")
    vol = read_real(tmp_path / "t1.nii.gz", "t1", "X", "s", lesion=tmp_path / "les.nii.gz")
    assert vol.image.shape == vol.lesion.shape == vol.brain.shape
    assert vol.image.max() <= 1.0 and vol.image.min() >= 0.0
    assert vol.lesion.sum() * 8e-3 == pytest.approx(1.0, rel=0.3)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_real(tmp_path / "nope.nii.gz", "t1", "X", "s")


def test_the_fidelity_command_on_the_smoke_data(tmp_path, monkeypatch):
    """Both generator versions, smoke size: one row per volume, a summary per source,
    and the v2 MS lesions larger than v1's, as calibrated (docs/synthetic.md)."""
    import pandas as pd

    from benchmark.cli import main

    monkeypatch.setenv("UAD_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "fid"
    assert main(["experiment", "fidelity", "--versions", "1,2", "--size", "smoke",
                 "--out", str(out)]) == 0
    per_volume = pd.read_csv(out / "per_volume.csv")
    assert set(per_volume["source"]) == {"synthetic-v1", "synthetic-v2"}
    assert {"MSLUB", "Brats21", "ATLAS_v2", "WMH", "IXI"} <= set(per_volume["cohort"])
    ms = per_volume[per_volume["cohort"] == "MSLUB"].groupby("source")["volume_ml"].median()
    assert ms["synthetic-v2"] > 3 * ms["synthetic-v1"]
    assert (out / "summary.md").read_text().startswith("### ")
    assert (out / "fidelity.png").stat().st_size > 10_000
    # any data root in the synthetic layout is measured under its folder's name
    again = tmp_path / "fid2"
    assert main(["experiment", "fidelity", "--versions", "2", "--size", "smoke",
                 "--data-root", str(tmp_path / "cache" / "synthetic-smoke-v1"),
                 "--out", str(again)]) == 0
    sources = set(pd.read_csv(again / "per_volume.csv")["source"])
    assert sources == {"synthetic-v2", "synthetic-smoke-v1"}
    with pytest.raises(SystemExit, match="no Data/ folder"):
        main(["experiment", "fidelity", "--versions", "2", "--size", "smoke",
              "--data-root", str(tmp_path), "--out", str(again)])
