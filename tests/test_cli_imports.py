"""The command line answers at once: a command's parser imports nothing heavy.

Measured as what a fresh interpreter has imported after parsing (never as a time): the
top-level help, ``list``, ``status`` and ``run --help`` load no third-party package (but
filelock);
every other command's ``--help`` loads no torch, Lightning, methods or the scientific
stack a command only needs when it runs (pandas and numpy are allowed there).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import COMMANDS, DATA_COMMANDS, experiment_commands

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "methods", "scipy", "matplotlib", "sklearn", "mlxtend",
         "monai", "torchio", "nibabel", "submitit")
THIRD_PARTY = (*HEAVY, "numpy", "pandas", "SimpleITK")  # filelock (a few ms) is allowed
PROBE = """
import contextlib, io, json, sys
from benchmark.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split('.')[0] for m in sys.modules})}))
"""


def _imported(*args: str, env: dict | None = None) -> set[str]:
    """Top-level modules a fresh ``python -m benchmark ARGS`` has imported when it returns."""
    import os

    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True,
                          text=True, check=False, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), (args, done.stderr)
    return set(result["modules"])


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["list", "--help"],
                                  ["status", "--help"], ["data", "--help"],
                                  ["experiment", "--help"], ["list"]],
                         ids=lambda a: " ".join(a))
def test_the_light_commands_import_no_third_party_package(args):
    assert not _imported(*args) & set(THIRD_PARTY), args


@pytest.mark.parametrize("args", [[c.name, "--help"] for c in COMMANDS]
                         + [["data", c.name, "--help"] for c in DATA_COMMANDS]
                         + [["experiment", c.name, "--help"] for c in experiment_commands()],
                         ids=lambda a: " ".join(a))
def test_every_command_help_imports_nothing_heavy(args):
    # the synthetic generator's package holds its sizes and flags next to the generator,
    # which imports scipy.ndimage: `data synth --help` measured 0.27 CPU-s all the same
    allowed = {"scipy"} if args[:2] == ["data", "synth"] else set()
    heavy = _imported(*args) & set(HEAVY) - allowed
    assert not heavy, (args, sorted(heavy))


def test_status_of_a_finished_run_imports_no_torch(thresh_run):
    assert not _imported("status", str(thresh_run)) & set(THIRD_PARTY)


def test_list_touches_no_network_and_no_cache(tmp_path):
    """Nothing is built: no weights are looked up, so nothing can be downloaded or cached."""
    home = tmp_path / "torch-home"
    modules = _imported("list", env={"TORCH_HOME": str(home), "UAD_BENCH_WEIGHTS_DIR": ""})
    assert "torch" not in modules and not home.exists()


def test_each_module_of_the_lazy_prepare_package_imports_first():
    """benchmark.data.prepare resolves its names on use (module __getattr__); a submodule
    imported before anything else (`from benchmark.data.prepare import steps` inside it)
    must get that submodule, not a circular import of the pipeline."""
    import pkgutil

    from benchmark.data import prepare

    for info in pkgutil.iter_modules(prepare.__path__):
        done = subprocess.run([sys.executable, "-c", f"import {prepare.__name__}.{info.name}"],
                              cwd=REPO, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (info.name, done.stderr[-1500:])
