"""Shared fixtures: a tiny data set in the authors' layout, written once per session."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
# runs in tests do not claim this machine's cores (benchmark.cpu): a test must not wait for
# another job on the machine; tests/test_cpu.py tests the claim itself
os.environ.setdefault("UAD_BENCH_CPU_SLOTS", "off")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    from benchmark.data.toy import write_toy_dataset

    return write_toy_dataset(tmp_path_factory.mktemp("toy"), n_healthy=12, n_test=2)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """The synthetic default at smoke size, generated once per session (read-only: copy it
    before changing anything)."""
    from benchmark.data import synth

    # two workers: exercises the process pool path the real generation takes
    return synth.ensure_synthetic("smoke", root=tmp_path_factory.mktemp("synth") / "smoke",
                                  seed=0, progress=False, workers=2)


@pytest.fixture(scope="session")
def thresh_run(toy_root, tmp_path_factory):
    """A finished smoke run on the toy data: thresh (statistics only, no training), t2, folds
    0 and 1 (two parts). Read-only: copy it before changing anything."""
    from benchmark.cli import main

    out = tmp_path_factory.mktemp("thresh-run")
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress", "--methods",
                 "thresh", "--folds", "0,1", "--data-root", str(toy_root), "--out", str(out),
                 "--run-id", "r"]) == 0
    return out / "r"


SMOKE_RUN = ["run", "--profile", "smoke", "--sequences", "t2", "--no-progress"]


@pytest.fixture(scope="session")
def smoke_run(toy_root, tmp_path_factory):
    """thresh and ae, smoke profile, T2, in process: the reference other launchers match."""
    from benchmark.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(SMOKE_RUN + ["--methods", "thresh,ae", "--data-root", str(toy_root), "--out",
                             str(out), "--run-id", "r"]) == 0
    return out / "r"


REPO = Path(__file__).resolve().parents[1]


def write_run_config(run_dir: Path, data_root: Path | str = "/nonexistent", **settings) -> Path:
    """A run's config.json as `benchmark run` writes it (smoke profile, method "m", T2;
    ``settings`` replace any field of benchmark.runconfig.RunConfig)."""
    import json

    from benchmark.profiles import PROFILES
    from benchmark.runconfig import RunConfig

    settings.setdefault("profile", PROFILES["smoke"])
    cfg = RunConfig(methods=settings.pop("methods", ["m"]), data_root=Path(data_root),
                    run_dir=Path(run_dir), sequences=settings.pop("sequences", ["t2"]),
                    **settings)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "config.json").write_text(json.dumps(cfg.to_json()))
    return Path(run_dir) / "config.json"


@pytest.fixture(scope="session")
def load_script():
    """Import a script that is not part of a package (e.g. the reference board's
    diagnostics) from its path relative to the repository root."""
    def load(relpath: str, name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / relpath)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
