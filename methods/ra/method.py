"""RA: reversed autoencoder on a Soft-IntroVAE (Bercea et al., MIDL 2023), beta_rec = 16.

The encoder and the decoder play Soft-IntroVAE's introspective game with one Adam each,
alternating every batch (Lightning manual optimisation). ``training_losses`` computes the
same terms without stepping, for validation; its ``"loss"`` is the reconstruction MSE the
reference selects checkpoints on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .anomaly_map import SALIENCY_KINDS, Saliency, SaliencyKind, ra_anomaly_map
from .losses import (
    SoftIntroWeights,
    decoder_objective,
    embedding_loss,
    encoder_objective,
    kl_divergence,
    sum_squared_error,
)
from .network import SoftIntroVAE, reparameterize

__all__ = ["RA", "GameSteps", "soft_intro_losses"]


class GameSteps:
    """Optimiser hooks for the two halves of the game: ``begin(name)`` before the half's
    forward pass (freezes the other network), ``end(name, loss)`` back-propagates and steps."""

    def __init__(self, module: AnomalyMethod, optimizers: dict) -> None:
        self.module, self.optimizers = module, optimizers

    def begin(self, name: str) -> None:
        # toggle_optimizer sets requires_grad=False on every parameter outside this optimiser,
        # as the reference flips requires_grad before each half.
        self.module.toggle_optimizer(self.optimizers[name])

    def end(self, name: str, loss: Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad()
        self.module.manual_backward(loss)
        opt.step()
        self.module.untoggle_optimizer(opt)


def soft_intro_losses(vae: SoftIntroVAE, x: Tensor, w: SoftIntroWeights,
                      steps: GameSteps | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """One round of RA's game on x: (B, 1, H, W). With ``steps`` the encoder is updated after
    the first half and the decoder after the second, as the reference; without, the terms
    are only computed (validation). Returns (named terms, the decoder-half reconstruction
    D(z) detached: (B, 1, H, W), which PHANES masks with)."""
    scale = 1.0 / (x.shape[-1] * x.shape[-2])
    noise = torch.randn(x.shape[0], vae.z_dim, device=x.device)
    enc, dec = vae.encoder, vae.decoder

    # ---- 1. encoder half (reference RA_Trainer "Update E")
    if steps is not None:
        steps.begin("encoder")
    fake = dec(noise)
    mu, logvar, emb_x = enc(x)
    z = reparameterize(mu, logvar)
    rec = dec(z)
    rec_mu, rec_logvar, emb_rec = enc(rec.detach())
    rec_rec = dec(reparameterize(rec_mu, rec_logvar))
    fake_mu, fake_logvar, _ = enc(fake.detach())
    rec_fake = dec(reparameterize(fake_mu, fake_logvar))
    emb = embedding_loss(emb_x, emb_rec)
    loss_e, expelbo_rec, expelbo_fake = encoder_objective(
        w, scale, sum_squared_error(x, rec), kl_divergence(mu, logvar),
        sum_squared_error(rec, rec_rec), kl_divergence(rec_mu, rec_logvar),
        sum_squared_error(fake, rec_fake), kl_divergence(fake_mu, fake_logvar),
        emb,
    )
    mse = F.mse_loss(rec, x)
    if steps is not None:
        steps.end("encoder", loss_e)

    # ---- 2. decoder half (reference "Update D"): same z and noise, re-decoded
    if steps is not None:
        steps.begin("decoder")
    fake = dec(noise)
    rec = dec(z.detach())
    rec_mu, rec_logvar, _ = enc(rec)
    fake_mu, fake_logvar, _ = enc(fake)
    rec_rec = dec(reparameterize(rec_mu, rec_logvar).detach())
    rec_fake = dec(reparameterize(fake_mu, fake_logvar).detach())
    loss_d = decoder_objective(
        w, scale, sum_squared_error(x, rec), kl_divergence(rec_mu, rec_logvar),
        kl_divergence(fake_mu, fake_logvar), sum_squared_error(rec.detach(), rec_rec),
        sum_squared_error(fake.detach(), rec_fake),
    )
    if steps is not None:
        steps.end("decoder", loss_d)
    return {"loss": mse if steps is None else mse.detach(), "loss_e": loss_e.detach(),
            "loss_d": loss_d.detach(), "kl": kl_divergence(mu, logvar).mean().detach(),
            "emb": emb.detach(), "expelbo_rec": expelbo_rec.detach(),
            "expelbo_fake": expelbo_fake.detach()}, rec.detach()


@register_method("ra")
class RA(AnomalyMethod):
    """x: (N, 1, H, W) in [0, 1]; map = |CLAHE x_hat - CLAHE x| * saliency (see anomaly_map)."""

    family = "reconstruction"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.5x; not at inference: the CLAHE map turns float-rounding differences of the reconstruction into bin changes (up to 7e-3) for no speed gain
    channels_last = frozenset({"train"})
    paper = "Bercea et al., MIDL 2023 (PMLR 227)"
    epochs = {"paper": 1600, "reference": 40, "quick": 4, "smoke": 1}
    profiles = {
        "smoke": {"channels": (4, 4, 8, 8, 8), "latent_dim": 8, "saliency": "lpips_or_ssim"},
        "quick": {"channels": (8, 16, 32, 32, 32), "saliency": "lpips_or_ssim", "lr": 2e-4},
    }

    def __init__(self, *, lr: float = 5e-5, image_size: int = 96, latent_dim: int = 128,
                 channels: tuple[int, ...] = (64, 128, 256, 512, 512), beta_rec: float = 16.0,
                 beta_kl: float = 1.0, beta_neg: float = 128.0, gamma_r: float = 1e-8,
                 saliency: SaliencyKind = "lpips", sample_at_test: bool = False,
                 clahe: bool = True) -> None:
        """beta_rec: 16 as the cDDPM paper states (reference code 0.5).
        clahe: the paper's map compares CLAHE-equalised images; False compares the images
        themselves (an option, not RA: CLAHE flattens bright T2 tumours, see README).
        saliency: "lpips" (reference; errors if LPIPS cannot load), "ssim", or
        "lpips_or_ssim" (LPIPS where available); the one used is in result_tags().
        sample_at_test: decode a sampled z at test time (the reference's default forward);
        the default decodes z = mu for deterministic maps."""
        super().__init__()
        if saliency not in SALIENCY_KINDS:
            raise ValueError(f"saliency={saliency!r}; allowed: {', '.join(SALIENCY_KINDS)}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.vae = SoftIntroVAE(image_size, latent_dim, tuple(channels))
        self.weights = SoftIntroWeights(beta_rec, beta_kl, beta_neg, gamma_r)
        self.saliency = Saliency(saliency)

    def configure_optimizers(self):
        lr = self.hparams.lr
        return [torch.optim.Adam(self.vae.encoder.parameters(), lr=lr),
                torch.optim.Adam(self.vae.decoder.parameters(), lr=lr)]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._batch_size = batch["image"].shape[0]
        opt_e, opt_d = self.optimizers()
        steps = GameSteps(self, {"encoder": opt_e, "decoder": opt_d})
        losses, _ = soft_intro_losses(self.vae, batch["image"], self.weights, steps)
        self.log_losses(losses, "train")
        return losses["loss"].detach()  # for the learning curve (the steps are done)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return soft_intro_losses(self.vae, batch["image"], self.weights)[0]

    def result_tags(self) -> dict:
        return {"lpips": self.saliency.used == "lpips", "saliency": self.saliency.used,
                **({} if self.hparams.clahe else {"clahe": False})}

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        rec = self.vae(x, deterministic=not self.hparams.sample_at_test)[0]
        amap = ra_anomaly_map(x, rec, self.saliency, equalize=self.hparams.clahe)
        return AnomalyOutput(anomaly_map=amap, reconstruction=rec.clamp(0, 1),
                             score=amap.flatten(1).mean(dim=1))
