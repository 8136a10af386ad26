"""Skull stripping: the order ``auto`` follows, what the record says, deepbet on real scans."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import SimpleITK as sitk
from test_prepare import TINY, _phantom, _save, real_samples, tiny_settings

from benchmark.data.prepare import run_prepare, skull, steps
from benchmark.data.prepare.cohorts import COHORTS
from benchmark.data.prepare.subject import _native_mask

HAS_DEEPBET = importlib.util.find_spec("deepbet") is not None
needs_deepbet = pytest.mark.skipif(not HAS_DEEPBET, reason="deepbet not installed "
                                   "(pip install -e .[prepare])")


def _head_and_brain():
    """A 'head': brain ellipsoid inside a larger, darker shell (scalp) -> 4+ litres."""
    brain, _ = _phantom(lesion=False)
    grid = np.stack(np.meshgrid(*[(np.arange(n) - n / 2) * 4.0 for n in brain.shape],
                                indexing="ij"))
    r = np.sqrt((grid[0] / 85) ** 2 + (grid[1] / 100) ** 2 + (grid[2] / 80) ** 2)
    head = np.where(r < 1, 30.0, 0.0).astype(np.float32)
    head[brain > 0] = brain[brain > 0]
    return head, brain


def _sitk(array):
    image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0)))
    image.SetSpacing((4.0, 4.0, 4.0))
    return image


def test_auto_order(monkeypatch):
    head, brain = _head_and_brain()
    head_img, brain_img = _sitk(head), _sitk(brain)
    monkeypatch.setattr(skull, "hdbet_available", lambda: False)
    monkeypatch.setattr(skull, "deepbet_available", lambda: True)
    pick = skull.resolve_skull_strip
    # the user's masks win over any installed tool; a tool only when named
    assert pick("auto", head_img, has_user_mask=True, has_t1=True) == "mask"
    assert pick("deepbet", head_img, has_user_mask=True, has_t1=True) == "deepbet"
    assert pick("auto", head_img, has_user_mask=False, has_t1=True) == "deepbet"
    assert pick("auto", head_img, has_user_mask=False, has_t1=False) == "template"  # T2 only
    assert pick("auto", brain_img, has_user_mask=False, has_t1=True) == "nonzero"  # stripped
    monkeypatch.setattr(skull, "deepbet_available", lambda: False)
    assert pick("auto", head_img, has_user_mask=False, has_t1=True) == "template"
    with pytest.raises(RuntimeError, match="deepbet is not installed"):
        pick("deepbet", head_img, has_user_mask=False, has_t1=True)
    monkeypatch.setattr(skull, "hdbet_available", lambda: True)
    assert pick("auto", head_img, has_user_mask=False, has_t1=True) == "hdbet"
    assert pick("auto", head_img, has_user_mask=True, has_t1=True) == "mask"


def test_template_fallback_warns_in_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(skull, "hdbet_available", lambda: False)
    monkeypatch.setattr(skull, "deepbet_available", lambda: False)
    head, _ = _head_and_brain()
    (tmp_path / "ixi").mkdir()
    _save(tmp_path / "ixi/IXI900-HH-0001-T2.nii.gz", head)
    lines = []
    res = run_prepare(COHORTS["ixi"], tmp_path / "ixi", tmp_path / "out",
                      tiny_settings(["t2"]), echo=lines.append)
    assert not res["failed"], res["failed"]
    record = json.loads((tmp_path / "out/Data/.prepare/IXI/IXI900-HH-0001.json").read_text())
    assert record["skull_strip"] == "template" and record["mask_from"] == "template"
    assert "crude FALLBACK" in record["warnings"][0]


@pytest.fixture(scope="module")
def ixi_scan():
    root = real_samples()
    if root is None:
        pytest.skip("real samples not found (set UAD_BENCH_REAL_SAMPLES)")
    return root


@pytest.mark.slow
@needs_deepbet
def test_deepbet_matches_the_dlmuse_brain(ixi_scan):
    sid = "IXI012-HH-1211"
    image = steps.reorient_resample(
        steps.read_image(ixi_scan / f"ixi_t1/{sid}_T1.nii.gz", sid, "t1"), is_label=False)
    labels = steps.reorient_resample(skull.user_mask(
        ixi_scan / f"ixi_t1/{sid}_T1_DLMUSE.nii.gz", sid, None), is_label=True)
    mask = sitk.GetArrayFromImage(skull.deepbet_mask(image, sid)) > 0
    ref = sitk.GetArrayFromImage(labels) > 0
    dice = 2 * (mask & ref).sum() / (mask.sum() + ref.sum())
    assert dice > 0.96  # measured 0.982 on this scan (datasets/ixi.md)


@pytest.mark.slow
@needs_deepbet
def test_deepbet_t1_mask_reaches_the_t2_through_registration(ixi_scan):
    """A subject prepared on T2: deepbet runs on its T1 and the mask follows the rigid
    T1 -> T2 registration (MS patient: T1 and T2 skull-stripped on one grid, so the T2's
    own non-zero region is the answer)."""
    def load(seq):
        raw = steps.read_image(ixi_scan / f"ms_patient07/patient07_{seq}.nii.gz", "p07", seq)
        return steps.reorient_resample(raw, is_label=False)

    t1, t2 = load("T1"), load("T2")
    settings = tiny_settings(["t2"])
    assert settings.registration == TINY
    mask = _native_mask("deepbet", {"t2": t2}, "t2", None, t1, settings, "p07")
    got = sitk.GetArrayFromImage(mask) > 0
    truth = sitk.GetArrayFromImage(skull.nonzero_mask(t2)) > 0
    assert got.shape == truth.shape
    assert 2 * (got & truth).sum() / (got.sum() + truth.sum()) > 0.93
