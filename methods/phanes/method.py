"""PHANES: pseudo-healthy generative networks (Bercea et al., MICCAI 2023).

Stage 1 is RA (Soft-IntroVAE, beta_rec = 16) giving a coarse pseudo-healthy x_hat; its
CLAHE residual x saliency is thresholded into a mask of likely anomalies (0.15 in training,
0.10 at test, as the cDDPM paper states); stage 2, an AOT-GAN generator, inpaints the masked
region with healthy tissue, trained with L1 + VGG style/perceptual + an SM-GAN adversarial
term. Both stages train jointly, four Adam optimisers, Lightning manual optimisation.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method
from methods.ra.anomaly_map import SALIENCY_KINDS, Saliency, SaliencyKind, phanes_coarse_map
from methods.ra.losses import SoftIntroWeights
from methods.ra.method import GameSteps, soft_intro_losses
from methods.ra.network import SoftIntroVAE

from .losses import VGG_CHOICES, VGGChoice, VGGLoss, smgan_discriminator_loss, smgan_generator_loss
from .network import Discriminator, InpaintGenerator, binarize_anomaly_mask, random_ellipse_masks

__all__ = ["PHANES"]


@register_method("phanes")
class PHANES(AnomalyMethod):
    """x: (N, 1, H, W) in [0, 1]; map = |x - y| * S(y, x), y the inpainted pseudo-healthy x."""

    family = "reconstruction"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.3x, inference 1.2x
    channels_last = frozenset({"train", "infer"})
    paper = "Bercea et al., MICCAI 2023"
    epochs = {"paper": 1600, "reference": 40, "quick": 3, "smoke": 1}
    profiles = {
        "smoke": {"channels": (4, 4, 8, 8, 8), "latent_dim": 8, "gen_channels": 4, "gen_blocks": 1,
                  "disc_channels": 4, "saliency": "lpips_or_ssim", "vgg_loss": "vgg19_or_off"},
        # -1: the per-slice 95th percentile (the reference code's choice). The paper's 0.15 /
        # 0.10 are on the LPIPS map's scale; the SSIM saliency these CPU profiles fall back to
        # puts a healthy slice's map above 0.10 almost everywhere, and the mask then covered
        # the whole brain (README, "Thresholds")
        "quick": {"channels": (8, 16, 32, 32, 32), "gen_channels": 8, "gen_blocks": 2,
                  "disc_channels": 8, "saliency": "lpips_or_ssim", "vgg_loss": "vgg19_or_off",
                  "lr": 2e-4, "mask_threshold_train": -1.0, "mask_threshold_test": -1.0},
    }

    def __init__(self, *, lr: float = 5e-5, image_size: int = 96, latent_dim: int = 128,
                 channels: tuple[int, ...] = (64, 128, 256, 512, 512), beta_rec: float = 16.0,
                 beta_kl: float = 1.0, beta_neg: float = 128.0, gamma_r: float = 1e-8,
                 mask_threshold_train: float = 0.15, mask_threshold_test: float = 0.10,
                 synthetic_masks: int = 10, gen_channels: int = 64, gen_blocks: int = 8,
                 gen_rates: tuple[int, ...] = (1, 2, 4, 8),
                 disc_channels: int = 64, l1_weight: float = 1.0, style_weight: float = 250.0,
                 perceptual_weight: float = 0.1, adv_weight: float = 0.01,
                 saliency: SaliencyKind = "lpips", vgg_loss: VGGChoice = "vgg19",
                 clahe: bool = True) -> None:
        """mask_threshold_train/test: 0.15 / 0.10 (cDDPM paper); a negative value uses the
        per-slice 95th percentile of the map, as the reference's get_anomaly does.
        synthetic_masks: random ellipses OR-ed into the training mask (reference: 10).
        adv_weight: generator SM-GAN weight, back-propagated (the reference code computes it
        but never back-propagates it; 0 reproduces the code).
        saliency / vgg_loss: see methods/ra/anomaly_map.py and methods/phanes/losses.py.
        clahe: the likely-anomaly map compares CLAHE-equalised images (paper); False compares
        the images themselves (an option, not PHANES; see README)."""
        super().__init__()
        if saliency not in SALIENCY_KINDS:
            raise ValueError(f"saliency={saliency!r}; allowed: {', '.join(SALIENCY_KINDS)}")
        if vgg_loss not in VGG_CHOICES:
            raise ValueError(f"vgg_loss={vgg_loss!r}; allowed: {', '.join(VGG_CHOICES)}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.vae = SoftIntroVAE(image_size, latent_dim, tuple(channels))
        self.net_g = InpaintGenerator(gen_channels, gen_blocks, tuple(gen_rates))
        self.net_d = Discriminator(disc_channels)
        self.weights = SoftIntroWeights(beta_rec, beta_kl, beta_neg, gamma_r)
        self.saliency = Saliency(saliency)
        self.vgg = VGGLoss(vgg_loss)

    def configure_optimizers(self):
        lr = self.hparams.lr
        return [torch.optim.Adam(m.parameters(), lr=lr)
                for m in (self.vae.encoder, self.vae.decoder, self.net_g, self.net_d)]

    def _threshold(self, value: float) -> float | None:
        return None if value < 0 else value

    def likely_anomalies(self, x: Tensor, x_hat: Tensor, threshold: float) -> Tensor:
        """Binary mask (N, 1, H, W) of likely anomalies from the coarse reconstruction."""
        amap = phanes_coarse_map(x, x_hat, self.saliency, equalize=self.hparams.clahe)
        return binarize_anomaly_mask(amap, self._threshold(threshold))

    def _generator_terms(self, x: Tensor, coarse: Tensor) -> dict[str, Tensor]:
        """Masked input -> inpainting; returns the mask, composite and G's loss terms."""
        mask = self.likely_anomalies(x, coarse, self.hparams.mask_threshold_train)
        if self.hparams.synthetic_masks > 0:
            # seeded from torch so seed_everything makes the holes reproducible
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            holes = random_ellipse_masks(x.shape[0], x.shape[-1], self.hparams.synthetic_masks,
                                         generator=rng).to(x)
            mask = torch.maximum(mask, holes)
        masked = x * (1 - mask) + mask  # holes set to 1, as the reference
        pred = self.net_g(masked, mask)
        comp = (1 - mask) * x + mask * pred
        perceptual, style = self.vgg(pred.clamp(0, 1), x)
        l1 = F.l1_loss(pred, x)
        adv = smgan_generator_loss(self.net_d, comp, mask)
        h = self.hparams
        loss_g = (h.l1_weight * l1 + h.style_weight * style + h.perceptual_weight * perceptual
                  + h.adv_weight * adv)
        return {"mask": mask, "comp": comp, "loss_g": loss_g, "g_l1": l1, "g_adv": adv,
                "g_style": style, "g_perceptual": perceptual}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["image"]
        self._batch_size = x.shape[0]
        opt_e, opt_d, opt_g, opt_disc = self.optimizers()
        ra_losses, coarse = soft_intro_losses(
            self.vae, x, self.weights, GameSteps(self, {"encoder": opt_e, "decoder": opt_d}))
        steps = GameSteps(self, {"generator": opt_g, "discriminator": opt_disc})
        steps.begin("generator")
        g = self._generator_terms(x, coarse)
        steps.end("generator", g["loss_g"])
        steps.begin("discriminator")
        loss_disc = smgan_discriminator_loss(self.net_d, g["comp"], x, g["mask"])
        steps.end("discriminator", loss_disc)
        losses = self._merge(ra_losses, g, loss_disc)
        self.log_losses({k: v.detach() for k, v in losses.items()}, "train")
        return losses["loss"].detach()  # for the learning curve (the steps are done)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        ra_losses, coarse = soft_intro_losses(self.vae, x, self.weights)
        g = self._generator_terms(x, coarse)
        return self._merge(ra_losses, g, smgan_discriminator_loss(self.net_d, g["comp"], x,
                                                                  g["mask"]))

    @staticmethod
    def _merge(ra_losses: dict, g: dict, loss_disc: Tensor) -> dict[str, Tensor]:
        # "loss" (checkpoint choice) = coarse reconstruction MSE + generator L1 on healthy data
        out = {k: v for k, v in ra_losses.items() if k != "loss"}
        out.update({k: v for k, v in g.items() if k not in ("mask", "comp")})
        out.update(loss_disc=loss_disc, rec_mse=ra_losses["loss"],
                   mask_fraction=g["mask"].mean(), loss=ra_losses["loss"] + g["g_l1"])
        return out

    def result_tags(self) -> dict:
        return {"lpips": self.saliency.used == "lpips", "saliency": self.saliency.used,
                "vgg": self.vgg.used == "vgg19", **({} if self.hparams.clahe else {"clahe": False})}

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        coarse = self.vae(x, deterministic=True)[0]
        mask = self.likely_anomalies(x, coarse, self.hparams.mask_threshold_test)
        inpainted = self.net_g(x * (1 - mask) + mask, mask).clamp(0, 1)
        y = (1 - mask) * x + mask * inpainted
        amap = (x - y).abs() * self.saliency(y, x)
        return AnomalyOutput(anomaly_map=amap, reconstruction=y,
                             score=amap.flatten(1).mean(dim=1))
