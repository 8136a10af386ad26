"""What the board's diagnostics share: a trained fold-0 model with its test volumes, and
the line each prints per cohort (scores are per-volume values, averaged)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from benchmark.checkpoint import load_method
from benchmark.experiments.common import evaluation_sets, test_volumes
from benchmark.rundir import RunDir

BASELINES = Path("leaderboard/synthetic-reference/runs/baselines")


def cohorts(name: str, sequence: str, volumes: int, run: Path = BASELINES
            ) -> Iterator[tuple[torch.nn.Module, str, list]]:
    """(trained method, unhealthy cohort, its first ``volumes`` test volumes), per cohort."""
    torch.set_num_threads(1)
    part = RunDir(run).part(name, sequence, 0)
    method = load_method(part.checkpoint()).eval()
    sets = evaluation_sets(run, part, volumes)
    for dataset in sorted(d for d in sets if d != "IXI"):
        yield method, dataset, test_volumes(sets, dataset)


def report(name: str, sequence: str, dataset: str, volumes: list,
           scores: dict[str, list[float]]) -> None:
    prevalence = np.mean([v.seg[v.mask].mean() for v in volumes])
    print(f"{name} {sequence} {dataset} ({len(volumes)} volumes, prevalence "
          f"{100 * prevalence:.2f} %): "
          + ", ".join(f"{k} {np.nanmean(v):.2f}" for k, v in scores.items()))
