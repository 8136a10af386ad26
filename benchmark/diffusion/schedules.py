"""Noise schedules, the forward process q(x_t | x_0) and the one-step x_0 reconstruction.

Indexing convention (the same as the cDDPM authors' code and MONAI's schedulers): the
paper's time step t in {1, ..., T} is stored at index ``t - 1``; ``alphas_cumprod[t - 1]``
is the paper's bar-alpha_t = prod_{s<=t} (1 - beta_s) (paper Eq. 2). The network's time
embedding receives the index (0 ... T-1), as in the reference, so "t = 500 at test time"
means index 499. ``alphas_cumprod[-1]`` (t = T) is ~2.4e-9: x_T is pure noise.

The schedules are computed in float64 like the reference (MONAI's ``DDPMScheduler`` with
``schedule="cosine"`` gives the same numbers in float32, up to ~5e-7; we keep our own so
the numbers are exactly the reference's and the module has no scheduler state to carry).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

ScheduleName = Literal["cosine", "linear"]
SCHEDULES = ("cosine", "linear")


def cosine_betas(timesteps: int = 1000, s: float = 0.008) -> Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, Eq. 17): bar-alpha(t) = f(t)/f(0),
    f(t) = cos((t/T + s)/(1 + s) * pi/2)^2; betas clipped at 0.999 so t = T stays finite.
    Returns (T,) float64."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    f = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = f / f[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(0, 0.999)


def linear_betas(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Linear schedule of Ho et al. 2020, rescaled so T != 1000 keeps the same endpoints
    in bar-alpha. Returns (T,) float64."""
    scale = 1000 / timesteps
    return torch.linspace(scale * beta_start, scale * beta_end, timesteps, dtype=torch.float64)


def make_betas(schedule: str, timesteps: int) -> Tensor:
    if schedule == "cosine":
        return cosine_betas(timesteps)
    if schedule == "linear":
        return linear_betas(timesteps)
    raise ValueError(f"unknown noise schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")


def _per_sample(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """values: (T,); t: (N,) long indices -> (N, 1, ..., 1) with ndim dims."""
    return values.gather(0, t).reshape(-1, *([1] * (ndim - 1)))


class DiffusionSchedule(nn.Module):
    """Holds bar-alpha_t as buffers (float32, moved with the model) and applies q(x_t|x_0).

    ``t`` arguments are 0-based indices (see module docstring), shape (N,) long or an int.
    """

    def __init__(self, schedule: ScheduleName = "cosine", timesteps: int = 1000):
        super().__init__()
        betas = make_betas(schedule, timesteps)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.schedule = schedule
        self.num_timesteps = int(timesteps)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt().float(), persistent=False)
        self.register_buffer(
            "sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt().float(), persistent=False
        )

    def index(self, t: int | Tensor, n: int) -> Tensor:
        """An int or (N,) tensor of 0-based indices -> (N,) long on the buffers' device."""
        device = self.alphas_cumprod.device
        if isinstance(t, int):
            t = torch.full((n,), t, dtype=torch.long, device=device)
        t = t.to(device=device, dtype=torch.long)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_timesteps):
            raise ValueError(f"time index out of range 0..{self.num_timesteps - 1}: {t.tolist()}")
        return t

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """t ~ Uniform{1, ..., T} (paper Sec. 4.4), returned as 0-based indices (N,)."""
        device = self.alphas_cumprod.device
        gen_device = generator.device if generator is not None else device
        t = torch.randint(0, self.num_timesteps, (n,), generator=generator, device=gen_device)
        return t.to(device)

    def q_sample(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(bar-alpha_t) x_0 + sqrt(1 - bar-alpha_t) noise (paper Eq. 1).

        x0, noise: (N, C, H, W) in the model's range ([-1, 1]); t: index or (N,) indices."""
        t = self.index(t, x0.shape[0])
        a = _per_sample(self.sqrt_alphas_cumprod, t, x0.ndim).to(x0.dtype)
        s = _per_sample(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim).to(x0.dtype)
        return a * x0 + s * noise

    def predict_x0_from_noise(self, x_t: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        """Inverts q_sample for a noise prediction: x_0 = (x_t - sqrt(1-bar-a) eps)/sqrt(bar-a).

        Only needed for an eps-predicting network; the paper's networks predict x_0 directly."""
        t = self.index(t, x_t.shape[0])
        a = _per_sample(self.sqrt_alphas_cumprod, t, x_t.ndim).to(x_t.dtype)
        s = _per_sample(self.sqrt_one_minus_alphas_cumprod, t, x_t.ndim).to(x_t.dtype)
        return (x_t - s * eps) / a


def to_model_range(x: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1] (the reference's normalize_to_neg_one_to_one)."""
    return x * 2 - 1


def from_model_range(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]. Not clamped: the residual |x - x_rec| uses the raw prediction."""
    return (x + 1) / 2


def one_step_reconstruction(
    denoise,
    schedule: DiffusionSchedule,
    x0: Tensor,
    t: int | Tensor,
    noise: Tensor,
) -> Tensor:
    """The paper's test-time reconstruction (Sec. 3.1): noise x_0 to x_t, then ONE network call.

    denoise: callable (x_t (N,C,H,W), t (N,) long) -> x_0 prediction, in [-1, 1] units.
    x0: (N, C, H, W) in [-1, 1]; t: 0-based index; noise: like x0.
    Returns the x_0 prediction (N, C, H, W) in [-1, 1] units (no iterative sampling)."""
    t = schedule.index(t, x0.shape[0])
    x_t = schedule.q_sample(x0, t, noise)
    return denoise(x_t, t)
