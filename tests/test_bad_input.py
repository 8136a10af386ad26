"""Issue 28: bad input that used to become a published number, or pass in silence.

Each test breaks one thing as the issue describes it and asserts the clear error (exit 2,
the culprit named, nothing written) or, where the input is legitimate but odd, the
warning in stderr and in the run's records. docs/failures.md lists every case.
"""
from __future__ import annotations

import errno
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from test_validate import RUN, _brats_test, _fails, _rewrite

from benchmark import checkpoint
from benchmark.cli import main
from benchmark.data import layout
from benchmark.data.loader import load_volume
from benchmark.rundir import RunDir


@pytest.fixture
def data(toy_root, tmp_path):
    """A copy of the toy data to break."""
    root = tmp_path / "data"
    shutil.copytree(toy_root, root)
    return root


def _args(root, out, *extra):
    return RUN + ["--data-root", str(root), "--out", str(out), "--run-id", "r", *extra]


# ---------------------------------------------------------------------------- data
def test_a_mask_the_scoring_erodes_away_is_refused(data, capsys, tmp_path):
    """A 5-voxel slab of brain passes 'not empty' but is nothing after the scoring's 3x
    erosion: every score of the volume would be constant (AUROC 0.5, Dice 0)."""
    rec = _brats_test(data)
    centre = int(np.argwhere(np.asarray(nib.load(str(rec.seg)).dataobj) > 0)[:, 0].mean())

    def slab(a):
        out = np.zeros_like(a)
        out[centre - 2:centre + 3] = a[centre - 2:centre + 3]
        return out

    _rewrite(rec.mask, slab)
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
           str(rec.mask), "empty after the scoring's erosion")


def test_a_mask_that_is_all_lesion_is_refused(data, capsys, tmp_path):
    """mask == lesion label: no healthy voxel, so AUROC is undefined (the issue's AUPRC 1.0)."""
    rec = _brats_test(data)
    lesion = np.asarray(nib.load(str(rec.seg)).dataobj) > 0
    big = np.zeros_like(lesion)
    big[30:60, 30:60, 20:30] = True
    for path in (rec.mask, rec.seg):
        _rewrite(path, lambda a: big.astype(a.dtype))
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
           str(rec.mask), "every brain voxel", "is lesion")


def test_swapped_columns_in_a_test_csv_are_named_not_dropped(data, capsys, tmp_path):
    """The first row's img_path names no sequence folder: the cohort used to vanish."""
    csv = data / "Data/splits/MSLUB_test.csv"
    df = pd.read_csv(csv, index_col=0)
    first = df.index[0]
    df.loc[first, ["img_path", "seg_path"]] = df.loc[first, ["seg_path", "img_path"]].to_numpy()
    df.to_csv(csv)
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
           str(csv), f"row {df.loc[first, 'img_name']}", "no sequence folder")


def test_a_test_csv_mixing_sequences_is_an_error(data):
    csv = data / "Data/splits/MSLUB_test.csv"
    df = pd.read_csv(csv, index_col=0)
    df.loc[df.index[-1], "img_path"] = df["img_path"].iloc[-1].replace("/t2/", "/t1/")
    df.to_csv(csv)
    with pytest.raises(layout.DataLayoutError, match="mixes sequences") as err:
        layout.unhealthy_cohorts(data, "t2")
    assert str(csv) in str(err.value)


def test_image_on_another_grid_than_its_mask_is_refused(data, capsys, tmp_path):
    """Same shape, other voxel size and origin: used to be scored as if aligned."""
    rec = _brats_test(data)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [30, -20, 10]
    img = nib.load(str(rec.image))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), str(rec.image))
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
           str(rec.mask), "not on its image's voxel grid", "voxel size")


def test_a_constant_image_is_refused(data, capsys, tmp_path):
    rec = _brats_test(data)
    _rewrite(rec.image, lambda a: np.full_like(a, 100.0), np.float32)
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
           str(rec.image), "constant inside its brain mask")


def test_a_split_path_leaving_the_data_root_is_refused(data, capsys, tmp_path):
    csv = data / "Data/splits/Brats21_test.csv"
    df = pd.read_csv(csv, index_col=0)
    outside = tmp_path / "outside.nii.gz"
    shutil.copy(data / "Data" / df["img_path"].iloc[0].lstrip("/"), outside)  # readable
    depth = len((data / "Data").relative_to(tmp_path).parts) + 3
    df.loc[df.index[0], "img_path"] = "/Test/Brats21/t2/" + "../" * depth + "outside.nii.gz"
    df.to_csv(csv)
    _fails(capsys, tmp_path, ["--methods", "thresh", "--data-root", str(data)],
           str(csv), f"row {df['img_name'].iloc[0]}", "img_path", "leaves the data directory")


