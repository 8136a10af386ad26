"""Nothing lost, nothing silent, nothing executed: resume, evaluate, locks, safe loading and
verified data (docs/failures.md lists the guarantees these tests check)."""
from __future__ import annotations

import json
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import checkpoint, hparams
from benchmark.cli import main
from benchmark.data import layout, manifest
from benchmark.data.loader import load_volume
from benchmark.rundir import PartClaimedError, RunDir, RunLockedError

RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--methods", "thresh",
       "--folds", "0,1"]


@pytest.fixture
def run(thresh_run, tmp_path):
    """A private copy of a finished run (conftest.py: thresh, t2, folds 0 and 1)."""
    copy = tmp_path / "runs" / "r"
    shutil.copytree(thresh_run, copy)
    return copy


def _args(run: Path, toy_root, *extra):
    return RUN + ["--data-root", str(toy_root), "--out", str(run.parent), "--run-id",
                  run.name, *extra]


# ---------------------------------------------------------------------------- resume
def test_resume_with_other_settings_is_refused_naming_the_keys(run, toy_root, capsys):
    config = (run / "config.json").read_bytes()
    assert main(_args(run, toy_root, "--resume", "--seed", "5", "--set", "thresh.nbins=64")) == 2
    err = capsys.readouterr().err
    assert "trainer.seed: recorded 3141, now 5" in err
    assert "overrides.thresh.nbins: recorded '(not set)', now 64" in err  # typed
    assert (run / "config.json").read_bytes() == config, "config.json must stay as it was"


def test_resume_may_run_other_parts_and_accepts_records_of_an_older_version(run, toy_root):
    config = json.loads((run / "config.json").read_text())
    # as a version of the suite without these settings wrote it
    del config["wait"], config["profile"]["max_val_volumes"]
    (run / "config.json").write_text(json.dumps(config))
    # another fold is part selection, not a different computation
    assert main(_args(run, toy_root, "--resume", "--folds", "1")) == 0
    assert main(_args(run, toy_root, "--resume", "--seed", "5", "--folds", "0")) == 2


def test_allowed_config_change_is_recorded(run, toy_root):
    stale = RunDir(run).part("thresh", "t2", 3).path / "last-main.ckpt"  # an unfinished part
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old settings")
    assert main(_args(run, toy_root, "--resume", "--seed", "5", "--allow-config-change")) == 0
    assert not stale.exists(), "training state from the old settings must not be resumed"
    config = json.loads((run / "config.json").read_text())
    assert config["trainer"]["seed"] == 5
    [change] = config["config_changes"]
    assert change["changed"] == {"trainer.seed": {"recorded": 3141, "now": 5}}
    assert change["parts_done_before"] == ["thresh/t2/fold0", "thresh/t2/fold1"]


def test_resume_keeps_the_earlier_environments(run, toy_root):
    first = json.loads((run / "environment.json").read_text())
    assert main(_args(run, toy_root, "--resume")) == 0
    env = json.loads((run / "environment.json").read_text())
    assert env["earlier_launches"] == [first] and env["created"] >= first["created"]


def test_every_resume_rebuilds_the_run_level_tables(run, toy_root):
    whole = pd.read_csv(run / "per_volume.csv")
    short = whole[whole["fold"] == 0]
    short.to_csv(run / "per_volume.csv", index=False)  # as a kill before collect leaves it
    (run / "timings.csv").unlink()
    assert main(_args(run, toy_root, "--resume")) == 0  # no part runs
    pd.testing.assert_frame_equal(pd.read_csv(run / "per_volume.csv"), whole)
    assert set(pd.read_csv(run / "timings.csv")["fold"]) == {0, 1}


