"""Bad input fails before anything is written or trained (benchmark.validate).

Each case breaks one thing in a private copy of the toy data (or the configuration) and
asserts: exit status 2, the culprit named in the message, and no run directory.
"""
from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import layout
from benchmark.data.loader import load_volume

RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress"]


@pytest.fixture
def data(toy_root, tmp_path):
    """A copy of the toy data to break."""
    root = tmp_path / "data"
    shutil.copytree(toy_root, root)
    return root


def _brats_test(root, i=0):
    return layout.unhealthy_split(root, "Brats21", "test")[i]


def _rewrite(path, edit, dtype=None):
    img = nib.load(str(path))
    array = edit(np.asarray(img.dataobj).astype(dtype or img.get_data_dtype()))
    nib.save(nib.Nifti1Image(array, img.affine), str(path))


def _fails(capsys, tmp_path, args, *culprits):
    """Run; assert exit 2, every culprit in stderr, and nothing written."""
    out = tmp_path / "runs"
    assert main(RUN + ["--out", str(out), "--run-id", "r"] + args) == 2
    err = capsys.readouterr().err
    for culprit in culprits:
        assert culprit in err, err
    assert not (out / "r").exists(), "a run that fails its checks must leave no run directory"
    return err


# ---------------------------------------------------------------------------- broken data
def test_missing_test_volume(data, capsys, tmp_path):
    rec = _brats_test(data)
    rec.image.unlink()
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)],
           str(rec.image), "not found")


def test_corrupt_test_volume(data, capsys, tmp_path):
    rec = _brats_test(data)
    rec.image.write_bytes(gzip.compress(b"not a nifti file"))
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)],
           str(rec.image), "cannot read image")


def test_nan_in_a_test_volume(data, capsys, tmp_path):
    rec = _brats_test(data, 1)

    def nan(a):
        a[40, 40, 25] = np.nan
        return a

    _rewrite(rec.image, nan, np.float32)
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)],
           str(rec.image), "NaN")


def test_mask_of_another_shape(data, capsys, tmp_path):
    rec = _brats_test(data)
    _rewrite(rec.mask, lambda a: a[:, :, :49])
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)],
           str(rec.mask), "does not match its image")


def test_empty_brain_mask(data, capsys, tmp_path):
    rec = _brats_test(data)
    _rewrite(rec.mask, np.zeros_like)
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)],
           str(rec.mask), "empty")


def test_missing_training_volume(data, capsys, tmp_path):
    rec = layout.healthy_splits(data, "t2", 0)["train"][0]
    rec.image.unlink()
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)], str(rec.image))


@pytest.mark.parametrize("content, message", [
    ("", "split file is empty"), (",img_name,img_path,mask_path\n", "has no rows"),
    (",img_name,img_path\nX,/Test/x.nii.gz\n", "missing column"),
])
def test_broken_split_csv(data, capsys, tmp_path, content, message):
    csv = data / "Data" / "splits" / "Brats21_test.csv"
    csv.write_text(content)
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(data)], str(csv), message)


def test_not_a_data_root(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(tmp_path / "empty")],
           "not a UAD-Bench data root")


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("values", [(2, 4), (-1,), (0.5,)])
def test_label_values_outside_0_1_are_an_error(data, capsys, tmp_path, values):
    rec = _brats_test(data)

    def relabel(a):
        lesion = np.argwhere(a > 0)
        for k, v in enumerate(values):
            a[tuple(lesion[k])] = v
        return a

    _rewrite(rec.seg, relabel, np.float32)
    err = _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
                 str(rec.seg), "labels.json")
    for v in values:
        assert f"{v:g}" in err


