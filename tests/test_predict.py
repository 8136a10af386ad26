"""`benchmark predict` and `export`: maps back on the scan's own grid, bundles that reproduce
their part bit for bit and hold no pickle.

One smoke run (thresh + ae, T1) on the synthetic smoke data serves every test; scans are
synthetic subjects re-sampled onto oblique, anisotropic grids, some with a planted bright
lesion of known position (thresh flags bright voxels, so it must land there). Preparation
runs with --fast (coarse registration, short N4), as prepare's own tests do.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from benchmark.cli import main

FAST = ["--fast", "--device", "cpu"]


@pytest.fixture(scope="module")
def t1_run(synth_root, tmp_path_factory):
    """thresh and ae, smoke profile, T1, on the synthetic smoke data (read-only)."""
    out = tmp_path_factory.mktemp("predict-run")
    assert main(["run", "--profile", "smoke", "--sequences", "t1", "--no-progress",
                 "--methods", "thresh,ae", "--data-root", str(synth_root), "--out", str(out),
                 "--run-id", "r"]) == 0
    return out / "r"


def _rotation(degrees_z: float, degrees_x: float) -> np.ndarray:
    a, b = np.deg2rad(degrees_z), np.deg2rad(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def oblique_scan(source: Path, path: Path, lesion_mm: np.ndarray | None = None,
                 radius_mm: float = 10.0) -> tuple[nib.Nifti1Image, np.ndarray | None]:
    """A synthetic subject (2 mm, RAS) re-sampled onto a grid rotated 14 deg about z and
    9 deg about x with 1.4 x 1.1 x 2.6 mm voxels; a bright sphere at ``lesion_mm`` (world
    mm) when given. Returns the image and the planted sphere (bool, the new grid)."""
    src = nib.load(source)
    data = np.asarray(src.dataobj, dtype=np.float32)
    centre = (src.affine @ np.r_[(np.array(data.shape) - 1) / 2, 1])[:3]
    spacing = np.array([1.4, 1.1, 2.6])
    shape = np.ceil(np.array([200.0, 210.0, 120.0]) / spacing).astype(int)
    linear = _rotation(14, 9) @ np.diag(spacing)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = centre - linear @ ((shape - 1) / 2)
    grid = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:4]
    vox = np.linalg.inv(src.affine)[:3, :3] @ world + np.linalg.inv(src.affine)[:3, 3:4]
    image = ndimage.map_coordinates(data, vox, order=1, cval=0.0).reshape(shape)
    sphere = None
    if lesion_mm is not None:
        sphere = ball(affine, shape, lesion_mm, radius_mm) & (image > 0)
        image[sphere] = 1.6 * np.percentile(image[image > 0], 99)
    out = nib.Nifti1Image(image.astype(np.float32), affine)
    nib.save(out, path)
    # its brain mask on the same grid (the synthetic image is zero outside the brain)
    brain = nib.Nifti1Image((image > 0).astype(np.uint8), affine)
    nib.save(brain, str(path).replace(".nii.gz", "_brain.nii.gz"))
    return nib.load(path), sphere


def ball(affine: np.ndarray, shape, centre_mm, radius_mm: float) -> np.ndarray:
    """The voxels of a grid whose centres lie within ``radius_mm`` of ``centre_mm``."""
    grid = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:4]
    return (np.linalg.norm(world - np.asarray(centre_mm)[:, None], axis=0)
            < radius_mm).reshape(shape)


def _subject(synth_root: Path, name: str = "t1") -> Path:
    return min((Path(synth_root) / "Data" / "Train" / "ixi" / name).glob("*.nii.gz"))


def _brain_centre_mm(path: Path) -> np.ndarray:
    img = nib.load(path)
    inside = np.argwhere(np.asarray(img.dataobj) > 0)
    return (img.affine @ np.r_[inside.mean(axis=0), 1])[:3]


def test_planted_lesion_comes_back_where_it_was_planted(t1_run, synth_root, tmp_path):
    source = _subject(synth_root)
    centre_mm = _brain_centre_mm(source)
    lesion_mm = centre_mm + np.array([22.0, 12.0, 10.0])  # right frontal white matter
    scan, sphere = oblique_scan(source, tmp_path / "oblique.nii.gz", lesion_mm)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(t1_run / "thresh/t1/fold0"), "--input",
                 str(tmp_path / "oblique.nii.gz"), "--mask", str(tmp_path / "oblique_brain.nii.gz"),
                 "--out", str(out), "--threshold", "fpr1", *FAST]) == 0
    amap, lesions = nib.load(out / "oblique_anomaly.nii.gz"), nib.load(out / "oblique_lesions.nii.gz")
    for result in (amap, lesions):  # the input's grid, exactly
        assert result.shape == scan.shape
        assert np.array_equal(result.affine, scan.affine)
    a, found = amap.get_fdata(), lesions.get_fdata() > 0
    scored = (a > 0) & ~ndimage.binary_dilation(sphere, iterations=3)
    # the map is highest where the lesion was planted ...
    assert np.median(a[sphere]) > np.percentile(a[scored], 99)
    # ... the mask finds most of it, and not its healthy mirror image in the other hemisphere
    mirror_mm = lesion_mm * [-1, 1, 1] + [2 * centre_mm[0], 0, 0]
    assert found[sphere].mean() > 0.5
    assert found[ball(scan.affine, scan.shape, mirror_mm, 10.0)].mean() < 0.1
    # ... and what it finds there is centred on the planted position (no shift, no flip)
    blob = np.argwhere(found & ball(scan.affine, scan.shape, lesion_mm, 20.0))
    centroid = scan.affine[:3, :3] @ blob.mean(axis=0) + scan.affine[:3, 3]
    assert np.linalg.norm(centroid - lesion_mm) < 3.0
    record = json.loads((out / "oblique.json").read_text())
    assert record["threshold"]["source"] == "fpr1"
    assert record["model"]["method"] == "thresh" and record["preparation"]["kind"] == "synthetic"
    assert record["preparation"]["prepare_record"]["skull_strip"] == "mask"  # --mask used
    meta = json.loads(lesions.header.extensions[0].get_content())["uad_bench"]
    assert meta["threshold"]["source"] == "fpr1" and meta["model"] == "thresh/t1/fold0"
    assert b"fpr1=" in lesions.header["descrip"].tobytes()
    assert (out / "oblique_overlay.png").stat().st_size > 10_000


def test_export_then_predict_from_bundle_is_bit_identical(t1_run, synth_root, tmp_path):
    bundle = tmp_path / "bundle"
    assert main(["export", str(t1_run / "ae/t1/fold0"), "--out", str(bundle)]) == 0
    assert sorted(p.name for p in bundle.iterdir()) == ["README.md", "bundle.json",
                                                        "model.safetensors"]
    oblique_scan(_subject(synth_root), tmp_path / "scan.nii.gz")
    for model, out in ((t1_run / "ae/t1/fold0", "from-run"), (bundle, "from-bundle")):
        assert main(["predict", "--model", str(model), "--input", str(tmp_path / "scan.nii.gz"),
                     "--out", str(tmp_path / out), *FAST]) == 0
    for kind in ("anomaly", "lesions"):
        run_map = nib.load(tmp_path / f"from-run/scan_{kind}.nii.gz").get_fdata()
        bundle_map = nib.load(tmp_path / f"from-bundle/scan_{kind}.nii.gz").get_fdata()
        assert np.array_equal(run_map, bundle_map)
    assert nib.load(tmp_path / "from-run/scan_anomaly.nii.gz").get_fdata().max() > 0
    record = json.loads((tmp_path / "from-bundle/scan.json").read_text())
    assert record["preparation"]["prepare_record"]["skull_strip"] == "nonzero"  # no --mask
    card = (bundle / "README.md").read_text()
    doc = json.loads((bundle / "bundle.json").read_text())
    auprc = next(r["value"] for r in doc["results"] if r["metric"] == "auprc_pooled")
    assert f"{100 * auprc:.2f}" in card and "## Limits" in card
    assert doc["training_data"]["fold"] == 0 and doc["training_data"]["manifest"]["sha256"]


def test_bundle_holds_no_pickle_and_loads_without_unpickling(t1_run, tmp_path, monkeypatch):
    from benchmark.checkpoint import load_method
    from benchmark.deploy.bundle import export_part, load_bundle

    bundle = export_part(t1_run / "ae/t1/fold0", tmp_path / "bundle")
    for path in bundle.iterdir():  # neither torch.save's zip nor a raw pickle stream
        head = path.read_bytes()[:2]
        assert head != b"PK" and head[:1] != b"\x80", path.name

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle must load without unpickling")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    model = load_bundle(bundle)
    monkeypatch.undo()
    original = load_method(t1_run / "ae/t1/fold0" / "best-main.ckpt")
    for (key, a), (_, b) in zip(sorted(model.method.state_dict().items()),
                                sorted(original.state_dict().items())):
        assert torch.equal(a, b), key
    try:  # torch >= 2.13 reads safetensors itself, with its unsafe loader disabled
        plain = torch.load(bundle / "model.safetensors", weights_only=True)
    except Exception:  # noqa: BLE001 - an older torch: no reader, and nothing was run
        plain = None
    if plain is not None:
        assert sorted(plain) == sorted(original.state_dict())


def test_evaluate_bundle_reproduces_its_part(t1_run, synth_root, tmp_path):
    import pandas as pd

    bundle = tmp_path / "bundle"
    assert main(["export", str(t1_run / "thresh/t1/fold0"), "--out", str(bundle)]) == 0
    assert main(["evaluate", str(bundle), "--data-root", str(synth_root), "--profile", "smoke",
                 "--out", str(tmp_path / "runs"), "--run-id", "e"]) == 0
    ours = pd.read_csv(tmp_path / "runs/e/thresh/t1/fold0/per_volume.csv")
    theirs = pd.read_csv(t1_run / "thresh/t1/fold0/per_volume.csv")
    cols = ["dataset", "volume", "threshold_source", "auprc", "dice", "threshold"]
    pd.testing.assert_frame_equal(ours[cols], theirs[cols])


def test_clear_errors(t1_run, tmp_path, capsys):
    scan = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), scan)
    unfinished = tmp_path / "run"
    shutil.copytree(t1_run, unfinished)
    (unfinished / "ae/t1/fold0/done.json").unlink()
    cases = [
        (["--model", str(t1_run / "ae/t1/fold0"), "--input", str(tmp_path / "missing.nii.gz")],
         "input not found"),
        (["--model", str(unfinished / "ae/t1/fold0"), "--input", str(scan)],
         "not a finished part"),
        (["--model", str(tmp_path), "--input", str(scan)], "neither a model bundle"),
        (["--model", str(t1_run / "ae/t1/fold0"), "--input", str(scan)], "is 2D, need 3D"),
        (["--model", str(t1_run / "ae/t1/fold0"), "--input", str(scan), "--threshold", "val"],
         "expected one of the model's healthy-data thresholds"),
    ]
    for args, phrase in cases:
        assert main(["predict", *args, "--out", str(tmp_path / "o"), *FAST]) == 2
        err = capsys.readouterr().err
        assert phrase in err, (args, err)


PLUGIN = '''
from torch import nn

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method


@register_method("plugdemo")
class PlugDemo(AnomalyMethod):
    family = "reconstruction"
    paper = "a plug-in of the tests"

    def __init__(self, *, width: int = 4, scales: tuple[float, ...] = (1.0, 2.0)):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.Conv2d(width, 1, 1))

    def training_losses(self, batch):
        return {"loss": (self.net(batch["image"]) - batch["image"]).abs().mean()}

    def anomaly(self, x):
        return AnomalyOutput(anomaly_map=(x - self.net(x)).abs())
'''


def _plugin_model(method):
    """A TrainedModel of an untrained method, with the records a bundle needs."""
    from benchmark.deploy.model import TrainedModel
    from benchmark.deploy.recipe import Preparation

    identity = {"method": method.name, "sequence": "t2", "fold": 0, "tags": {},
                "hparams": dict(method.hparams), "family": method.family,
                "paper": method.paper, "n_params": method.n_params(), "run_id": "r",
                "part": f"{method.name}/t2/fold0", "profile": "smoke", "git_commit": None,
                "source": "memory"}
    training = {"cohort": "IXI", "sequence": "t2", "fold": 0, "fold_scheme": "disjoint",
                "data_source": "synthetic-smoke", "n_train": 1, "n_val": 1,
                "train_subjects_sha256": "0", "manifest": None}
    return TrainedModel(method, identity, Preparation("synthetic", "t2", {}),
                        {"postprocess": "none"}, {"fpr5": 0.5}, training)


def test_plugin_method_bundle_loads_through_its_entry_point(tmp_path, monkeypatch):
    import sys

    from benchmark import registry
    from benchmark.deploy.bundle import load_bundle, write_bundle

    site = tmp_path / "site"
    (site / "uadb_plugin_demo").mkdir(parents=True)
    (site / "uadb_plugin_demo" / "__init__.py").write_text(PLUGIN)
    dist = site / "uadb_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: uadb-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[uad_bench.methods]\nplugdemo = uadb_plugin_demo\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # forgotten after
    monkeypatch.setattr(registry, "_discovered", False)
    try:
        method = registry.get_method("plugdemo")(width=3, scales=(1.0, 3.0))
        torch.manual_seed(0)
        for p in method.parameters():
            torch.nn.init.normal_(p)
        write_bundle(_plugin_model(method), tmp_path / "bundle")
        # as in a fresh process: neither the module nor the name is known before loading
        del registry._REGISTRY["plugdemo"], sys.modules["uadb_plugin_demo"]
        registry._discovered = False
        loaded = load_bundle(tmp_path / "bundle").method
    finally:
        sys.modules.pop("uadb_plugin_demo", None)
    assert type(loaded) is not type(method) and type(loaded).__name__ == "PlugDemo"
    assert loaded.hparams["width"] == 3 and loaded.hparams["scales"] == (1.0, 3.0)
    for (key, a), (_, b) in zip(sorted(loaded.state_dict().items()),
                                sorted(method.state_dict().items())):
        assert torch.equal(a, b), key


def test_prepare_settings_round_trip_through_a_record():
    from benchmark.data.prepare.subject import PrepareSettings

    settings = PrepareSettings.fast(("t1",), skull_strip="mask", n4=False)
    again = PrepareSettings.from_record(json.loads(json.dumps(settings.to_record())))
    assert again == settings and again.fingerprint() == settings.fingerprint()


def _prepared_root(root: Path, records: dict[str, dict]) -> Path:
    """A data root as `data prepare` leaves it, as far as the recipe reads it."""
    data = root / "Data"
    (data / "splits").mkdir(parents=True)
    (data / "manifest.json").write_text(json.dumps({"generator": "benchmark.data.prepare",
                                                    "template": "nilearn MNI152 2009a"}))
    for sid, record in records.items():
        path = data / ".prepare" / "IXI" / f"{sid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return root


def test_recipe_reads_what_prepare_recorded(tmp_path, synth_root):
    from benchmark.data.prepare.subject import PrepareSettings
    from benchmark.deploy.recipe import (
        Preparation,
        UnknownPreparationError,
        from_data_root,
        from_run_config,
    )

    recorded = PrepareSettings(("t1", "t2"), skull_strip="deepbet", n4=False)
    root = _prepared_root(tmp_path / "a", {
        "s1": {"settings": recorded.to_record(), "skull_strip": "deepbet"},
        "s2": {"settings": recorded.to_record(), "skull_strip": "deepbet"},
        "other": {"settings": PrepareSettings(("t1",)).to_record(), "skull_strip": "nonzero"}})
    recipe = from_data_root(root, "user", "t2", ["s1", "s2"])  # "other" did not train it
    assert recipe.kind == "prepare" and recipe.grid is None
    assert recipe.training_skull_strip == {"deepbet": 2}
    settings = recipe.prepare_settings()
    assert settings.sequences == ("t2",) and settings.n4 is False
    assert settings.skull_strip == "deepbet" and settings.registration == recorded.registration
    assert any("registered through their t1" in n for n in recipe.notes)
    # an older prepare recorded no settings: defaults, said so
    old = from_data_root(_prepared_root(tmp_path / "b", {"s1": {"n4": "on", "skull_strip": "mask"}}),
                         "user", "t1", ["s1"])
    assert old.prepare_settings() == PrepareSettings(("t1",))
    assert any("did not record its settings" in n for n in old.notes)
    synthetic = from_data_root(synth_root, "user", "t1", [])  # recognised by its manifest
    assert synthetic.kind == "synthetic" and synthetic.grid.shape == (96, 96, 50)
    # the loader's smoothing (a run's data option) travels with the recipe, and in bundles
    from benchmark.data.options import DataOptions
    from benchmark.profiles import PROFILES
    from benchmark.runconfig import RunConfig

    run = RunConfig(methods=["m"], profile=PROFILES["smoke"], data_root=synth_root,
                    run_dir=tmp_path / "run", data_source="user",
                    data_options=DataOptions(smoothing="curvature_flow"))
    smoothed = from_run_config(run, "t1", [])
    assert Preparation.from_json(json.loads(json.dumps(smoothed.to_json()))) == smoothed
    assert smoothed.smoothing == "curvature_flow" and synthetic.smoothing == "none"
    (tmp_path / "c/Data/splits").mkdir(parents=True)
    with pytest.raises(UnknownPreparationError, match="not written by `benchmark data prepare`"):
        from_data_root(tmp_path / "c", "user", "t1", [])


def test_a_sequence_mismatch_prepare_records_is_an_error():
    """prepare's tissue-contrast check (issue 28) records what a scan looks like; predict
    turns a clear mismatch with the model's sequence into an error, nothing else."""
    from benchmark.deploy.native import sequence_problem

    warning = ("the T1 scan does not look like T1: cerebrospinal fluid is brighter than "
               "white matter as in a T2 (...)")
    t2_as_t1 = {"tissue_contrast": {"t1": {"looks_like": "t2"}}, "warnings": [warning]}
    assert sequence_problem(t2_as_t1, "t1") == warning
    assert sequence_problem({"tissue_contrast": {"t2": {"looks_like": "t1"}}}, "t2") \
        == "it looks like a T1"
    for fine in ({"tissue_contrast": {"t1": {"looks_like": "t1"}}},
                 {"tissue_contrast": {"t1": {"looks_like": None}}},  # unclear (FLAIR-like)
                 {"tissue_contrast": {"t1": None}},                   # too little brain
                 {}):                                                 # a prepare without it
        assert sequence_problem(fine, "t1") is None
