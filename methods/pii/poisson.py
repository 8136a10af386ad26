"""Poisson image interpolation (Tan et al., MICCAI 2021): synthetic anomalies for PII.

A square patch of a source slice is blended into a destination slice by solving the
discrete Poisson equation (Perez et al. 2003) with mixed, alpha-weighted gradients:
for every pixel p of the patch Omega and each 4-neighbour q,

    4 f_p - sum_{q in N(p) & Omega} f_q = sum_q v_pq + sum_{q in N(p) \\ Omega} dst_q,
    v_pq = alpha (src_p - src_q), unless (1 - alpha)|dst_p - dst_q| > alpha |src_p - src_q|,
           then (1 - alpha) (dst_p - dst_q),

and f = dst outside Omega (the system UPD's ``pii_utils.pii`` builds and hands to
``spsolve``). On a rectangle this operator is diagonalised by the type-I discrete sine
transform, so the solve is exact and costs four small matrix products:

    F = S_m [ (S_m B S_n) / (lambda_i + lambda_j) ] S_n * (2 / (m + 1)) * (2 / (n + 1)),
    S_m[i, k] = sin(pi (i + 1)(k + 1) / (m + 1)),  lambda_k = 2 - 2 cos(pi (k + 1) / (m + 1)).

Pure torch, on the batch's device; about 0.1 ms per patch instead of a sparse LU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_SHIFTS = ((1, 0), (-1, 0), (1, 1), (-1, 1))  # (shift, dim of (H, W)): the 4 neighbours


def _neighbour(x: Tensor, shift: int, dim: int) -> Tensor:
    """Value of the neighbour at offset -shift along dim (edges replicate; never used there)."""
    return torch.roll(x, shifts=shift, dims=dim - 2)


def mixed_guidance(dst: Tensor, src: Tensor, alpha: float) -> Tensor:
    """sum_q v_pq over the four neighbours. dst, src: (H, W) -> (H, W)."""
    guide = torch.zeros_like(dst)
    for shift, dim in _SHIFTS:
        g_dst = dst - _neighbour(dst, shift, dim)
        g_src = src - _neighbour(src, shift, dim)
        use_dst = (1 - alpha) * g_dst.abs() > alpha * g_src.abs()
        guide += torch.where(use_dst, (1 - alpha) * g_dst, alpha * g_src)
    return guide


def _dst_basis(n: int, device, dtype) -> tuple[Tensor, Tensor]:
    k = torch.arange(1, n + 1, device=device, dtype=dtype)
    basis = torch.sin(math.pi * k[:, None] * k[None, :] / (n + 1))
    return basis, 2 - 2 * torch.cos(math.pi * k / (n + 1))


def solve_dirichlet_poisson(rhs: Tensor) -> Tensor:
    """Solve (4 I - A) f = rhs on an m x n grid, zero outside (A = 4-neighbour adjacency).

    rhs: (m, n) -> f: (m, n). Exact up to float rounding (DST-I diagonalisation).
    """
    m, n = rhs.shape
    s_m, lam_m = _dst_basis(m, rhs.device, rhs.dtype)
    s_n, lam_n = _dst_basis(n, rhs.device, rhs.dtype)
    coeff = (s_m @ rhs @ s_n) / (lam_m[:, None] + lam_n[None, :])
    return (s_m @ coeff @ s_n) * (4.0 / ((m + 1) * (n + 1)))


def poisson_blend(dst: Tensor, src: Tensor, box: tuple[int, int, int, int],
                  alpha: float) -> Tensor:
    """Blend src into dst on box = (top, bottom, left, right) (exclusive ends), unclipped.

    dst, src: (H, W); the box must not touch the image border. Returns (H, W), equal to
    dst outside the box and solving the mixed-gradient Poisson equation inside.
    """
    t, b, l, r = box
    if t < 1 or l < 1 or b > dst.shape[0] - 1 or r > dst.shape[1] - 1 or t >= b or l >= r:
        raise ValueError(f"box {box} must be non-empty and inside the image border")
    inside = torch.zeros_like(dst)
    inside[t:b, l:r] = 1
    rhs = mixed_guidance(dst, src, alpha)
    for shift, dim in _SHIFTS:  # known boundary values move to the right-hand side
        rhs += _neighbour(dst, shift, dim) * (1 - _neighbour(inside, shift, dim))
    out = dst.clone()
    out[t:b, l:r] = solve_dirichlet_poisson(rhs[t:b, l:r])
    return out


@dataclass
class PIIBatch:
    """image: (B, 1, H, W) blended slices; label: (B, 1, H, W) per-pixel interpolation factor;
    boxes: (top, bottom, left, right) per slice; alphas: (B,) interpolation factors."""
    image: Tensor
    label: Tensor
    boxes: list[tuple[int, int, int, int]]
    alphas: Tensor


def sample_box(img: Tensor, gen: torch.Generator, min_p: float = 0.1, max_p: float = 0.4,
               core: float = 0.8) -> tuple[int, int, int, int]:
    """UPD ``create_patch_mask``: square of width U{round(0.1 W), round(0.4 W) - 1}, centre
    uniform over non-zero pixels of the central 80 %, clipped to the image minus its border.
    img: (H, W)."""
    h, w = img.shape
    width = int(torch.randint(round(min_p * w), round(max_p * w), (1,), generator=gen))
    lo_y, hi_y = math.floor((1 - core) * h / 2), math.ceil((1 + core) * h / 2)
    lo_x, hi_x = math.floor((1 - core) * w / 2), math.ceil((1 + core) * w / 2)
    region = torch.zeros(h, w, dtype=torch.bool)
    region[lo_y:hi_y, lo_x:hi_x] = True
    cand = region & (img.cpu() != 0)
    if not cand.any():  # empty slice: any central pixel
        cand = region
    idx = cand.flatten().nonzero().squeeze(1)
    c = int(idx[torch.randint(len(idx), (1,), generator=gen)])
    cy, cx = divmod(c, w)
    half = width // 2
    t, b = max(cy - half, 1), min(cy + half, h - 1)
    l, r = max(cx - half, 1), min(cx + half, w - 1)
    return t, max(b, t + 1), l, max(r, l + 1)


def pii_batch(dst: Tensor, src: Tensor, gen: torch.Generator | None = None,
              alpha_range: tuple[float, float] = (0.05, 0.95)) -> PIIBatch:
    """Poisson-interpolate one patch of src[i] into dst[i] for every slice (UPD ``pii``).

    dst, src: (B, 1, H, W) in [0, 1]. label = alpha inside the patch where dst != src;
    the result is clipped to [min dst, max dst]; image and label are zeroed outside the
    foreground (dst > min dst), as the reference does for MRI.
    """
    gen = gen or torch.Generator().manual_seed(int(torch.randint(2 ** 31, (1,))))
    images, labels, boxes = [], [], []
    alphas = torch.empty(dst.shape[0]).uniform_(*alpha_range, generator=gen)
    for d, s, a in zip(dst[:, 0], src[:, 0], alphas.tolist()):
        box = sample_box(d, gen)
        t, b, l, r = box
        blended = poisson_blend(d, s, box, a).clamp(d.min(), d.max())
        label = torch.zeros_like(d)
        label[t:b, l:r] = a * (d[t:b, l:r] != s[t:b, l:r]).to(d.dtype)
        fg = (d > d.min()).to(d.dtype)
        images.append(blended * fg)
        labels.append(label * fg)
        boxes.append(box)
    return PIIBatch(torch.stack(images)[:, None], torch.stack(labels)[:, None], boxes, alphas)
