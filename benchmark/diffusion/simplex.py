"""Simplex noise for DDPM training and testing (AnoDDPM, Wyatt et al. 2022), in torch.

The AnoDDPM / cDDPM reference draws 2D OpenSimplex noise (K. Spencer's public-domain
algorithm) with numba on the CPU, ``octaves=6, persistence=0.8, frequency=64``: octave k
samples the noise at pixel coordinates / (64 / 2^k) with amplitude 0.8^k, and the sum is
NOT rescaled to unit variance. It draws ONE map per call and repeats it over the batch.

Here the same OpenSimplex-2D lattice algorithm is evaluated with tensor ops on the model's
device, vectorised over the batch, with an independent random permutation table per map,
so every slice gets a fresh map by default (``shared=True`` gives the reference's single
map repeated over the batch). The lattice geometry depends only on the pixel grid and is
computed once per octave; only the gradient lookups depend on the per-map permutation.
Deviation: the reference seeds its permutation with an LCG from numpy's global RNG; here
it is ``argsort(rand(256))`` from the given torch generator (same distribution: uniform
permutations), so runs are reproducible with ``torch.Generator``.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

_STRETCH = (1 / math.sqrt(3) - 1) / 2  # skews the grid onto the rhombus lattice
_SQUISH = (math.sqrt(3) - 1) / 2  # un-skews lattice points back to the plane
_NORM = 47.0  # OpenSimplex-2D normalisation: values fall in about [-1, 1]
# 8 gradient directions (approximating the vertices of an octagon), as (gx, gy) pairs.
_GRADIENTS = (5, 2, 2, 5, -5, 2, -2, 5, 5, -2, 2, -5, -5, -2, -2, -5)


@functools.lru_cache(maxsize=32)
def _lattice(h: int, w: int, frequency: float, device: torch.device) -> list[tuple[Tensor, ...]]:
    """The four contributing lattice points per pixel (independent of the permutation).

    Returns 4 tuples (xsv & 255, ysv, wdx, wdy), each tensor (H*W,): lattice coordinates
    (long) and the offset of the pixel from that lattice point times the point's falloff. Cached: it depends only on the
    grid, so a training run computes it once per octave."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float64) / frequency,
        torch.arange(w, device=device, dtype=torch.float64) / frequency,
        indexing="ij",
    )
    x, y = xs.reshape(-1), ys.reshape(-1)
    stretch = (x + y) * _STRETCH
    xsf, ysf = torch.floor(x + stretch), torch.floor(y + stretch)
    squish = (xsf + ysf) * _SQUISH
    dx0, dy0 = x - (xsf + squish), y - (ysf + squish)
    xins, yins = x + stretch - xsf, y + stretch - ysf
    in_sum = xins + yins
    xsb, ysb = xsf.long(), ysf.long()
    s1, s2 = _SQUISH, 2 * _SQUISH

    lower = in_sum <= 1  # inside the triangle at (0,0), else the one at (1,1)
    x_gt_y = xins > yins
    # Lower triangle: the extra vertex depends on which two vertices are closest.
    z_lo = 1 - in_sum
    lo_near0 = (z_lo > xins) | (z_lo > yins)
    lo_ext = (
        torch.where(lo_near0, torch.where(x_gt_y, xsb + 1, xsb - 1), xsb + 1),
        torch.where(lo_near0, torch.where(x_gt_y, ysb - 1, ysb + 1), ysb + 1),
        torch.where(lo_near0, torch.where(x_gt_y, dx0 - 1, dx0 + 1), dx0 - 1 - s2),
        torch.where(lo_near0, torch.where(x_gt_y, dy0 + 1, dy0 - 1), dy0 - 1 - s2),
    )
    # Upper triangle.
    z_hi = 2 - in_sum
    hi_near0 = (z_hi < xins) | (z_hi < yins)
    hi_ext = (
        torch.where(hi_near0, torch.where(x_gt_y, xsb + 2, xsb), xsb),
        torch.where(hi_near0, torch.where(x_gt_y, ysb, ysb + 2), ysb),
        torch.where(hi_near0, torch.where(x_gt_y, dx0 - 2 - s2, dx0 - s2), dx0),
        torch.where(hi_near0, torch.where(x_gt_y, dy0 - s2, dy0 - 2 - s2), dy0),
    )
    ext = tuple(torch.where(lower, a, b) for a, b in zip(lo_ext, hi_ext))
    base = (
        torch.where(lower, xsb, xsb + 1),
        torch.where(lower, ysb, ysb + 1),
        torch.where(lower, dx0, dx0 - 1 - s2),
        torch.where(lower, dy0, dy0 - 1 - s2),
    )
    right = (xsb + 1, ysb, dx0 - 1 - s1, dy0 - s1)
    up = (xsb, ysb + 1, dx0 - s1, dy0 - 1 - s1)
    points = []
    for xsv, ysv, dx, dy in (right, up, base, ext):
        # The radial falloff (2 - |d|^2)_+^4 depends only on the grid: fold it into d.
        falloff = (2 - dx * dx - dy * dy).clamp_min(0) ** 4 / _NORM
        points.append((xsv & 0xFF, ysv, (falloff * dx).float(), (falloff * dy).float()))
    return points


def _octave(perm: Tensor, lattice, grads: Tensor) -> Tensor:
    """perm: (B, 256) long; returns (B, H*W) OpenSimplex values in about [-1, 1]."""
    b = perm.shape[0]
    value = 0
    for xsv, ysv, wdx, wdy in lattice:
        first = perm.gather(1, xsv.expand(b, -1))
        index = perm.gather(1, (first + ysv) & 0xFF) & 0x0E  # gradient pair, as in OpenSimplex
        value = value + grads[index] * wdx + grads[index + 1] * wdy
    return value


def simplex_noise(
    shape: tuple[int, ...],
    *,
    octaves: int = 6,
    persistence: float = 0.8,
    frequency: float = 64.0,
    shared: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Fractal OpenSimplex noise, shape (N, C, H, W); one independent 2D map per (n, c).

    shared=True draws a single map and repeats it over N and C (the reference's behaviour).
    Amplitudes are 1, p, p^2, ...; the sum is not rescaled (as in the reference): its std
    over many 96x96 maps is about 0.57 with the defaults, not 1."""
    if len(shape) != 4:
        raise ValueError(f"simplex_noise expects shape (N, C, H, W), got {tuple(shape)}")
    n, c, h, w = shape
    device = torch.device(device) if device is not None else torch.device("cpu")
    maps = 1 if shared else n * c
    gen_device = generator.device if generator is not None else device
    keys = torch.rand(maps, 256, generator=generator, device=gen_device)
    perm = keys.argsort(dim=1).to(device)
    grads = torch.tensor(_GRADIENTS, dtype=torch.float32, device=device)
    noise = torch.zeros(maps, h * w, dtype=torch.float32, device=device)
    amplitude, freq = 1.0, float(frequency)
    for _ in range(octaves):
        noise += amplitude * _octave(perm, _lattice(h, w, freq, device), grads)
        freq /= 2
        amplitude *= persistence
    noise = noise.to(dtype).reshape(maps, 1, h, w)
    if shared:
        return noise.expand(n, c, h, w).contiguous()
    return noise.reshape(n, c, h, w)
