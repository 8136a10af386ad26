"""Loss terms of RA: Soft-IntroVAE (Daniel & Tamar, CVPR 2021) + reversed embedding loss.

Checked against ci-ber/RA ``projects/23_ra_midl/RA_Trainer.py`` and
``optim/losses/image_losses.py::EmbeddingLoss``. Notation: s = 1 / (H * W), L_rec = per-image
sum of squared errors (batch mean), KL = per-image KL to N(0, I) summed over latent dims.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample: (N, d) -> (N,)."""
    return -0.5 * (1 + logvar - logvar.exp() - mu.pow(2)).sum(dim=1)


def sum_squared_error(x: Tensor, y: Tensor) -> Tensor:
    """Per-image sum of squared errors: (N, ...) -> (N,)."""
    return (x - y).pow(2).flatten(1).sum(dim=1)


def embedding_loss(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """RA's reversed embedding loss between the encoder's multi-scale features of x and of
    its reconstruction: sum_k [0.5 * MSE(a_k, b_k) + mean_n(1 - cos(flat a_k, flat b_k))]."""
    total = a[0].new_zeros(())
    for fa, fb in zip(a, b):
        cosine = F.cosine_similarity(fa.flatten(1), fb.flatten(1), dim=1)
        total = total + 0.5 * F.mse_loss(fa, fb) + (1 - cosine).mean()
    return total


@dataclass(frozen=True)
class SoftIntroWeights:
    """beta_rec = 16 as the cDDPM paper states for RA/PHANES (reference code: 0.5)."""

    beta_rec: float = 16.0
    beta_kl: float = 1.0
    beta_neg: float = 128.0
    gamma_r: float = 1e-8
    embedding: float = 0.005


def encoder_objective(w: SoftIntroWeights, scale: float, rec_err: Tensor, kl_real: Tensor,
                      rec_err_rec: Tensor, kl_rec: Tensor, rec_err_fake: Tensor,
                      kl_fake: Tensor, emb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Encoder loss of the introspective game (Soft-IntroVAE Eq. 7 + RA's embedding term).

    rec_err, kl_real: (N,) for real x; *_rec / *_fake: (N,) for the re-encoded
    reconstructions r = D(z) and samples f = D(eps). Returns (L_E, expelbo_rec, expelbo_fake):
    L_E = s (b_rec L_rec(x) + b_kl KL(x)) + 1/4 (E[exp(-2 s ELBO'(r))] + E[exp(-2 s ELBO'(f))])
          + 0.005 L_emb, with ELBO'(.) = b_rec L_rec + b_neg KL.
    """
    expelbo_rec = torch.exp(-2 * scale * (w.beta_rec * rec_err_rec + w.beta_neg * kl_rec)).mean()
    expelbo_fake = torch.exp(-2 * scale * (w.beta_rec * rec_err_fake + w.beta_neg * kl_fake)).mean()
    real = scale * (w.beta_rec * rec_err.mean() + w.beta_kl * kl_real.mean())
    return real + 0.25 * (expelbo_rec + expelbo_fake) + w.embedding * emb, expelbo_rec, expelbo_fake


def decoder_objective(w: SoftIntroWeights, scale: float, rec_err: Tensor, kl_rec: Tensor,
                      kl_fake: Tensor, rec_err_rec: Tensor, rec_err_fake: Tensor) -> Tensor:
    """Decoder loss (Soft-IntroVAE Eq. 8): s (b_rec L_rec(x) + b_kl/2 (KL(r) + KL(f))
    + gamma_r b_rec / 2 (L_rec(r) + L_rec(f))), all terms batch means."""
    return scale * (w.beta_rec * rec_err.mean()
                    + 0.5 * w.beta_kl * (kl_rec.mean() + kl_fake.mean())
                    + 0.5 * w.gamma_r * w.beta_rec * (rec_err_rec.mean() + rec_err_fake.mean()))
