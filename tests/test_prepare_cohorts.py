"""Small cohorts and cohorts of one's own: splits that ``run`` accepts, ``--name``, IXI T2."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from test_prepare import _phantom, _save

from benchmark.cli import main
from benchmark.data import layout
from benchmark.data.prepare.cohorts import COHORTS, with_set_name
from benchmark.data.prepare.output import MIN_HEALTHY, ixi_splits, val_test_split, write_splits


@pytest.mark.parametrize("n", range(1, 9))
def test_custom_splits_never_empty_where_run_would_refuse(n):
    split = val_test_split([f"s{i}" for i in range(n)], COHORTS["custom"])
    val, test = split["custom_val"], split["custom_test"]
    assert len(test) >= 1 and not set(val) & set(test) and len(val) + len(test) == n
    assert (len(val) >= 1) == (n >= 2)  # a val subject as soon as there are two
    assert len(val) == max(1, round(n * 0.25)) if n >= 2 else val == []


def test_n_val_override_and_its_limits():
    sids = [f"s{i}" for i in range(6)]
    assert len(val_test_split(sids, COHORTS["custom"], n_val=0)["custom_val"]) == 0
    assert len(val_test_split(sids, COHORTS["custom"], n_val=3)["custom_val"]) == 3
    with pytest.raises(ValueError, match="test split needs at least one"):
        val_test_split(sids, COHORTS["custom"], n_val=6)


@pytest.mark.parametrize("n, n_test", [(6, 1), (7, 2), (60, 17), (560, 158)])
def test_ixi_splits_leave_run_enough_subjects(n, n_test):
    splits = ixi_splits([f"IXI{i:03d}-HH-{i:04d}" for i in range(n)], COHORTS["ixi"])
    assert len(splits["IXI_test"]) == n_test
    pool = set().union(*(splits[f"IXI_{s}_fold{k}"] for s in ("train", "val") for k in range(5)))
    assert len(pool) == n - n_test >= layout.N_FOLDS and not pool & set(splits["IXI_test"])
    assert MIN_HEALTHY == 6


def _records(sids, seqs, cohort):
    return {s: {"files": layout.volume_paths(s, seqs, None if cohort.healthy else cohort.set_name,
                                             labelled=not cohort.healthy)} for s in sids}


def test_prepared_ixi_t2_is_readable_by_the_loader(tmp_path):
    """avail_t2.csv used to have a column "0" of T2 file names: a T2 run refused it."""
    sids = [f"IXI{i:03d}-HH-{i:04d}" for i in range(8)]
    records = _records(sids, ["t1", "t2"], COHORTS["ixi"])
    records[sids[0]]["files"].pop("t2")  # one subject without T2
    write_splits(tmp_path, COHORTS["ixi"], records, seed=3141)
    avail = pd.read_csv(tmp_path / "splits/avail_t2.csv", index_col=0)
    assert list(avail.columns) == list(layout.SPLIT_COLUMNS)
    assert sorted(avail.img_name) == sids[1:]
    t2 = layout.healthy_splits(tmp_path, "t2", 0)
    names = {r.name for part in t2.values() for r in part}
    assert names == set(sids[1:])  # the subject without T2 is left out of T2 runs
    assert all(r.image.name.endswith("_t2.nii.gz") and "/t2/" in r.image.as_posix()
               for part in t2.values() for r in part)
    t1 = layout.healthy_splits(tmp_path, "t1", 0)
    assert {r.name for part in t1.values() for r in part} == set(sids)


def test_empty_split_is_not_written_and_a_stale_one_is_removed(tmp_path):
    cohort = with_set_name(COHORTS["custom"], "Mine")
    write_splits(tmp_path, cohort, _records(["a", "b", "c"], ["t2"], cohort), seed=1)
    assert (tmp_path / "splits/Mine_val.csv").is_file()
    out = write_splits(tmp_path, cohort, _records(["a"], ["t2"], cohort), seed=1)
    assert out["Mine_val"] == [] and not (tmp_path / "splits/Mine_val.csv").exists()
    assert pd.read_csv(tmp_path / "splits/Mine_test.csv").img_name.tolist() == ["a"]


def test_set_name_rules():
    assert with_set_name(COHORTS["custom"], "MS_ljubljana-2").set_name == "MS_ljubljana-2"
    assert with_set_name(COHORTS["mslub"], "MSLUB_t1").set_name == "MSLUB_t1"
    for bad, phrase in (("IXI", "not 'IXI'"), ("my cohort", "letters"), ("x_test", "_val"),
                        ("1abc", "letters")):
        with pytest.raises(ValueError, match=phrase):
            with_set_name(COHORTS["custom"], bad)
    with pytest.raises(ValueError, match="healthy cohort"):
        with_set_name(COHORTS["ixi"], "Healthy")


@pytest.fixture(scope="module")
def own_cohorts(toy_root, tmp_path_factory):
    """Two cohorts of one's own (6 subjects and 1 subject) prepared into a copy of the toy
    data root, each under its own --name, through the command line."""
    root = tmp_path_factory.mktemp("own") / "root"
    shutil.copytree(toy_root, root)
    raw = tmp_path_factory.mktemp("own_raw")
    img, seg = _phantom()
    rng = np.random.default_rng(0)
    for i in range(7):
        group = "six" if i < 6 else "one"
        noisy = img * rng.uniform(0.9, 1.1) + rng.normal(0, 1, img.shape).astype(np.float32) * (img > 0)
        _save(raw / group / f"sub{i}/t2.nii.gz", noisy.astype(np.float32))
        _save(raw / group / f"sub{i}/seg.nii.gz", seg)
        _save(raw / "masks" / f"sub{i}_brainmask.nii.gz", (img > 0).astype(np.uint8))
    for group, name in (("six", "Mine"), ("one", "Solo")):
        assert main(["data", "prepare", "--cohort", "custom", "--name", name, "--raw",
                     str(raw / group), "--out", str(root), "--mask-dir", str(raw / "masks"),
                     "--skull-strip", "mask", "--fast", "--no-n4", "--jobs", "2"]) == 0
    return root


def test_own_cohorts_live_side_by_side(own_cohorts):
    splits = own_cohorts / "Data/splits"
    mine = pd.concat([pd.read_csv(splits / f"Mine_{s}.csv") for s in ("val", "test")])
    assert sorted(mine.img_name) == [f"sub{i}" for i in range(6)]
    assert len(pd.read_csv(splits / "Mine_val.csv")) == 2
    assert not (splits / "Solo_val.csv").exists()  # one subject: test only, no empty val
    assert pd.read_csv(splits / "Solo_test.csv").img_name.tolist() == ["sub6"]
    assert (own_cohorts / "Data/Test/Mine/t2/sub0_t2.nii.gz").is_file()
    assert (own_cohorts / "Data/.prepare/Solo/sub6.json").is_file()
    assert set(layout.unhealthy_cohorts(own_cohorts, "t2")) >= {"Mine", "Solo", "Brats21"}


def test_own_cohorts_run(own_cohorts, tmp_path):
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress",
                 "--methods", "thresh", "--data-root", str(own_cohorts), "--cohorts",
                 "Mine,Solo", "--out", str(tmp_path), "--run-id", "own"]) == 0
    rows = pd.read_csv(tmp_path / "own/per_volume.csv")
    assert set(rows.dataset) == {"Mine", "Solo"}
    sources = rows.groupby("dataset").threshold_source.agg(set)
    assert "val" in sources["Mine"]  # its val split chose a threshold
    assert "val" not in sources["Solo"] and "fpr5" in sources["Solo"]
