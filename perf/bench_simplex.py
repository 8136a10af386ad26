"""Cost of simplex noise vs one DDPM training step (forward + backward + Adam).

    OMP_NUM_THREADS=1 python -m perf.bench_simplex --batch 8
    python -m perf.bench_simplex --device cuda --batch 32

Prints seconds per call of ``simplex_noise((B,1,96,96))`` (fresh map per slice and the
reference's one shared map), of the training step of DDPM at the paper's network size,
and the noise's share of the step. The noise is generated on --device.
"""
from __future__ import annotations

import argparse
import time

import torch


def _timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call: wall clock on a GPU, process CPU time on the CPU (a shared CPU's
    wall clock measures the other processes' load, not this code)."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    fn()  # warm-up (caches, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = clock()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (clock() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--step-repeats", type=int, default=2)
    p.add_argument("--profile", default="paper", choices=("paper", "quick", "smoke"))
    args = p.parse_args(argv)
    device = torch.device(args.device)

    import methods  # noqa: F401
    from benchmark.diffusion.simplex import simplex_noise
    from benchmark.registry import get_method

    shape = (args.batch, 1, args.size, args.size)
    fresh = _timed(lambda: simplex_noise(shape, device=device), args.repeats, device)
    shared = _timed(lambda: simplex_noise(shape, shared=True, device=device), args.repeats, device)

    model = get_method("ddpm").from_profile(args.profile).to(device)
    opt = model.configure_optimizers()
    batch = {"image": torch.rand(shape, device=device)}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model.training_losses(batch)["loss"].backward()
        opt.step()

    step_s = _timed(step, args.step_repeats, device)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} "
          f"size={args.size} profile={args.profile}")
    print(f"simplex_noise fresh map per slice : {fresh * 1e3:9.1f} ms/call")
    print(f"simplex_noise one shared map      : {shared * 1e3:9.1f} ms/call")
    print(f"DDPM training step (incl. noise)  : {step_s * 1e3:9.1f} ms/step")
    print(f"noise share of a training step    : {100 * fresh / step_s:9.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