# ---------------------------------------------------------------------------- evaluate
def _tables(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*.csv"))}


def _maps(run: Path) -> Path:
    return RunDir(run).part("thresh", "t2", 1).maps_path("Brats21", "test")


# a flipped byte this far after the member name breaks the zip's CRC, the deflate stream
# or the array header, depending on where it lands: each must be reported, not raised
@pytest.mark.parametrize("damage", ["missing", "truncated", *(f"flipped+{i}" for i in
                                                              (40, 124, 131, 180, 200))])
def test_evaluate_never_loses_rows(run, capsys, damage):
    before = _tables(run)
    maps = _maps(run)
    data = maps.read_bytes()
    if damage == "missing":
        maps.unlink()
    elif damage == "truncated":
        maps.write_bytes(data[: len(data) // 2])
    else:
        i = data.index(b"anomaly.npy") + int(damage.split("+")[1])
        maps.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(maps) in err and "Traceback" not in err
    assert _tables(run) == before, "nothing may be rewritten unless every part scores"


def test_evaluate_without_finished_parts_is_an_error(run, capsys):
    for done in run.glob("*/*/fold*/done.json"):
        done.unlink()
    assert main(["evaluate", str(run)]) == 2
    assert "no finished part" in capsys.readouterr().err


def test_evaluate_refuses_a_run_in_use(run, capsys):
    with RunDir(run).launch_lock():
        assert main(["evaluate", str(run)]) == 2
    assert f"run {run} is in use by pid" in capsys.readouterr().err


# ---------------------------------------------------------------------------- locks
def test_launch_lock_refuses_names_the_holder_and_waits(tmp_path):
    rd = RunDir(tmp_path / "r")
    got = []

    def wait_for_it() -> None:
        with rd.launch_lock(wait=True) as held:
            got.append(held)

    with rd.launch_lock():
        with pytest.raises(RunLockedError, match=r"in use by pid \d+ on .* since"), \
                rd.launch_lock():
            pass
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not got, "--wait must block while the run is held"
    waiter.join(10)
    assert got == [rd]


def test_a_part_claimed_elsewhere_is_skipped_and_reported(toy_root, tmp_path, capsys):
    out = tmp_path / "runs"
    part = RunDir(out / "r").part("thresh", "t2", 1)
    with part.claim():
        with pytest.raises(PartClaimedError), part.claim():
            pass
        assert main(RUN + ["--data-root", str(toy_root), "--out", str(out),
                           "--run-id", "r"]) == 3
    err = capsys.readouterr().err
    assert "thresh/t2/fold1" in err and "by pid" in err
    assert RunDir(out / "r").part("thresh", "t2", 0).is_done() and not part.is_done()
    assert set(pd.read_csv(out / "r" / "per_volume.csv")["fold"]) == {0}


# ---------------------------------------------------------------------------- safe loading
class _Payload:
    """What a crafted checkpoint carries: unpickling it runs os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_crafted_checkpoint_is_refused(run, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    ckpt = RunDir(run).part("thresh", "t2", 0).checkpoint()
    torch.save({"state_dict": {}, "uad_method": "thresh", "x": _Payload(marker)}, ckpt)
    assert main(["experiment", "noise-levels", str(run), "--methods", "thresh"]) == 2
    err = capsys.readouterr().err
    assert f"refusing to load checkpoint {ckpt}" in err and "--trust-checkpoints" in err
    assert not marker.exists(), "loading a checkpoint must never run code"


def test_checkpoint_names_in_run_records_stay_inside_the_part(run, tmp_path):
    part = RunDir(run).part("thresh", "t2", 0)
    outside = tmp_path / "elsewhere.ckpt"
    shutil.copy(part.checkpoint(), outside)
    for name in (str(outside), "../../../../elsewhere.ckpt"):
        done = part.done()
        part.write_json("done.json", {**done, "checkpoint": name})
        with pytest.raises(ValueError, match="outside the part"):
            part.checkpoint()


def test_harness_checkpoints_load_safely_and_old_ones_only_when_trusted(run, tmp_path):
    ckpt = RunDir(run).part("thresh", "t2", 0).checkpoint()
    plain = torch.load(ckpt, weights_only=True)  # what checkpoint.save writes
    assert plain["uad_method"] == "thresh"
    method = checkpoint.load_method(ckpt)
    assert int(method.n_voxels) > 0
    old = tmp_path / "old.ckpt"  # as saved before: hparams with a non-plain value
    torch.save({**plain, "hyper_parameters": {"nbins": 256, "where": Path("/x")},
                "uad_method": "thresh"}, old)
    with pytest.raises(checkpoint.UnsafeCheckpointError, match="refusing to load"):
        checkpoint.load_weights(method, old)
    checkpoint.load_weights(method, old, trust=True)
    with pytest.raises(TypeError, match="'where'"):
        hparams.plain_hparams({"where": object()})
    assert hparams.plain_hparams({"p": Path("/x"), "t": (1, 2)}) == {"p": "/x", "t": (1, 2)}


def test_lightning_hyperparameters_are_stored_as_plain_values(tmp_path):
    from lightning.fabric.utilities.data import AttributeDict

    from benchmark.registry import get_method

    method = get_method("ae").from_profile("smoke")
    saved = {"hyper_parameters": AttributeDict(latent_dim=16, path=Path("/x")),
             "hparams_type": AttributeDict}
    method.on_save_checkpoint(saved)
    assert type(saved["hyper_parameters"]) is dict and saved["hyper_parameters"]["path"] == "/x"
    assert "hparams_type" not in saved and saved["uad_method"] == "ae"
    torch.save(saved, tmp_path / "c.ckpt")
    assert torch.load(tmp_path / "c.ckpt", weights_only=True)["hyper_parameters"]["latent_dim"] == 16


# ---------------------------------------------------------------------------- verified data
@pytest.fixture
def synth_copy(synth_root, tmp_path):
    copy = tmp_path / "synth"
    shutil.copytree(synth_root, copy)
    manifest.clear_cache()
    yield copy
    manifest.clear_cache()


def _flip(path: Path, offset: int = 100) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:])


def test_data_verify_checks_the_synthetic_set(synth_copy, capsys):
    assert main(["data", "verify", str(synth_copy)]) == 0
    assert "synthetic data" in capsys.readouterr().out
    rec = layout.unhealthy_split(synth_copy, "MSLUB", "test")[0]
    _flip(rec.seg)
    assert main(["data", "verify", str(synth_copy)]) == 1
    out = capsys.readouterr().out
    assert f"changed: {rec.seg.relative_to(synth_copy).as_posix()}" in out and "FAILED" in out


def test_a_flipped_byte_in_synthetic_data_stops_the_run(synth_copy, tmp_path, capsys):
    rec = layout.unhealthy_split(synth_copy, "Brats21", "test")[0]
    _flip(rec.image, offset=len(rec.image.read_bytes()) // 2)
    out = tmp_path / "runs"
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--methods",
                 "thresh", "--data-root", str(synth_copy), "--out", str(out), "--run-id",
                 "r"]) == 2
    err = capsys.readouterr().err
    assert str(rec.image) in err and "does not match its sha256" in err
    assert "data synth --force" in err and not (out / "r").exists()
    with pytest.raises(layout.DataLayoutError, match="sha256"):  # and at read time too
        load_volume(rec)


def test_prepared_manifests_are_checked_the_same_way(toy_root, tmp_path, capsys):
    from benchmark.data.prepare.output import write_manifest

    root = tmp_path / "prepared"
    shutil.copytree(toy_root, root)
    write_manifest(root / "Data", {"generator": "test"})
    manifest.clear_cache()
    assert main(["data", "verify", str(root)]) == 0
    rec = layout.unhealthy_split(root, "Brats21", "test")[0]
    _flip(rec.mask, offset=len(rec.mask.read_bytes()) - 10)
    assert main(["data", "verify", str(root)]) == 1
    assert "prepared data" in capsys.readouterr().out
    with pytest.raises(layout.DataLayoutError, match="does not match its sha256"):
        load_volume(rec)
    manifest.clear_cache()


def test_label_rule_reads_values_as_declared():
    rule = layout.LabelRule(lesion=(1.0,), background=(0.0, 2.0), source="labels.json")
    values = np.array([0, 1, 2, 1], np.float32)
    assert rule.lesion_mask(values).tolist() == [False, True, False, True]  # WMH: 2 = other
    with pytest.raises(layout.DataLayoutError, match="values 4"):
        rule.check(np.array([0, 4], np.float32), Path("seg.nii.gz"))
    assert layout.LabelRule(nonzero=True).lesion_mask(np.array([0, 0.3])).tolist() == [False, True]
    with pytest.raises(layout.DataLayoutError, match="values 0.5"):
        layout.DEFAULT_LABELS.check(np.array([0, 0.5, 1]), Path("seg.nii.gz"))
    pickle.dumps(layout.DEFAULT_LABELS)  # records stay picklable (DataLoader workers)
