"""Qualitative cases from a run's cached maps (paper Figs. 5 and 7).

For one test volume: the input and ground truth are read from the run's data root
(config.json `data_root`, through the one loader), the anomaly map and reconstruction
of every method from its part's cached maps (benchmark.rundir.Part.maps_path, written
by benchmark/inference.py). The axial slice shown is the one with the largest
lesion area unless one is given. No model is run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _record(config, dataset: str, split: str, volume: str):
    """The record of ``volume`` as the run (a RunConfig) read it."""
    from ..data.layout import unhealthy_split
    from ..data.module import BenchmarkDataModule

    root = config.data_root
    records = unhealthy_split(root, dataset, split)
    for rec in records:
        if rec.name == volume:
            # the slices and smoothing the run's maps were made with (benchmark.runconfig)
            return BenchmarkDataModule.as_configured(config.data_config("t1", 0), [rec])[0]
    names = ", ".join(r.name for r in records[:10])
    raise ValueError(f"volume {volume!r} is not in {dataset}/{split} of {root} "
                     f"(first names: {names})")


def lesion_slice(seg: np.ndarray) -> int:
    """Axial index with the largest lesion area; the middle slice if there is none.
    seg: (H, W, D) bool."""
    area = seg.reshape(-1, seg.shape[-1]).sum(0)
    return int(np.argmax(area)) if area.any() else seg.shape[-1] // 2


def case_rows(run_dirs: list[str | Path], dataset: str, volume: str, *, fold: int = 0,
              split: str = "test", slice_index: int | None = None
              ) -> tuple[list[dict], list[str]]:
    """Rows for `plots.qualitative_grid`: one per method with cached maps of `volume`.

    Returns (rows, method labels); each row holds (H, W) arrays "input",
    "reconstruction" (None for methods without one), "anomaly_map", "ground_truth".
    """
    from ..data.loader import load_volume
    from ..rundir import RunDir

    found = []
    for run in map(RunDir, run_dirs):
        for part in run.find_parts(fold=fold):
            if part.has_maps(dataset, split):
                found.append((run, part.method, part.maps_path(dataset, split)))
    if not found:
        raise FileNotFoundError(f"no cached maps {dataset}_{split}.npz for fold {fold} in "
                                f"{[str(r) for r in run_dirs]}")
    vol = load_volume(_record(found[0][0].run_config(), dataset, split, volume))
    z = lesion_slice(vol.seg) if slice_index is None else slice_index
    rows, labels = [], []
    for _, method, path in found:
        with np.load(path, allow_pickle=False) as maps:
            names = [str(n) for n in maps["names"]]
            if volume not in names:
                continue
            i = names.index(volume)
            rec = maps["reconstruction"][i][..., z] if "reconstruction" in maps.files else None
            rows.append({"input": vol.image[..., z], "reconstruction": rec,
                         "anomaly_map": maps["anomaly"][i][..., z],
                         "ground_truth": vol.seg[..., z]})
        labels.append(method)
    return rows, labels
