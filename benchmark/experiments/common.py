"""Shared plumbing of the diffusion experiments: open a finished run, load its diffusion
checkpoints and test volumes, reconstruct at chosen noise levels, score a volume.

Not an experiment itself (no ``configure_parser``/``main``), so the CLI does not list it.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmark.checkpoint import load_method
from benchmark.data.layout import HEALTHY_COHORT
from benchmark.data.loader import Volume, load_volume
from benchmark.diffusion.method import DiffusionMethod
from benchmark.metrics import auprc
from benchmark.postprocess import PostProcess

DIFFUSION_METHODS = ("ddpm", "pddpm", "cddpm")


@dataclass
class Part:
    """One trained (method, sequence, fold) of a run."""

    method: str
    sequence: str
    fold: int
    path: Path

    @property
    def checkpoint(self) -> Path:
        done = self.path / "done.json"
        if done.is_file():
            name = json.loads(done.read_text()).get("checkpoint")
            if name and (self.path / name).is_file():
                return self.path / name
        for name in ("best-main.ckpt", "best.ckpt"):
            if (self.path / name).is_file():
                return self.path / name
        raise FileNotFoundError(f"no checkpoint in {self.path} (expected best-main.ckpt)")

    def load(self, device: torch.device) -> DiffusionMethod:
        method = load_method(self.checkpoint)
        if not isinstance(method, DiffusionMethod):
            raise TypeError(f"{self.path}: {self.method} is not a diffusion method")
        return method.to(device).eval()


def add_common_arguments(parser: argparse.ArgumentParser, methods: str) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--methods", default=methods, help=f"comma-separated (default {methods})")
    parser.add_argument("--sequence", default=None, help="t1 or t2 (default: the run's first)")
    parser.add_argument("--fold", type=int, default=None, help="default: the lowest trained fold")
    parser.add_argument("--max-volumes", type=int, default=5, help="test volumes per data set")
    parser.add_argument("--slice-stride", type=int, default=1,
                        help="use every k-th axial slice (k>1 trades fidelity for CPU time)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=3141)
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default <run>/experiments)")


def run_config(run: Path) -> dict:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no config.json - not a finished run directory")
    return json.loads(path.read_text())


def find_parts(run: Path, methods: Sequence[str], sequence: str | None,
               fold: int | None) -> dict[str, Part]:
    """{method: Part} for the requested methods that were trained in the run."""
    config = run_config(run)
    sequence = sequence or config["sequences"][0]
    found = {}
    for name in methods:
        folds = sorted(p for p in (Path(run) / name / sequence).glob("fold*") if p.is_dir())
        if fold is not None:
            folds = [p for p in folds if p.name == f"fold{fold}"]
        if folds:
            path = folds[0]
            found[name] = Part(name, sequence, int(path.name[4:]), path)
    if not found:
        raise FileNotFoundError(
            f"{run}: none of {', '.join(methods)} trained for sequence {sequence}"
            + (f", fold {fold}" if fold is not None else ""))
    return found


def evaluation_sets(run: Path, part: Part, max_volumes: int | None) -> dict[str, dict[str, list]]:
    """The run's {dataset: {split: records}} for this part's sequence and fold."""
    from benchmark.data.module import BenchmarkDataModule, DataConfig

    config = run_config(run)
    cap = config["profile"].get("max_test_volumes")
    caps = [c for c in (cap, max_volumes) if c is not None]
    data = BenchmarkDataModule(DataConfig(
        root=Path(config["data_root"]), sequence=part.sequence, fold=part.fold,
        fold_scheme=config.get("fold_scheme", "disjoint"),
        max_test_volumes=min(caps) if caps else None, cohorts=config.get("cohorts")))
    return data.evaluation_sets()


def test_volumes(sets: dict, dataset: str) -> list[Volume]:
    return [load_volume(r) for r in sets.get(dataset, {}).get("test", [])]


def healthy_dataset() -> str:
    return HEALTHY_COHORT


@torch.no_grad()
def reconstruct(method: DiffusionMethod, x: Tensor, steps: Sequence[int],
                cond_image: Tensor | None = None, batch: int = 50) -> Tensor:
    """Mean one-step reconstruction over ``steps`` (paper t, 1-based), fresh noise each.

    x: (N, 1, H, W) in [0, 1]; cond_image: what the cDDPM encoder sees (default x).
    Returns (N, 1, H, W) in [0, 1] units (unclamped), on the CPU."""
    out = []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].to(method.device)
        cb = xb if cond_image is None else cond_image[i:i + batch].to(method.device)
        cond = method.condition(cb)
        rec = sum(method.reconstruct(xb, int(t), cond) for t in steps) / len(steps)
        out.append(rec.float().cpu())
    return torch.cat(out)


def slices_of(volume: Volume, stride: int = 1) -> tuple[Tensor, np.ndarray]:
    """(D', 1, H, W) slices and their indices along the axial axis."""
    idx = np.arange(0, volume.image.shape[2], stride)
    return volume.slices()[idx], idx


def volume_auprc(anomaly: np.ndarray, volume: Volume, idx: np.ndarray) -> float:
    """AUPRC of one volume with the protocol's default post-processing (eroded mask, median
    filter) over brain voxels, on the axial slices ``idx``; NaN without lesion voxels there."""
    mask, seg = volume.mask[..., idx], volume.seg[..., idx]
    amap = PostProcess().apply(anomaly, mask)
    y, s = seg[mask], amap[mask]
    if not 0 < y.sum() < y.size:
        return float("nan")
    return float(auprc(s, y))


def to_volume(t: Tensor) -> np.ndarray:
    """(D, 1, H, W) -> (H, W, D) numpy."""
    return t[:, 0].permute(1, 2, 0).numpy()


def out_dir(args: argparse.Namespace, name: str) -> Path:
    path = (args.out or Path(args.run_dir) / "experiments") / name
    path.mkdir(parents=True, exist_ok=True)
    return path

