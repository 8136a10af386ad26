"""The typed run configuration: config.json written and read back, typed overrides, the
one mapping to the data configuration, and the committed boards' records of earlier
versions (they load, and resume without reporting a change)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.cli import build_parser
from benchmark.data.options import DataOptions
from benchmark.profiles import PROFILES
from benchmark.runconfig import CurveOptions, RunConfig, TrainerOptions, config_changes
from benchmark.rundir import RunDir
from benchmark.runner import write_records

REPO = Path(__file__).resolve().parents[1]
BOARD_RUNS = sorted(REPO.glob("leaderboard/*/runs/*/config.json"))
RECORDS = sorted(REPO.glob("leaderboard/*/run-records/*/config.json"))


def _config(tmp_path: Path, **kw) -> RunConfig:
    values = {"methods": ["cddpm", "ae"], "profile": PROFILES["reference"],
              "data_root": tmp_path / "data", "run_dir": tmp_path / "run"}
    values.update(kw)
    return RunConfig(**values)


def test_config_json_round_trips_every_setting(tmp_path):
    cfg = _config(tmp_path, sequences=["t1"], folds=[2, 0], cohorts=["WMH"],
                  overrides={"cddpm": {"pretrain": False, "cond_dim": 32},
                             "ae": {"channels": [8, 16]}},
                  trainer=TrainerOptions(epochs={"main": 3, "pretrain": 1}, seed=7,
                                         precision="bf16-mixed", progress=False),
                  fold_scheme="reference", augment=False, num_workers=2,
                  data_options=DataOptions(smoothing="curvature_flow", drop_last=True),
                  map_dtype="float16", resume=True, data_source="synthetic-quick-v2",
                  curves=CurveOptions(every_n_epochs=5, volumes=3), wait=True,
                  warnings=["odd"], config_changes=[{"at": "then"}])
    text = json.dumps(cfg.to_json())
    back = RunConfig.from_json(json.loads(text))
    assert back.to_json() == cfg.to_json()
    assert replace(back, overrides={}) == replace(cfg, overrides={})
    assert back.overrides["ae"]["channels"] == [8, 16]  # JSON has lists, not tuples
    assert back.profile == PROFILES["reference"] and back.trainer.epochs == {"main": 3,
                                                                           "pretrain": 1}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(text)
    assert RunConfig.read(tmp_path / "run").to_json() == cfg.to_json()


def test_set_values_are_recorded_as_their_types(tmp_path, toy_root):
    """`--set cddpm.pretrain=false` is recorded as the bool false, 32 as an int."""
    args = build_parser().parse_args([
        "run", "--methods", "cddpm", "--profile", "smoke", "--data-root", str(toy_root),
        "--out", str(tmp_path), "--run-id", "r", "--set", "cddpm.pretrain=false",
        "--set", "cddpm.cond_dim=32"])
    from benchmark.cli.run import run_config

    cfg = run_config(args)
    assert cfg.overrides == {"cddpm": {"pretrain": False, "cond_dim": 32}}
    run = RunDir(cfg.run_dir)
    write_records(cfg, run, ["a warning"])
    written = json.loads(run.config_path.read_text())
    assert written["overrides"] == {"cddpm": {"pretrain": False, "cond_dim": 32}}
    assert written["warnings"] == ["a warning"]
    # resolved once: the method's keyword arguments come from the configuration
    assert cfg.hparams("cddpm")["pretrain"] is False
    assert cfg.hparams("cddpm")["encoder"] == "resnet10"  # the smoke profile's


def test_a_bad_override_is_kept_as_given_for_the_checks_to_report(tmp_path):
    cfg = _config(tmp_path, overrides={"cddpm": {"cond_dim": "many"}, "nope": {"x": "1"}})
    typed = cfg.typed()
    assert typed.overrides == cfg.overrides
    assert any("cond_dim" in p for p in typed.hparam_problems("cddpm"))
    with pytest.raises(ValueError, match="cond_dim"):
        typed.hparams("cddpm")


def test_data_config_is_the_one_mapping_from_a_run(tmp_path):
    smoke = PROFILES["smoke"]
    cfg = _config(tmp_path, profile=smoke, cohorts=["Brats21"], fold_scheme="reference",
                  data_options=DataOptions(drop_last=True), augment=False, num_workers=3)
    data = cfg.data_config("t2", 1)
    assert (data.root, data.sequence, data.fold, data.fold_scheme) == (
        tmp_path / "data", "t2", 1, "reference")
    assert (data.batch_size, data.repeats, data.val_slices) == (
        smoke.batch_size, smoke.repeats, smoke.val_slices)
    assert (data.max_train_volumes, data.max_test_volumes, data.max_val_volumes) == (
        smoke.max_train_volumes, smoke.max_test_volumes, smoke.max_val_volumes)
    assert data.slice_step == smoke.slice_step == 2
    assert (data.cohorts, data.options.drop_last, data.augment, data.num_workers) == (
        ["Brats21"], True, False, 3)
    # a run directory rebuilds the same from its config.json
    cfg.run_dir.mkdir()
    cfg.run_dir.joinpath("config.json").write_text(json.dumps(cfg.to_json()))
    assert RunDir(cfg.run_dir).data_config("t2", 1) == data


def test_an_unknown_or_missing_setting_is_an_error_naming_the_file(tmp_path):
    good = _config(tmp_path).to_json()
    with pytest.raises(ValueError, match=r"x\.json: unknown setting\(s\) \['colour'\]"):
        RunConfig.from_json({**good, "colour": "red"}, "x.json")
    with pytest.raises(ValueError, match=r"x\.json: unknown profile setting"):
        RunConfig.from_json({**good, "profile": {**good["profile"], "speed": 1}}, "x.json")
    missing = {k: v for k, v in good.items() if k != "data_root"}
    with pytest.raises(ValueError, match="x.json: no data_root"):
        RunConfig.from_json(missing, "x.json")


@pytest.mark.parametrize("path", BOARD_RUNS + RECORDS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_committed_run_record_loads(path):
    cfg = RunConfig.read(path)
    assert cfg.methods and cfg.profile.name in PROFILES
    assert RunConfig.from_json(json.loads(json.dumps(cfg.to_json()))).to_json() == cfg.to_json()


def _resume_argv(cfg: RunConfig, out: Path) -> list[str]:
    """The `run --resume` command line that continues a run recorded as ``cfg``."""
    if cfg.data_source == "user":  # a --data-root run (the anatomy swap's generated data)
        data = ["--data-root", str(cfg.data_root)]
    else:
        version = cfg.data_source.rsplit("-v", 1)[1] if "-v" in cfg.data_source else "1"
        data = ["--synthetic-version", version]
    argv = ["run", "--methods", ",".join(cfg.methods), "--sequences", ",".join(cfg.sequences),
            "--profile", cfg.profile.name, *data, "--out", str(out),
            "--run-id", cfg.run_dir.name, "--no-progress", "--resume"]
    if cfg.folds is not None:
        argv += ["--folds", ",".join(map(str, cfg.folds))]
    epochs = cfg.trainer.epochs  # --epochs N, or STAGE=N,... (the scale runs: 300)
    if epochs is not None:
        argv += ["--epochs", str(epochs) if isinstance(epochs, int)
                 else ",".join(f"{k}={v}" for k, v in epochs.items())]
    for method, values in cfg.overrides.items():
        argv += [a for k, v in values.items() for a in ("--set", f"{method}.{k}={v}")]
    return argv


@pytest.mark.parametrize("path", BOARD_RUNS, ids=lambda p: str(p.parent.relative_to(REPO)))
def test_a_committed_board_resumes_without_a_config_change(path, tmp_path, monkeypatch):
    """A copy of a committed run, continued as its reproduce.sh does: no setting differs
    (the SSL ablation recorded `"pretrain": "false"`, the string typed; now a bool), and the
    records written on resuming hold the typed values and no change."""
    recorded = RunConfig.read(path)
    copy = tmp_path / path.parent.name
    shutil.copytree(path.parent, copy)
    from benchmark.cli.run import run_config
    from benchmark.data import synth

    # the synthetic default where the run found it (not generated here)
    monkeypatch.setattr(synth, "ensure_synthetic", lambda **kw: recorded.data_root)
    if recorded.data_source == "user":  # its data root lives on the machine that ran it
        from benchmark.cli import run as run_cli

        monkeypatch.setattr(run_cli, "_resolve_data_root",
                            lambda args, profile: (args.data_root, "user"))
    cfg = run_config(build_parser().parse_args(_resume_argv(recorded, tmp_path)))
    assert cfg.data_source == recorded.data_source
    assert config_changes(RunDir(copy).run_config(), cfg) == {}
    write_records(cfg, RunDir(copy), [])
    again = RunDir(copy).run_config()
    assert again.config_changes == recorded.config_changes
    assert again.overrides == cfg.overrides
    if recorded.overrides.get("cddpm", {}).get("pretrain") == "false":
        assert again.overrides["cddpm"]["pretrain"] is False


def test_a_real_change_on_resume_is_still_reported(tmp_path):
    recorded = _config(tmp_path, overrides={"cddpm": {"pretrain": "false"}})
    now = replace(recorded, overrides={"cddpm": {"pretrain": True}})
    assert config_changes(recorded, now) == {"overrides.cddpm.pretrain": (False, True)}
    assert config_changes(recorded, replace(recorded, augment=False)) == {
        "augment": (True, False)}
    assert config_changes(recorded, replace(recorded, resume=True, folds=[1])) == {}
