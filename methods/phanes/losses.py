"""PHANES generator/discriminator losses (AOT-GAN's, as ci-ber/PHANES uses them).

Reference: ``model_zoo/aotgan/loss/loss.py`` (L1, Style, Perceptual, smgan) and
``projects/phanes/PhanesTrainer.py`` (rec_loss = 1*L1 + 250*Style + 0.1*Perceptual,
adv_weight 0.01). The VGG19 terms need torchvision and ImageNet weights; where they cannot be
loaded the ``vgg_loss`` setting decides (see :class:`VGGLoss`).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.backbones import weights_wanted

VGGChoice = Literal["vgg19", "off", "vgg19_or_off"]
VGG_CHOICES = ("vgg19", "off", "vgg19_or_off")

# torchvision vgg19.features indices of relu1_1..relu5_1 (perceptual) and
# relu2_2, relu3_4, relu4_4, relu5_2 (style), as AOT-GAN's VGG19 wrapper names them.
PERCEPTUAL_LAYERS = (1, 6, 11, 20, 29)
STYLE_LAYERS = (8, 17, 26, 31)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_vgg19() -> tuple[nn.Module | None, str]:
    try:
        from torchvision.models import VGG19_Weights, vgg19

        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features[:32].eval(), ""
    except Exception as exc:  # noqa: BLE001 - torchvision missing/broken, or the weight download failed
        return None, f"{type(exc).__name__}: {exc}"


def gram(f: Tensor) -> Tensor:
    """Gram matrix normalised by C*H*W: (N, C, H, W) -> (N, C, C)."""
    _, c, h, w = f.shape
    f = f.flatten(2)
    return f @ f.transpose(1, 2) / (c * h * w)


class VGGLoss:
    """Perceptual (L1 of relu*_1 features) and style (L1 of Gram matrices) losses of VGG19.

    choice: "vgg19" (reference; errors if torchvision or the weights are unavailable), "off"
    (both terms are 0), "vgg19_or_off" (VGG19 where it loads). ``used`` says which ran.
    Kept outside the nn.Module tree: the frozen VGG must not enter checkpoints or optimisers.
    Inputs are (N, 1, H, W) in [0, 1], repeated to 3 channels and ImageNet-normalised.
    """

    def __init__(self, choice: VGGChoice = "vgg19") -> None:
        if choice not in VGG_CHOICES:
            raise ValueError(f"vgg_loss={choice!r}; allowed: {', '.join(VGG_CHOICES)}")
        self.vgg = None
        if choice != "off" and weights_wanted():  # not when only the shapes are wanted
            self.vgg, reason = _load_vgg19()
            if self.vgg is None and choice == "vgg19":
                raise RuntimeError(
                    f"vgg_loss='vgg19' needs torchvision and ImageNet VGG19 weights ({reason}); "
                    "install the 'vision' extra, or set vgg_loss='vgg19_or_off' / 'off' "
                    "(trains with L1 + adversarial terms only; tagged in the results)")
            if self.vgg is not None:
                for p in self.vgg.parameters():
                    p.requires_grad_(False)
        self.used: Literal["vgg19", "off"] = "vgg19" if self.vgg is not None else "off"

    def _features(self, x: Tensor) -> dict[int, Tensor]:
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        h = (x.repeat(1, 3, 1, 1) - mean) / std
        out = {}
        for i, layer in enumerate(self.vgg.to(x.device)):
            h = layer(h)
            if i in PERCEPTUAL_LAYERS or i in STYLE_LAYERS:
                out[i] = h
        return out

    def __call__(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(perceptual, style) losses, both 0 when the VGG terms are off."""
        if self.vgg is None:
            zero = pred.new_zeros(())
            return zero, zero
        fp, ft = self._features(pred), self._features(target)
        perceptual = sum(F.l1_loss(fp[i], ft[i]) for i in PERCEPTUAL_LAYERS)
        style = sum(F.l1_loss(gram(fp[i]), gram(ft[i])) for i in STYLE_LAYERS)
        return perceptual, style


def gaussian_blur(x: Tensor, ksize: int = 71, sigma: float = 10.0) -> Tensor:
    """Separable Gaussian blur with reflect padding; x: (N, 1, H, W). The kernel is cut to
    fit the image (reflect padding needs pad < size)."""
    ksize = min(ksize, 2 * (min(x.shape[-2:]) // 2) - 1)
    coords = torch.arange(ksize, dtype=x.dtype, device=x.device) - ksize // 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    pad = ksize // 2
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), g.view(1, 1, -1, 1))


def smgan_discriminator_loss(net_d: nn.Module, comp: Tensor, real: Tensor,
                             mask: Tensor) -> Tensor:
    """Soft mask-guided GAN (AOT-GAN): D regresses the blurred hole mask on the composite and
    0 on real images (MSE), patch maps upsampled to the mask size."""
    size = mask.shape[-2:]
    d_fake = F.interpolate(net_d(comp.detach()), size=size, mode="bilinear", align_corners=True)
    d_real = F.interpolate(net_d(real), size=size, mode="bilinear", align_corners=True)
    target = gaussian_blur(mask).detach()
    return F.mse_loss(d_fake, target) + F.mse_loss(d_real, torch.zeros_like(d_real))


def smgan_generator_loss(net_d: nn.Module, comp: Tensor, mask: Tensor) -> Tensor:
    """Generator term: mean over pixels of (D(comp) - 1)^2 * mask / mean(mask)."""
    g_fake = F.interpolate(net_d(comp), size=mask.shape[-2:], mode="bilinear", align_corners=True)
    return ((g_fake - 1).pow(2) * mask / mask.mean().clamp_min(1e-8)).mean()
