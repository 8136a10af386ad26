"""Training and inference throughput on the CPU: the old path against the new, in one process.

    OMP_NUM_THREADS=1 python -m perf.bench_throughput                # AE family + diffusion trio
    OMP_NUM_THREADS=1 python -m perf.bench_throughput --methods all --save perf/results/throughput

For each method (quick profile, the sizes of the quick and reference boards): training
steps per CPU-second (batch 16: forward, backward, optimiser step, as the harness's
training step) and inference volumes per CPU-second (``predict_volume`` on a 96x96x50
volume), on the old path (NCHW layout, glibc's default allocator) and on the new one
(:mod:`benchmark.cpu`: the tuned allocator and each method's declared channels-last
phases). The allocator setting cannot be undone in a process, so every old-path number is
measured first, then the allocator is tuned and every new-path number is measured; each
number is the best of ``--repeats`` timings (CPU seconds of this process: user + system,
steady on a shared machine, equal to the wall time on an idle one with one thread). The
wall-clock rates are recorded beside them (``..._per_s``): with several threads on an
idle machine they are what a user waits for (the README's main command runs one part at
a time on all cores).

Numbers stay equal: the first training loss of both paths (same seed) and the inference
maps (same seed, so the same noise for the diffusion models) are compared and their
largest differences printed (relative to the loss and to the map's largest value); the
tests pin them (tests/test_cpu.py).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

DEFAULT_METHODS = ("ae", "vae", "dae", "ddpm", "pddpm", "cddpm")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _build(name: str, profile: str):
    import lightning as L

    from benchmark.registry import get_method

    L.seed_everything(0, verbose=False)
    method = get_method(name).from_profile(profile)
    method.stage = method.stages()[-1]
    if hasattr(method, "setup"):
        method.setup("fit")
    return method


def _optimizer(method):
    opt = method.configure_optimizers()
    if isinstance(opt, dict):
        opt = opt["optimizer"]
    if isinstance(opt, (list, tuple)):
        opt = opt[0]
    return opt


def train_rate(method, layout: bool, batch: int, steps: int, repeats: int
               ) -> tuple[float, float, float]:
    """(steps per CPU-second, first loss, steps per wall-second) of ``steps`` optimiser
    steps after a warm-up."""
    import lightning as L

    from benchmark.cpu import channels_last

    x = torch.rand(batch, 1, 96, 96, generator=torch.Generator().manual_seed(0))
    data = {"image": x, "mask": torch.ones_like(x)}
    method.train()
    cpu_layout = method.memory_layout("train", torch.device("cpu")) if layout \
        else channels_last(method, False)
    with cpu_layout:
        opt = _optimizer(method)
        L.seed_everything(1, verbose=False)
        opt.zero_grad(set_to_none=True)
        loss = method.training_losses(data)["loss"]
        first = float(loss)
        loss.backward()
        opt.step()
        best = wall = float("inf")
        for _ in range(repeats):
            start, start_wall = _cpu(), time.perf_counter()
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                method.training_losses(data)["loss"].backward()
                opt.step()
            best = min(best, _cpu() - start)
            wall = min(wall, time.perf_counter() - start_wall)
    return steps / best, first, steps / wall


def infer_rate(method, layout: bool, repeats: int) -> tuple[float, torch.Tensor, float]:
    """(volumes per CPU-second, the map of the timed volume, volumes per wall-second) of
    predict_volume on 50 slices."""
    x = torch.rand(50, 1, 96, 96, generator=torch.Generator().manual_seed(2))
    method.eval()
    phases = method.channels_last
    if not layout:
        method.channels_last = frozenset()  # this instance only: the old path
    try:
        torch.manual_seed(3)
        method.predict_volume(x[:4])  # warm-up
        best, wall, out = float("inf"), float("inf"), None
        for _ in range(repeats):
            torch.manual_seed(3)
            start, start_wall = _cpu(), time.perf_counter()
            out = method.predict_volume(x)
            best = min(best, _cpu() - start)
            wall = min(wall, time.perf_counter() - start_wall)
    finally:
        method.channels_last = phases
    return 1.0 / best, out.anomaly_map, 1.0 / wall


def measure(names: list[str], profile: str, batch: int, steps: int, repeats: int,
            new: bool) -> dict:
    from benchmark.cpu import tune_allocator

    if new:
        tune_allocator()
    out = {}
    for name in names:
        method = _build(name, profile)
        row = {"family": method.family}
        if method.requires_training and method.sampling == "slice" \
                and getattr(method, "automatic_optimization", True):
            row["train_steps_per_cpu_s"], row["first_loss"], row["train_steps_per_s"] = \
                train_rate(method, new, batch, steps, repeats)
        method = _build(name, profile)  # fresh weights: both paths infer with the same net
        if method.sampling == "slice":
            row["infer_volumes_per_cpu_s"], row["map"], row["infer_volumes_per_s"] = \
                infer_rate(method, new, repeats)
        out[name] = row
        print(f"  {'new' if new else 'old'} {name}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return out


def compare(old: dict, new: dict) -> list[dict]:
    rows = []
    for name, o in old.items():
        n = new[name]
        row = {"method": name, "family": o["family"]}
        for key in ("train_steps_per_cpu_s", "infer_volumes_per_cpu_s", "train_steps_per_s",
                    "infer_volumes_per_s"):
            if key in o:
                row[f"{key}_old"], row[f"{key}_new"] = o[key], n[key]
                row[f"{key}_ratio"] = n[key] / o[key]
        if "first_loss" in o:
            row["loss_diff_rel"] = abs(o["first_loss"] - n["first_loss"]) / abs(o["first_loss"])
        if "map" in o:
            scale = float(o["map"].abs().max()) or 1.0
            row["map_max_diff_rel"] = float((o["map"] - n["map"]).abs().max()) / scale
        rows.append(row)
    return rows


def _fmt(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, float) else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated, or 'all' (default: %(default)s)")
    p.add_argument("--profile", default="quick", choices=("quick", "smoke"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=4, help="timed training steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--save", type=Path, default=None, metavar="DIR",
                   help="also write the results as JSON into DIR")
    args = p.parse_args(argv)

    import methods  # noqa: F401
    from benchmark.registry import list_methods

    names = list_methods() if args.methods == "all" else args.methods.split(",")
    print(f"threads={torch.get_num_threads()} profile={args.profile} batch={args.batch} "
          f"steps={args.steps} repeats={args.repeats} (CPU seconds, best of repeats)")
    old = measure(names, args.profile, args.batch, args.steps, args.repeats, new=False)
    new = measure(names, args.profile, args.batch, args.steps, args.repeats, new=True)
    rows = compare(old, new)
    print(f"\n{'method':8s} {'family':16s} {'train steps/CPU-s old -> new':>30s} "
          f"{'infer vol/CPU-s old -> new':>28s} {'loss diff':>10s} {'map diff':>9s}")
    for r in rows:
        train = (f"{_fmt(r.get('train_steps_per_cpu_s_old'), '.3f')} -> "
                 f"{_fmt(r.get('train_steps_per_cpu_s_new'), '.3f')} "
                 f"({_fmt(r.get('train_steps_per_cpu_s_ratio'), '.2f')}x)")
        infer = (f"{_fmt(r.get('infer_volumes_per_cpu_s_old'), '.3f')} -> "
                 f"{_fmt(r.get('infer_volumes_per_cpu_s_new'), '.3f')} "
                 f"({_fmt(r.get('infer_volumes_per_cpu_s_ratio'), '.2f')}x)")
        print(f"{r['method']:8s} {r['family']:16s} {train:>30s} {infer:>28s} "
              f"{_fmt(r.get('loss_diff_rel'), '10.1e')} {_fmt(r.get('map_max_diff_rel'), '9.1e')}"
              f"   wall: train {_fmt(r.get('train_steps_per_s_ratio'), '.2f')}x, "
              f"infer {_fmt(r.get('infer_volumes_per_s_ratio'), '.2f')}x")
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = args.save / f"{platform.node()}-{stamp}.json"
        meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "load_average": list(_loadavg()),
                "args": {k: str(v) for k, v in vars(args).items()}}
        path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"saved {path}")
    return 0


def _loadavg() -> tuple[float, ...]:
    try:
        import os

        return os.getloadavg()
    except (AttributeError, OSError):
        return ()


if __name__ == "__main__":
    raise SystemExit(main())