# ---------------------------------------------------------------------------- flags
@pytest.mark.parametrize("run_id", ["../../x", "ABSOLUTE", ".", "..", "a/b"])
def test_a_run_id_stays_one_folder_inside_out(toy_root, tmp_path, capsys, run_id):
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    if run_id == "ABSOLUTE":
        run_id = str(tmp_path / "elsewhere")
    args = RUN + ["--methods", "thresh", "--data-root", str(toy_root), "--out", str(out),
                  "--run-id", run_id]
    assert main(args) == 2
    assert f"--run-id {run_id!r}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "out"], "nothing written"


@pytest.mark.parametrize("how", [["--set", "ae.lr=nan"], ["--set", "ae.lr=inf"], "toml"])
def test_nan_and_inf_hyperparameters_are_refused(toy_root, capsys, tmp_path, how):
    if how == "toml":
        (tmp_path / "ae.toml").write_text("[ae]\nlr = nan\n")  # TOML has nan literals
        how = ["--config", str(tmp_path / "ae.toml")]
    _fails(capsys, tmp_path, ["--methods", "ae", "--data-root", str(toy_root), *how],
           "'lr': expected a finite number")


def test_epochs_0_and_a_small_healthy_set_are_warned_and_recorded(toy_root, tmp_path, capsys):
    """Legitimate but odd: the run goes on, the warning is printed once, lands in
    config.json, and the untrained method's rows say so (a leaderboard entry of its own)."""
    out = tmp_path / "runs"
    assert main(_args(toy_root, out, "--methods", "ae", "--epochs", "0")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: --epochs 0: ae skips its training stage(s) main") == 1
    assert "healthy training set of t2 fold0 has 8 volume(s), fewer than 30" in err
    config = json.loads((out / "r/config.json").read_text())
    assert any("untrained_stages=main" in w for w in config["warnings"])
    assert any("fewer than 30" in w for w in config["warnings"])
    rows = pd.read_csv(out / "r/per_volume.csv")
    assert set(rows["untrained_stages"]) == {"main"}
    part = RunDir(out / "r").part("ae", "t2", 0)
    assert part.tags() == {"untrained_stages": "main"} and part.checkpoint().is_file()
    # the warnings are records of a launch, not settings: a resume is not refused for them
    assert main(_args(toy_root, out, "--methods", "ae", "--epochs", "0", "--resume")) == 0


def test_a_full_disk_is_one_message_and_resume_finishes(toy_root, tmp_path, capsys,
                                                        monkeypatch):
    from benchmark import runner

    real = runner.write_part_results
    calls = []

    def full(part, *args, **kw):
        calls.append(part.key)
        if part.fold == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(part, *args, **kw)

    monkeypatch.setattr(runner, "write_part_results", full)
    out = tmp_path / "runs"
    assert main(_args(toy_root, out, "--methods", "thresh", "--folds", "0,1")) == 4
    err = capsys.readouterr().err
    assert "No space left on device" in err and "thresh/t2/fold1" in err
    assert "Traceback" not in err and "--resume" in err
    assert RunDir(out / "r").part("thresh", "t2", 0).is_done()
    monkeypatch.setattr(runner, "write_part_results", real)
    assert main(_args(toy_root, out, "--methods", "thresh", "--folds", "0,1", "--resume")) == 0
    assert set(pd.read_csv(out / "r/per_volume.csv")["fold"]) == {0, 1}


# ---------------------------------------------------------------------------- metrics
@pytest.fixture
def run(thresh_run, tmp_path):
    copy = tmp_path / "runs" / "r"
    shutil.copytree(thresh_run, copy)
    return copy


@pytest.mark.parametrize("table, column, value", [
    ("per_dataset.csv", "auprc_pooled", 3.5), ("per_dataset.csv", "auprc_pooled", np.nan),
    ("per_dataset.csv", "auroc_pooled", -0.2), ("per_volume.csv", "auprc", np.inf),
    ("per_volume.csv", "dice", 1.5), ("per_volume.csv", "auroc", "high"),
])
def test_the_leaderboard_refuses_metrics_outside_their_range(run, tmp_path, capsys, table,
                                                             column, value):
    frame = pd.read_csv(run / table)
    if table == "per_dataset.csv":
        rows = frame.index[frame["metric"] == column]
        frame.loc[rows[1], "value"] = value
        culprit = f"metric {column}"
    else:
        frame[column] = frame[column].astype(object)
        rows = frame.index[frame["fold"] == 1]
        frame.loc[rows[0], column] = value
        culprit = f"column {column}"
    frame.to_csv(run / table, index=False)
    board = tmp_path / "board"
    assert main(["leaderboard", str(run), "--out", str(board)]) == 2
    err = capsys.readouterr().err
    for part in (str(run), table, culprit, "outside its range", "part thresh/t2/fold"):
        assert part in err, err
    assert "Traceback" not in err
    assert not board.exists() or not any(board.iterdir()), "nothing may be written"


def test_scoring_refuses_to_write_a_metric_outside_its_range(run, capsys, monkeypatch):
    """The writer's side: a number outside its range never reaches a table."""
    from benchmark import metrics

    before = {p: p.read_bytes() for p in sorted(run.rglob("*.csv"))}
    real = metrics.overlap_scores
    monkeypatch.setattr(metrics, "overlap_scores",
                        lambda tp, fp, fn: {**real(tp, fp, fn), "dice": 1.25})
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "column dice = 1.25 is outside its range [0, 1]" in err
    assert "thresh/t2/fold0" in err
    assert {p: p.read_bytes() for p in sorted(run.rglob("*.csv"))} == before


# ---------------------------------------------------------------------------- checkpoints
def test_random_bytes_are_a_damaged_checkpoint_not_an_unsafe_one(run, capsys):
    ckpt = RunDir(run).part("thresh", "t2", 0).checkpoint()
    ckpt.write_bytes(np.random.default_rng(0).bytes(4000))
    assert main(["experiment", "noise-levels", str(run), "--methods", "thresh"]) == 2
    err = capsys.readouterr().err
    assert f"cannot read checkpoint {ckpt}: it is not a PyTorch checkpoint" in err
    assert "--trust-checkpoints" not in err, "a damaged file is not a reason to trust it"


def test_a_damaged_training_state_is_named_not_called_unsafe(toy_root, tmp_path, capsys):
    """A torn last-<stage>.ckpt (what --resume continues from) is damaged, not foreign code."""
    out = tmp_path / "runs"
    state = out / "r" / "ae" / "t2" / "fold0" / "last-main.ckpt"
    state.parent.mkdir(parents=True)
    state.write_bytes(np.random.default_rng(0).bytes(4000))
    assert main(_args(toy_root, out, "--methods", "ae")) == 2
    err = capsys.readouterr().err
    assert f"{state}: damaged, not a PyTorch checkpoint; delete it" in err
    assert "not plain data" not in err and "Traceback" not in err


def test_identical_statistics_checkpoints_are_byte_identical(run, tmp_path):
    """The zip inside used to be named after the pid-stamped temporary file."""
    method = checkpoint.load_method(RunDir(run).part("thresh", "t2", 0).checkpoint())
    a = checkpoint.save(method, tmp_path / "a" / "best-main.ckpt").read_bytes()
    b = checkpoint.save(method, tmp_path / "b" / "best-main.ckpt").read_bytes()
    assert a == b
    assert torch.load(tmp_path / "a" / "best-main.ckpt", weights_only=True)["uad_method"] == \
        "thresh"


# ---------------------------------------------------------------------------- the table
def test_the_closing_table_names_one_statistic_per_column(thresh_run):
    """Pooled AUPRC used to sit beside the MEAN per-volume AUROC under one legend."""
    from benchmark.runner import SUMMARY_LEGEND, summary_legend, summary_table

    table = summary_table(thresh_run)
    pooled = pd.read_csv(thresh_run / "per_dataset.csv")
    want = pooled[(pooled["metric"] == "auroc_pooled") & (pooled["dataset"] == "Brats21")]
    got = table.loc[("thresh", "t2", "Brats21"), "auroc_pooled"]
    assert got == pytest.approx(want["value"].mean(), abs=1e-4)
    assert {c.split("[")[0] for c in table.columns} == {"auprc_pooled", "auroc_pooled",
                                                        "chance", "dice_pooled"}
    legend = summary_legend(table)
    assert len(legend) == 4 and all(line.split(":")[0] in SUMMARY_LEGEND for line in legend)
    assert "pooled" in legend[0] and "pooled" in legend[3]


def test_loading_checks_the_resampled_mask_too(tmp_path):
    """A 1 mm file: the erosion check runs on the grid the volume is scored on."""
    from test_loader import _record

    shape = (200, 190, 110)
    mask = np.zeros(shape, bool)
    mask[40:160, 95:103, 20:90] = True  # 8 mm wide at 1 mm: 4 voxels at 2 mm, eroded away
    image = np.where(mask, np.random.default_rng(0).uniform(1, 2, shape), 0)
    with pytest.raises(layout.DataLayoutError, match="empty after the scoring's erosion"):
        load_volume(_record(tmp_path, image, mask, spacing=1.0))
