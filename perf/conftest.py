"""Shared set-up of the speed suite: one CPU thread, results stored in perf/results/,
and speed-ups against the baselines printed at the end of the run."""
from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk
import torch

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_STORAGE = "file://./.benchmarks"  # pytest-benchmark's default

# One thread everywhere: numbers that do not depend on the core count or on the other
# processes of a shared machine (torch's intra-op pool, ITK's resampling in torchio).
torch.set_num_threads(1)
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

_speedups: dict[str, float] = {}


def pytest_configure(config):
    """Point --benchmark-storage at the committed results unless the user gave one (runs
    before pytest-benchmark reads the option: its pytest_configure is trylast)."""
    if getattr(config.option, "benchmark_storage", None) == DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{RESULTS}"


def median_seconds(benchmark) -> float | None:
    """Median of a finished benchmark, None when timing is off (--benchmark-disable)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


@pytest.fixture
def record_speedup(request):
    """record_speedup(benchmark, baseline_seconds): store ours-vs-baseline in the saved
    JSON (extra_info) and in the summary printed at the end."""

    def record(benchmark, baseline: float | None) -> float | None:
        mine = median_seconds(benchmark)
        if mine is None or baseline is None:
            return None
        ratio = baseline / mine
        benchmark.extra_info["speedup_vs_baseline"] = round(ratio, 2)
        _speedups[request.node.name] = ratio
        return ratio

    return record


def pytest_terminal_summary(terminalreporter):
    if _speedups:
        terminalreporter.section("speed-up against the baseline (median CPU time)")
        for name, ratio in _speedups.items():
            terminalreporter.write_line(f"{name}: {ratio:.1f}x")
