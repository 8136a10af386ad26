"""Training throughput and inference cost of DDPM, pDDPM and cDDPM, in one process.

    OMP_NUM_THREADS=1 python -m perf.bench_diffusion --profile paper \
        --batch 4 --slices 2
    python -m perf.bench_diffusion --device cuda --batch 32 --slices 50 --amp

Training: seconds per optimiser step (forward, backward, Adam) at --batch after one
warm-up step -> slices/s. Inference: ``anomaly()`` on --slices random slices, scaled to
a 50-slice volume (inference is linear in the number of slices; use --slices 50 on a GPU
to time whole volumes). On a shared CPU the wall clock depends on the load: CPU seconds
of this process are printed too (with OMP_NUM_THREADS=1 they equal the unloaded wall time). Configurations: DDPM t=500, DDPM ENS, pDDPM t=500, pDDPM ENS,
cDDPM t=500, cDDPM ENS (the paper's cDDPM row uses ENS). UNet calls per slice: 1, 3, 4,
12, 1 (+ encoder), 3 (+ encoder).
"""
from __future__ import annotations

import argparse
import time

import torch

CONFIGS = [
    ("ddpm", {"ensemble": False}), ("ddpm", {"ensemble": True}),
    ("pddpm", {"ensemble": False}), ("pddpm", {"ensemble": True}),
    ("cddpm", {"ensemble": False}), ("cddpm", {"ensemble": True}),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device: torch.device, amp: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=amp)


class _Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def train_throughput(method, batch: int, steps: int, device, amp: bool) -> tuple[float, float]:
    """(wall, cpu) slices/s of the main training stage."""
    method.stage = "main"
    method.train()
    opt = method.configure_optimizers()
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    data = {"image": torch.rand(batch, 1, 96, 96, device=device)}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = method.training_losses(data)["loss"]
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step()
    _sync(device)
    with _Clock() as clock:
        for _ in range(steps):
            step()
        _sync(device)
    return batch * steps / clock.wall, batch * steps / clock.cpu


@torch.no_grad()
def infer_seconds_per_volume(method, slices: int, device, amp: bool,
                             depth: int = 50) -> tuple[float, float]:
    """(wall, cpu) seconds of anomaly() for a depth-slice volume."""
    method.eval()
    x = torch.rand(slices, 1, 96, 96, device=device)
    with _autocast(device, amp):
        method.anomaly(x[:1])  # warm-up
        _sync(device)
        with _Clock() as clock:
            method.anomaly(x)
            _sync(device)
    return clock.wall / slices * depth, clock.cpu / slices * depth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="paper", choices=("paper", "quick", "smoke"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=1, help="timed training steps after warm-up")
    p.add_argument("--slices", type=int, default=2, help="slices timed per inference call")
    p.add_argument("--amp", action="store_true", help="fp16 (GPU) / bf16 (CPU) autocast")
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)

    import methods  # noqa: F401
    from benchmark.registry import get_method

    print(f"device={device} threads={torch.get_num_threads()} profile={args.profile} "
          f"batch={args.batch} slices={args.slices} amp={args.amp}")
    print(f"{'method':8s} {'config':6s} {'params':>11s} {'train slices/s':>22s} "
          f"{'s/volume (wall | cpu)':>22s}")
    for name, overrides in CONFIGS:
        method = get_method(name).from_profile(args.profile, overrides).to(device)
        n = method.n_params()
        train = "-"
        if not args.skip_train and not overrides["ensemble"]:  # training ignores the test flag
            wall, cpu = train_throughput(method, args.batch, args.steps, device, args.amp)
            train = f"{wall:9.3f} | {cpu:9.3f}"
        wall, cpu = infer_seconds_per_volume(method, args.slices, device, args.amp)
        config = "ENS" if overrides["ensemble"] else "t=500"
        print(f"{name:8s} {config:6s} {n:11,d} {train:>22s} {wall:10.2f} | {cpu:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
