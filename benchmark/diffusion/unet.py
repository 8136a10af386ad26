"""The denoising UNet shared by DDPM, pDDPM and cDDPM (guided-diffusion style).

Architecture as in the cDDPM authors' code (an OpenAI guided-diffusion UNet configured
with ``unet_dim=128, dim_mults=[1,2,2], num_res_blocks=3, use_scale_shift_norm=True,
resblock_updown=True, num_head_channels=64``, dropout 0, attention only in the middle):

    conv3x3(1 -> 128)
    level 0 (96 px): 3 x ResBlock(128)                      -> ResBlock down
    level 1 (48 px): 3 x ResBlock(256)                      -> ResBlock down
    level 2 (24 px): 3 x ResBlock(256)
    middle  (24 px): ResBlock(256), self-attention (4 heads of 64), ResBlock(256)
    decoder: per level 4 x ResBlock on [h, skip] (+ ResBlock up at the end of levels 2, 1)
    GroupNorm, SiLU, zero-initialised conv3x3(128 -> 1)

Every ResBlock is FiLM-conditioned on the embedding e (paper Sec. 3.2):
``h = GroupNorm(h) * (1 + scale) + shift`` with (scale, shift) = Linear(SiLU(e)).
e = MLP_t(sinusoid(t)) (128 -> 512 -> 512) and, with a condition vector c, e is the
concatenation [MLP_t(sinusoid(t)), MLP_c(c)] (cond_dim -> 512 -> 512), as in the reference.

MONAI's DiffusionModelUNet was checked and does not fit: its ResBlocks add the time
embedding (no scale-shift norm) and class conditioning is an nn.Embedding added to the
time embedding, not a vector concatenated to it. Plain torch; imports without Lightning.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of t: (N,) -> (N, dim), [cos, sin] halves."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (stable under fp16 autocast), cast back to the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


def _norm(channels: int, groups: int) -> GroupNorm32:
    if channels % groups:
        raise ValueError(
            f"norm_groups={groups} must divide every channel count of the UNet (got {channels}); "
            "pick base_channels as a multiple of norm_groups"
        )
    return GroupNorm32(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer so each residual branch starts as the identity (guided-diffusion)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block with FiLM (scale-shift norm); optionally resamples by 2 (up or down).

    x: (N, C_in, H, W), emb: (N, emb_dim) -> (N, C_out, H', W')."""

    def __init__(self, c_in: int, emb_dim: int, c_out: int, groups: int, resample: str = "none"):
        super().__init__()
        self.norm_in = _norm(c_in, groups)
        self.conv_in = nn.Conv2d(c_in, c_out, 3, padding=1)
        if resample == "up":
            self.resample = nn.Upsample(scale_factor=2, mode="nearest")
        elif resample == "down":
            self.resample = nn.AvgPool2d(2)
        elif resample == "none":
            self.resample = nn.Identity()
        else:
            raise ValueError(f"resample must be one of none, up, down; got {resample!r}")
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * c_out))
        self.norm_out = _norm(c_out, groups)
        self.conv_out = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        # Resample between the activation and the conv, as guided-diffusion's resblock_updown.
        h = self.conv_in(self.resample(F.silu(self.norm_in(x))))
        x = self.resample(x)
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm_out(h) * (1 + scale) + shift  # f' = f * (gamma + 1) + beta (Sec. 3.2)
        h = self.conv_out(F.silu(h))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of (N, C, H, W), residual, zero-init output."""

    def __init__(self, channels: int, head_channels: int, groups: int):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        if channels % self.heads:
            raise ValueError(f"attention: {channels} channels do not split into {self.heads} heads")
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x).reshape(n, c, h * w)).chunk(3, dim=1)
        split = lambda z: z.reshape(n, self.heads, c // self.heads, h * w).transpose(-1, -2)
        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        out = out.transpose(-1, -2).reshape(n, c, h * w)
        return x + self.proj(out).reshape(n, c, h, w)


class DiffusionUNet(nn.Module):
    """x_t: (N, in_ch, H, W), t: (N,) 0-based indices, cond: (N, cond_dim) or None
    -> (N, out_ch, H, W) (the x_0 prediction in the paper's setting). H, W divisible by
    2^(len(channel_mult)-1)."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 128,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 3,
        head_channels: int = 64,
        norm_groups: int = 32,
        cond_dim: int | None = None,
    ):
        super().__init__()
        self.base_channels = base_channels
        self.cond_dim = cond_dim
        emb = 4 * base_channels
        self.time_embed = nn.Sequential(
            nn.Linear(base_channels, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        self.cond_embed = None
        if cond_dim is not None:
            self.cond_embed = nn.Sequential(nn.Linear(cond_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
            emb = 2 * emb  # [c_t, c] concatenated (paper: c' in R^{2d})
        self.emb_dim = emb
        g = norm_groups

        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [base_channels], base_channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, emb, base_channels * mult, g))
                ch = base_channels * mult
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(ResBlock(ch, emb, ch, g, resample="down"))
                skips.append(ch)
        self.mid = nn.ModuleList(
            [ResBlock(ch, emb, ch, g), SelfAttention(ch, head_channels, g), ResBlock(ch, emb, ch, g)]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                block = [ResBlock(ch + skips.pop(), emb, base_channels * mult, g)]
                ch = base_channels * mult
                if level > 0 and i == num_res_blocks:
                    block.append(ResBlock(ch, emb, ch, g, resample="up"))
                self.up.append(nn.ModuleList(block))
        self.norm_out = _norm(ch, g)
        self.conv_out = _zero(nn.Conv2d(ch, out_channels, 3, padding=1))

    def embed(self, t: Tensor, cond: Tensor | None) -> Tensor:
        """t: (N,), cond: (N, cond_dim) or None -> e: (N, emb_dim)."""
        e = self.time_embed(timestep_embedding(t, self.base_channels))
        if self.cond_embed is not None:
            if cond is None:
                raise ValueError("this UNet was built with cond_dim; pass cond=(N, cond_dim)")
            e = torch.cat([e, self.cond_embed(cond.to(e.dtype))], dim=1)
        elif cond is not None:
            raise ValueError("this UNet has no condition input (cond_dim=None) but cond was given")
        return e

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        e = self.embed(t, cond)
        h = self.conv_in(x)
        hs = [h]
        for block in self.down:
            h = block(h, e)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, e)), e)
        for blocks in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            for block in blocks:
                h = block(h, e)
        return self.conv_out(F.silu(self.norm_out(h)))
