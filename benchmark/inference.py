"""Inference: the only path from a trained method to cached anomaly maps.

Inference runs once per (method, sequence, fold): every volume of every evaluation set
goes through ``method.predict_volume`` (all slices of a volume in one batch) and the
anomaly maps (and reconstructions) are cached in the part's ``maps/<dataset>_<split>.npz``
(:class:`benchmark.rundir.Part`). Scoring (:mod:`benchmark.scoring`) reads only those
caches, so a finished run can be re-scored with other post-processing or thresholds
without running any model again.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .data.layout import VolumeRecord
from .data.loader import load_volume
from .method import AnomalyMethod, AnomalyOutput

MAP_DTYPES = {"float32": np.float32, "float16": np.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_volume(t: torch.Tensor, dtype: np.dtype = np.float32) -> np.ndarray:
    """(D, 1, H, W) tensor -> (H, W, D) array."""
    return t[:, 0].permute(1, 2, 0).float().cpu().numpy().astype(dtype)


def volume_output(method: AnomalyMethod, x: torch.Tensor, name: str,
                  batch_size: int = 50) -> AnomalyOutput:
    """One volume's maps, x: (D, 1, H, W) on the method's device; a non-finite anomaly map
    is an error naming the volume. The one call of ``predict_volume`` (runs and
    ``benchmark predict`` alike)."""
    out = method.predict_volume(x, batch_size=batch_size)
    if not torch.isfinite(out.anomaly_map).all():
        raise FloatingPointError(f"{method.name}: non-finite anomaly map for {name}")
    return out


@torch.no_grad()
def infer(method: AnomalyMethod, sets: dict[str, dict[str, list[VolumeRecord]]], part,
          device: torch.device, batch_size: int = 50, map_dtype: str = "float32",
          progress: bool = False, input_transform=None, contrast: float = 1.0
          ) -> dict[str, float]:
    """Run the method on every volume of ``sets`` and cache the maps in ``part`` (a
    benchmark.rundir.Part); returns timings.

    input_transform: optional function on (D, 1, H, W) inputs (the domain-shift study's
    x ** contrast); the maps are then cached as the part's maps at ``contrast``.
    """
    if map_dtype not in MAP_DTYPES:
        raise ValueError(f"unknown map dtype {map_dtype!r}; allowed: {', '.join(MAP_DTYPES)}")
    dtype = MAP_DTYPES[map_dtype]
    method.eval().to(device)
    part.maps_dir(contrast).mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()
    seconds: list[float] = []
    n_slices = 0
    jobs = [(d, s, recs) for d, splits in sets.items() for s, recs in splits.items() if recs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(r) for _, _, r in jobs), desc=f"{method.name}: inference",
                   leave=False)
    for dataset, split, records in jobs:
        anomaly, recon, names = [], [], []
        for rec in records:
            x = load_volume(rec).slices()
            if input_transform is not None:
                x = input_transform(x)
            x = x.to(device)
            _sync(device)
            start = time.perf_counter()
            out = volume_output(method, x, rec.name, batch_size)
            _sync(device)
            seconds.append(time.perf_counter() - start)
            n_slices = x.shape[0]
            anomaly.append(to_volume(out.anomaly_map, dtype))
            if out.reconstruction is not None:
                recon.append(to_volume(out.reconstruction, dtype))
            names.append(rec.name)
            if bar is not None:
                bar.update()
        arrays = {"names": np.array(names), "anomaly": np.stack(anomaly)}
        if len(recon) == len(anomaly):
            arrays["reconstruction"] = np.stack(recon)
        _save_maps(part.maps_path(dataset, split, contrast), arrays)
    if bar is not None:
        bar.close()
    timed = seconds[1:] if len(seconds) > 1 else seconds  # the first volume is the warm-up
    median = statistics.median(timed) if timed else float("nan")
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = peak_rss_mb()
    return {"infer_seconds_per_volume": median,
            "slices_per_second": n_slices / median if median > 0 else float("nan"),
            "peak_memory_mb": peak_mb, "n_volumes_timed": len(timed)}


def _save_maps(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a reader never sees a half-written maps file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def reset_peak_rss() -> bool:
    """Reset the process's peak resident memory (Linux: VmHWM) so that the next
    `peak_rss_mb` covers one part's inference, not every part the process ran before.
    Free heap pages are handed back first (they would count as the next part's memory)."""
    from .cpu import release_free_memory

    release_free_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (VmHWM); where /proc is missing, the
    whole-process peak from getrusage (Linux and macOS differ in units)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
