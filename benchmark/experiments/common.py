"""Shared plumbing of the diffusion experiments: open a finished run, load its diffusion
checkpoints and test volumes, reconstruct at chosen noise levels, score a volume.

Not an experiment itself (no ``configure_parser``/``main``), so the CLI does not list it.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.atomic import atomic_path, write_csv
from benchmark.rundir import Part, RunDir

# torch, the methods and the data stack load when an experiment runs, not when its parser
# is built: `experiment <name> --help` answers at once (tests/test_cli_imports.py)
if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from benchmark.data.loader import Volume
    from benchmark.diffusion.method import DiffusionMethod


def load_diffusion(part: Part, device: torch.device, trust: bool = False) -> DiffusionMethod:
    """The part's trained diffusion method, from the checkpoint its done.json names (inside
    the part only); ``trust`` loads checkpoints that hold more than plain values."""
    from benchmark.checkpoint import load_method
    from benchmark.diffusion.method import DiffusionMethod

    method = load_method(part.checkpoint(), trust=trust)
    if not isinstance(method, DiffusionMethod):
        raise TypeError(f"{part.path}: {part.method} is not a diffusion method")
    return method.to(device).eval()


def add_common_arguments(parser: argparse.ArgumentParser, methods: str) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--methods", default=methods, help=f"comma-separated (default {methods})")
    parser.add_argument("--sequence", default=None, help="t1 or t2 (default: the run's first)")
    parser.add_argument("--fold", type=int, default=None, help="default: the lowest trained fold")
    parser.add_argument("--max-volumes", type=int, default=5, help="test volumes per data set")
    parser.add_argument("--slice-stride", type=int, default=1,
                        help="use every k-th axial slice (k>1 trades fidelity for CPU time)")
    parser.add_argument("--device", default="auto", help="auto (default: cuda where "
                        "available, else cpu), cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=3141)
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default <run>/experiments)")
    parser.add_argument("--trust-checkpoints", action="store_true",
                        help="load checkpoints that hold more than tensors and plain values "
                             "(can run code: only for files you made yourself)")


def device(name: str) -> torch.device:
    """The torch device ``--device`` names; ``auto`` is CUDA where available, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def find_parts(run: Path, methods: Sequence[str], sequence: str | None,
               fold: int | None) -> dict[str, Part]:
    """{method: Part} for the requested methods that finished in the run (lowest fold
    unless one is given; the run's first sequence unless one is given)."""
    rd = RunDir(run)
    sequence = sequence or rd.run_config().sequences[0]
    found = {}
    for part in rd.find_parts(list(methods), sequence, fold):
        found.setdefault(part.method, part)
    if not found:
        raise FileNotFoundError(
            f"{run}: none of {', '.join(methods)} finished for sequence {sequence}"
            + (f", fold {fold}" if fold is not None else ""))
    return found


def evaluation_sets(run: Path, part: Part, max_volumes: int | None) -> dict[str, dict[str, list]]:
    """The run's {dataset: {split: records}} for this part's sequence and fold."""
    return RunDir(run).evaluation_sets(part, max_volumes)


def test_volumes(sets: dict, dataset: str) -> list[Volume]:
    from benchmark.data.loader import load_volume

    return [load_volume(r) for r in sets.get(dataset, {}).get("test", [])]


def healthy_dataset() -> str:
    from benchmark.data.layout import HEALTHY_COHORT

    return HEALTHY_COHORT


def reconstruct(method: DiffusionMethod, x: Tensor, steps: Sequence[int],
                cond_image: Tensor | None = None, batch: int = 50) -> Tensor:
    """Mean one-step reconstruction over ``steps`` (paper t, 1-based), fresh noise each.

    x: (N, 1, H, W) in [0, 1]; cond_image: what the cDDPM encoder sees (default x).
    Returns (N, 1, H, W) in [0, 1] units (unclamped), on the CPU."""
    import torch

    out = []
    with torch.no_grad():
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
    from benchmark.metrics import auprc
    from benchmark.postprocess import PostProcess

    mask, seg = volume.mask[..., idx], volume.seg[..., idx]
    amap = PostProcess().apply(anomaly, mask)
    y, s = seg[mask], amap[mask]
    if not 0 < y.sum() < y.size:
        return float("nan")
    return float(auprc(s, y))


def l1_sums(err: np.ndarray, seg: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """[sum, count] of an error map over lesion voxels and over healthy brain voxels
    (brain & ~seg): the regions of Table 1's l1-ratio, to pool over volumes."""
    healthy = brain & ~seg
    return np.array([err[seg].sum(), seg.sum(), err[healthy].sum(), healthy.sum()], float)


def pooled_l1(sums: np.ndarray) -> dict[str, float]:
    """l1_lesion, l1_healthy and l1_ratio from summed :func:`l1_sums` (NaN where empty)."""
    a, n_a, h, n_h = (float(v) for v in sums)
    return {"l1_lesion": a / n_a if n_a else float("nan"),
            "l1_healthy": h / n_h if n_h else float("nan"),
            "l1_ratio": (a / n_a) / (h / n_h) if n_a and h else float("nan")}


def to_volume(t: Tensor) -> np.ndarray:
    """(D, 1, H, W) -> (H, W, D) numpy."""
    return t[:, 0].permute(1, 2, 0).numpy()


def save_table(frame, path: Path) -> None:
    """An experiment's table, written atomically (a kill never leaves half a CSV)."""
    write_csv(path, frame)


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """An experiment's figure, written atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")


def out_dir(args: argparse.Namespace, name: str) -> Path:
    """``<run>/experiments/<name>`` (or ``--out``/<name>)."""
    return RunDir(args.run_dir).experiment_dir(name, args.out)

