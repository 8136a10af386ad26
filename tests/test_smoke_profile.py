"""The smoke profile takes seconds: its work, counted (never timed).

A smoke part infers at most 9 volumes of 25 axial slices (every 2nd of 50), each with at
most the passes its method needs per slice (pDDPM's 2x2 grid of boxes: 4; every other
method: 1), and trains at most 2 batches of 4 in each stage's single epoch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.loader import load_volume
from benchmark.data.module import BenchmarkDataModule
from benchmark.diffusion.unet import DiffusionUNet
from benchmark.profiles import PROFILES
from benchmark.registry import get_method, list_methods
from benchmark.runconfig import RunConfig
from benchmark.rundir import RunDir

SMOKE = PROFILES["smoke"]
SLICES = 25            # every 2nd of the 50 axial slices
VOLUMES_PER_PART = 9   # 2 test + 1 validation volume of the healthy set and of each cohort
PASSES = {"pddpm": 4}  # network passes per inferred slice; 1 for every other method


def test_a_smoke_part_infers_nine_volumes_of_25_slices(synth_root):
    for sequence in ("t2", "t1"):
        cfg = RunConfig(methods=["ae"], profile=SMOKE, data_root=synth_root, run_dir=Path())
        data = BenchmarkDataModule(cfg.data_config(sequence, 0))
        records = [r for splits in data.evaluation_sets().values()
                   for recs in splits.values() for r in recs]
        assert len(records) <= VOLUMES_PER_PART, sequence
        depths = {load_volume(r).image.shape[2] for r in records + data.records["train"]}
        assert depths == {SLICES}, sequence


def test_smoke_training_is_two_batches_of_one_epoch_per_stage():
    assert (SMOKE.limit_train_batches, SMOKE.limit_val_batches, SMOKE.batch_size) == (2, 1, 4)
    for name in list_methods():
        method = get_method(name).from_profile("smoke")
        epochs = {s: method.stage_epochs(s, "smoke") for s in method.stages()}
        assert all(e <= 1 for e in epochs.values()), (name, epochs)


@pytest.mark.parametrize("name", [m for m in list_methods() if get_method(m).family == "diffusion"])
def test_smoke_inference_passes_per_slice(name):
    """Network passes per slice at the smoke settings (cDDPM: one noise level, not ENS)."""
    torch.manual_seed(0)
    method = get_method(name).from_profile("smoke").eval()
    items = []
    for module in method.modules():
        if isinstance(module, DiffusionUNet):
            module.register_forward_hook(lambda m, args, out: items.append(args[0].shape[0]))
    method.predict_volume(torch.rand(SLICES, 1, 96, 96), batch_size=SMOKE.eval_batch_size)
    assert sum(items) == PASSES.get(name, 1) * SLICES


def test_a_smoke_run_caches_maps_of_25_slices(smoke_run):
    """The run itself (thresh and ae on the toy data) inferred what the profile says."""
    run = RunDir(smoke_run)
    assert run.parts()
    for part in run.parts():
        evaluated = sum(len(recs) for splits in run.evaluation_sets(part).values()
                        for recs in splits.values())
        volumes = 0
        for path in part.maps_dir().glob("*.npz"):
            with np.load(path) as maps:
                assert maps["anomaly"].shape[1:] == (96, 96, SLICES), path
                volumes += len(maps["names"])
        assert volumes == evaluated, part.key