def test_declared_label_mapping_is_applied(data, capsys, tmp_path):
    """BraTS' {1, 2, 4}: an error by default, all lesion once Data/labels.json says so."""
    rec = _brats_test(data)
    truth = np.asarray(nib.load(str(rec.seg)).dataobj) > 0
    lesion = np.argwhere(truth)
    _rewrite(rec.seg, lambda a: np.where(a > 0, 2, a).astype(np.uint8))  # all 2 ...
    _rewrite(rec.seg, lambda a: _set(a, lesion[:5], 4))                    # ... five 4s
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)], str(rec.seg))
    (data / "Data" / "labels.json").write_text(json.dumps({"Brats21": {"lesion": [1, 2, 4]}}))
    rec = _brats_test(data)  # records carry the declared rule
    assert rec.labels.lesion == (1.0, 2.0, 4.0)
    assert main(RUN + ["--methods", "thresh", "--data-root", str(data), "--check",
                       "--out", str(tmp_path / "runs")]) == 0
    # the binarised label is exactly the original lesion: 2s and 4s are lesion
    assert np.array_equal(load_volume(rec).seg, truth)


def _set(a, idx, value):
    a[tuple(idx.T)] = value
    return a


def test_labels_json_that_is_not_a_rule(data, capsys, tmp_path):
    path = data / "Data" / "labels.json"
    path.write_text(json.dumps({"Brats21": {"lesions": [1]}}))
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)], str(path))


# ---------------------------------------------------------------------------- configuration
def test_unknown_cohort_suggests_the_close_one(toy_root, capsys, tmp_path):
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(toy_root),
                              "--cohorts", "Brats2"], "'Brats2'", "did you mean 'Brats21'?")


def test_cohort_of_the_other_sequence(toy_root, capsys, tmp_path):
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(toy_root),
                              "--cohorts", "WMH"], "'WMH' is a t1 cohort")


def test_fold_out_of_range(toy_root, capsys, tmp_path):
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(toy_root),
                              "--folds", "0,7"], "--folds", "[7]")


def test_method_typo_suggests_the_close_one(toy_root, capsys, tmp_path):
    _fails(capsys, tmp_path, ["--methods", "cdpm", "--data-root", str(toy_root)],
           "unknown method 'cdpm'", "did you mean 'cddpm'?")


def test_hyperparameter_typo_suggests_the_close_one(toy_root, capsys, tmp_path):
    _fails(capsys, tmp_path, ["--methods", "ae", "--set", "ae.latentdim=3",
                              "--data-root", str(toy_root)],
           "'latentdim'", "did you mean 'latent_dim'?")


@pytest.mark.parametrize("toml, culprit", [
    ("[ae]\nlatent_dim = 2.5\n", "'latent_dim': expected an integer, got 2.5"),
    ("[ae]\nlatent_dim = \"many\"\n", "'latent_dim': expected an integer, got 'many'"),
    ("[ae]\ndropout = true\n", "'dropout': expected a number, got True"),
    ("[ae]\nresidual = \"abss\"\n", "did you mean 'abs'?"),
    ("[ae]\nlatent_dim = [1, 2]\n", "'latent_dim': expected an integer"),
])
def test_config_values_are_type_checked(toy_root, capsys, tmp_path, toml, culprit):
    config = tmp_path / "ae.toml"
    config.write_text(toml)
    _fails(capsys, tmp_path, ["--methods", "ae", "--config", str(config),
                              "--data-root", str(toy_root)], culprit)


def test_every_problem_in_one_report(data, capsys, tmp_path):
    rec = _brats_test(data)
    rec.image.unlink()
    err = _fails(capsys, tmp_path, ["--methods", "ae,thresh", "--set", "ae.latent_dim=2.5",
                                    "--set", "thresh.nbin=3", "--folds", "0,9",
                                    "--data-root", str(data)],
                 "'latent_dim'", "'nbin'", "[9]", str(rec.image))
    assert "4 problem(s) found before anything was written" in err


def test_check_prints_the_plan_and_writes_nothing(toy_root, capsys, tmp_path):
    out = tmp_path / "runs"
    assert main(RUN + ["--methods", "thresh,ae", "--data-root", str(toy_root), "--out",
                       str(out), "--run-id", "r", "--check"]) == 0
    text = capsys.readouterr().out
    assert "thresh/t2/fold0: to run" in text and "ae/t2/fold0: to run" in text
    # smoke caps: 8 training volumes, max(1, 8 // 4) = 2 validation, 2 per test set
    assert "IXI 8 train/2 val/2 test" in text and "Brats21 2 test/2 val" in text
    assert "check: OK, nothing written" in text
    assert not out.exists()
