"""Issue 28 in `data prepare`: the user's masks win, the tool's choices are said once and
recorded, and a scan that does not look like its sequence is warned about."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from test_prepare import tiny_settings

from benchmark.data.prepare import run_prepare, skull, steps
from benchmark.data.prepare.cohorts import COHORTS
from benchmark.data.prepare.modality import modality_warning, tissue_contrast


def _template_2mm() -> tuple[np.ndarray, np.ndarray]:
    """The MNI T1 template (a T1 brain) at 2 mm: (array, affine)."""
    img = nib.load(steps.default_template_path())
    affine = img.affine.copy()
    affine[:3, :3] *= 2
    return np.asarray(img.dataobj, np.float32)[::2, ::2, ::2], affine


def _as_t2(t1: np.ndarray) -> np.ndarray:
    """The same brain with T2 contrast: fluid bright, white matter dark (order inverted)."""
    brain = t1 > 0.01 * t1.max()
    return np.where(brain, 1.05 * t1.max() - t1, 0).astype(np.float32)


def test_tissue_contrast_tells_t1_from_t2():
    t1, _ = _template_2mm()
    template = sitk.GetImageFromArray(t1)
    brain = sitk.GetImageFromArray((t1 > 0.01 * t1.max()).astype(np.uint8))
    as_t1 = tissue_contrast(template, brain, template)
    as_t2 = tissue_contrast(sitk.GetImageFromArray(_as_t2(t1)), brain, template)
    assert as_t1.wm > as_t1.gm > as_t1.csf and as_t1.looks_like() == "t1"
    assert as_t2.csf > as_t2.gm > as_t2.wm and as_t2.looks_like() == "t2"
    assert modality_warning("t1", as_t1) is None and modality_warning("t2", as_t2) is None
    assert "as in a T2" in modality_warning("t1", as_t2)
    assert "as in a T1" in modality_warning("t2", as_t1)
    assert modality_warning("flair", as_t1) is None  # FLAIR is not told from T1
    assert "as in a T2" in modality_warning("flair", as_t2)
    flat = tissue_contrast(sitk.GetImageFromArray(np.where(t1 > 0, 1.0, 0.0).astype(np.float32)),
                           brain, template)
    assert flat is None or flat.looks_like() is None  # no contrast: no opinion, no warning


def test_user_masks_win_choices_are_recorded_and_a_t2_filed_as_t1_is_named(tmp_path,
                                                                            monkeypatch):
    """`--mask-dir` with deepbet installed used to run deepbet (a per-subject line was the
    only trace); a T2 filed under a T1 name used to be prepared without a word."""
    def no_deepbet(*_):
        raise AssertionError("deepbet must not run when the user gave masks")

    monkeypatch.setattr(skull, "hdbet_available", lambda: False)
    monkeypatch.setattr(skull, "deepbet_available", lambda: True)
    monkeypatch.setattr(skull, "deepbet_mask", no_deepbet)
    t1, affine = _template_2mm()
    raw, masks = tmp_path / "ixi", tmp_path / "masks"
    raw.mkdir(), masks.mkdir()
    sid = "IXI902-HH-0002"  # one subject (registration is the cost); the T1 control is
    # test_prepare.py::test_real_scans_look_like_their_sequence
    nib.save(nib.Nifti1Image(_as_t2(t1), affine), raw / f"{sid}-T1.nii.gz")
    nib.save(nib.Nifti1Image((t1 > 0.01 * t1.max()).astype(np.uint8), affine),
             masks / f"{sid}_brainmask.nii.gz")
    lines = []
    result = run_prepare(COHORTS["ixi"], raw, tmp_path / "out", tiny_settings(["t1"]),
                         mask_dir=str(masks), echo=lines.append)
    assert not result["failed"], result["failed"]
    data = tmp_path / "out/Data"
    record = json.loads((data / f".prepare/IXI/{sid}.json").read_text())
    assert record["skull_strip"] == "mask"
    summary = [line for line in lines if "skull strip 'mask' for 1 subject(s)" in line]
    assert len(summary) == 1 and "chosen by --skull-strip auto" in summary[0]
    odd = [line for line in lines if "do not look like the sequence" in line]
    assert len(odd) == 1 and sid in odd[0]
    assert "as in a T2" in record["warnings"][0]
    assert record["tissue_contrast"]["t1"]["looks_like"] == "t2"
    choices = json.loads((data / "manifest.json").read_text())["choices"]["IXI"]
    assert choices["skull_strip"]["requested"] == "auto"
    assert choices["skull_strip"]["used"] == {"mask": [sid]}
    assert list(choices["modality_warnings"]) == [sid]
