"""Shared diffusion core for DDPM, pDDPM and cDDPM: schedules, q_sample, one-step x_0
reconstruction, simplex noise, the denoising UNet and pDDPM's grid boxes."""
from benchmark.diffusion.schedules import (
    DiffusionSchedule,
    cosine_betas,
    from_model_range,
    linear_betas,
    one_step_reconstruction,
    to_model_range,
)
from benchmark.diffusion.simplex import simplex_noise

__all__ = [
    "DiffusionSchedule",
    "cosine_betas",
    "from_model_range",
    "linear_betas",
    "one_step_reconstruction",
    "simplex_noise",
    "to_model_range",
]
