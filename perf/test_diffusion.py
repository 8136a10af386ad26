"""Speed of the diffusion building blocks shared by DDPM, pDDPM and cDDPM: simplex noise
(drawn for every training batch) and a forward pass of the denoising UNet, at the quick
profile's size and at the paper's (benchmark/diffusion/unet.py; paper size: 128 base
channels, 3 residual blocks per level). Paper-scale training/inference throughput of the
whole methods: perf/bench_diffusion.py."""
from __future__ import annotations

import pytest
import torch

from benchmark.diffusion.simplex import simplex_noise
from benchmark.diffusion.unet import DiffusionUNet

SLICE = (96, 96)
UNET_SIZES = {  # name: (UNet keyword arguments, slices per forward pass)
    "quick": ({"base_channels": 16, "norm_groups": 16, "num_res_blocks": 1,
               "head_channels": 16}, 8),
    "paper": ({}, 1),  # the constructor's defaults are the paper's network
}


@pytest.mark.parametrize("shared", [False, True], ids=["map-per-slice", "one-shared-map"])
def test_simplex_noise(benchmark, shared):
    """A batch of 8 slices: one fresh map per slice (ours) or the reference's shared map."""
    benchmark.group = "simplex noise, (8, 1, 96, 96)"
    shape = (8, 1, *SLICE)
    noise = benchmark(lambda: simplex_noise(shape, shared=shared,
                                            generator=torch.Generator().manual_seed(0)))
    assert noise.shape == shape and torch.isfinite(noise).all()
    again = simplex_noise(shape, shared=shared, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noise, again)  # the generator alone decides the noise
    assert torch.equal(noise[0], noise[1]) is shared


@pytest.mark.parametrize("size", list(UNET_SIZES))
def test_unet_forward(benchmark, size):
    kwargs, slices = UNET_SIZES[size]
    torch.manual_seed(0)
    unet = DiffusionUNet(**kwargs).eval()
    n_params = sum(p.numel() for p in unet.parameters())
    benchmark.group = "UNet forward pass"
    benchmark.extra_info.update(slices=slices, params=n_params)
    x = torch.rand(slices, 1, *SLICE)
    t = torch.full((slices,), 500)

    @torch.no_grad()
    def forward():
        return unet(x, t)

    rounds = 3 if size == "paper" else 10
    out = benchmark.pedantic(forward, rounds=rounds, warmup_rounds=1)
    assert out.shape == x.shape
    if size == "paper":  # the reference's network (tests/test_diffusion.py pins the count)
        assert n_params == 37_513_857
