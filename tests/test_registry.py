"""The registry: names, errors, and methods from other installed packages (entry points)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark import registry
from benchmark.method import AnomalyMethod
from benchmark.registry import UnknownMethodError, get_method, list_methods, register_method

REPO = Path(__file__).resolve().parents[1]


def test_builtin_methods_are_registered():
    names = list_methods()
    assert {"thresh", "ae"} <= set(names)
    assert names == sorted(names)
    assert get_method("ae").name == "ae"


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(UnknownMethodError) as err:
        get_method("cdpm")
    assert "unknown method 'cdpm'" in str(err.value)
    assert "ae" in str(err.value) and "thresh" in str(err.value)


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        @register_method("ae")
        class Another(AnomalyMethod):
            family = "reconstruction"


def test_bad_names_are_rejected():
    for bad in ("", "My-Method", "CDDPM"):
        with pytest.raises(ValueError):
            register_method(bad)


def test_method_list_parsing():
    assert registry.parse_method_list(" thresh, ae ") == ["thresh", "ae"]
    with pytest.raises(ValueError, match="twice"):
        registry.parse_method_list("ae,ae")
    with pytest.raises(UnknownMethodError):
        registry.parse_method_list("ae,nope")


PLUGIN = '''
import torch
from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

@register_method("theirs")
class Theirs(AnomalyMethod):
    family = "statistical"
    paper = "a third-party package"
    requires_training = False
    def __init__(self, *, gain: float = 1.0):
        super().__init__()
        self.save_hyperparameters()
    def anomaly(self, x):
        return AnomalyOutput(anomaly_map=x * self.hparams.gain)
'''


@pytest.fixture
def plugin_site(tmp_path):
    """An installed-looking package with a dist-info entry point, as pip would leave it."""
    (tmp_path / "their_pkg").mkdir()
    (tmp_path / "their_pkg" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "their_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[uad_bench.methods]\ntheirs = their_pkg\n")
    return tmp_path


def test_entry_point_plugin_is_discovered_and_runs(plugin_site, toy_root, tmp_path):
    env_path = f"{plugin_site}:{REPO}"
    listing = subprocess.run(
        [sys.executable, "-m", "benchmark", "list", "--profile", "smoke"], capture_output=True,
        text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, cwd=tmp_path, check=False)
    assert listing.returncode == 0, listing.stderr
    assert "theirs" in listing.stdout and "a third-party package" in listing.stdout
    run = subprocess.run(
        [sys.executable, "-m", "benchmark", "run", "--methods", "theirs,thresh", "--profile",
         "smoke", "--data-root", str(toy_root), "--out", str(tmp_path / "runs"), "--run-id",
         "p", "--sequences", "t2", "--no-progress", "--set", "theirs.gain=2"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "UAD_BENCH_CPU_SLOTS": "off"})
    assert run.returncode == 0, run.stderr
    import pandas as pd

    rows = pd.read_csv(tmp_path / "runs" / "p" / "per_volume.csv")
    assert set(rows["method"]) == {"theirs", "thresh"}
    # the plug-in's map is the (doubled) intensity: the toy lesions are hyperintense on T2
    theirs = rows[(rows.method == "theirs") & (rows.dataset == "Brats21")]
    prevalence = (theirs["lesion_voxels"] / (96 * 96 * 50)).max()
    assert theirs["volume"].nunique() == 2 and (theirs["auprc"] > 10 * prevalence).all()
    assert rows.loc[rows.method == "theirs", "profile"].eq("smoke").all()
