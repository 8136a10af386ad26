"""cDDPM's image encoder F_enc and its SparK-style masked pre-training (plain torch).

F_enc (paper Sec. 3.2, 4.4): a ResNet on the clean slice, global average pooling and a
fully connected layer to c in R^d. MONAI's ``resnet50(spatial_dims=2, n_input_channels=1,
num_classes=d, conv1_t_stride=2)`` is the torchvision/timm ResNet-50 layout (7x7 stride-2
stem, max-pool, bottleneck stages 3-4-6-3 with the stride in the 3x3 conv, projection
shortcuts) that the authors build with timm; at 96 px its last feature map is 3x3.
:func:`build_encoder` adds what their timm model has and MONAI's lacks (stochastic depth,
zero-initialised last BN per block, bias-free shortcut convolutions).

Pre-training (paper Sec. 3.3; SparK, Tian et al. ICLR 2023, as configured by the
authors): the slice is cut into 32x32 patches (the encoder's downsampling ratio, a 3x3
grid at 96 px); 65 % of them (6 of 9) are removed; the encoder sees the masked slice;
its four stage outputs (strides 4, 8, 16, 32) are batch-normalised, the removed
positions are filled with a learned mask token per stage, projected (1x1 conv at the
coarsest stage, 3x3 elsewhere) and fed to a light UNet-style decoder (5 x [transposed
conv x2, two 3x3 convs], widths 512 -> 16) that predicts the slice; the loss is the MSE
on the removed patches only (no per-patch pixel normalisation, ``pix_norm: False``).

Deviation, documented: SparK emulates sparse convolution by zeroing the masked positions
after every convolution and uses masked batch-norm statistics. Here the encoder runs
densely and the masked positions are zeroed after the stem and after each of the four
stages (not after every conv); batch-norm statistics include the zeroed positions.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from monai.networks.layers import DropPath
from monai.networks.nets import resnet
from torch import Tensor, nn

ENCODERS = ("resnet10", "resnet18", "resnet34", "resnet50")


def build_encoder(name: str = "resnet50", cond_dim: int = 128, width: float = 1.0,
                  drop_path: float = 0.05, zero_init_last: bool = True,
                  shortcut_bias: bool = False) -> resnet.ResNet:
    """F_enc: (N, 1, H, W) in [0, 1] -> c: (N, cond_dim). ``width`` scales the channels
    (MONAI's widen_factor; 1.0 is the standard network, smaller only for CPU smoke runs).

    As the authors' timm ResNet (the paper does not say): stochastic depth on each block's
    residual branch with rates rising linearly from 0 to ``drop_path`` over the blocks
    (timm's drop_path_rate, 0.05 in their config), the last batch-norm weight of each block
    initialised to zero (timm's zero_init_last), and no bias on the shortcut convolution
    (MONAI adds one by default: 3,840 parameters in ResNet-50)."""
    if name not in ENCODERS:
        raise ValueError(f"encoder={name!r}; allowed: {', '.join(ENCODERS)}")
    if not 0 <= drop_path < 1:
        raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
    factory = getattr(resnet, name)
    net = factory(
        spatial_dims=2, n_input_channels=1, num_classes=cond_dim,
        conv1_t_stride=2, widen_factor=width, bias_downsample=shortcut_bias,
    )
    blocks = [b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer]
    rates = torch.linspace(0, drop_path, len(blocks)).tolist()
    for block, rate in zip(blocks, rates):
        last_bn = block.bn3 if isinstance(block, resnet.ResNetBottleneck) else block.bn2
        if zero_init_last:
            nn.init.zeros_(last_bn.weight)
        if rate > 0:
            # the last BN's output IS the residual branch: dropping it per sample before
            # the shortcut is added is stochastic depth (DropPath has no weights, so the
            # state dict keeps MONAI's keys)
            block.drop_path = DropPath(rate)
            last_bn.register_forward_hook(_drop_branch(block.drop_path))
    return net


def _drop_branch(drop: nn.Module):
    def hook(module: nn.Module, inputs, output: Tensor) -> Tensor:
        return drop(output)
    return hook


def encoder_stages(encoder: resnet.ResNet, x: Tensor, active: Tensor | None = None) -> list[Tensor]:
    """The four stage outputs of a MONAI ResNet, strides 4, 8, 16, 32 (largest first).

    active: (N, 1, h, w) bool patch mask at the coarsest resolution, or None; inactive
    (masked) positions are zeroed after the stem and after every stage."""

    def keep(h: Tensor) -> Tensor:
        if active is None:
            return h
        return h * F.interpolate(active.float(), size=h.shape[-2:], mode="nearest")

    h = keep(encoder.act(encoder.bn1(encoder.conv1(x))))
    if not encoder.no_max_pool:
        h = encoder.maxpool(h)
    feats = []
    for layer in (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4):
        h = keep(layer(h))
        feats.append(h)
    return feats


class _DecoderBlock(nn.Module):
    """x2 upsampling (transposed conv 4x4) then conv-BN-ReLU6-conv-BN (SparK's LightDecoder)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_in, 4, stride=2, padding=1)
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, padding=1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU6(),
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.up(x))


class SparKPretrainer(nn.Module):
    """Masked-image pre-training head around an encoder (the encoder is not owned: it is
    the cDDPM's F_enc, so pre-trained weights are used by the main stage as they are)."""

    def __init__(self, encoder: resnet.ResNet, mask_ratio: float = 0.65, patch: int = 32,
                 decoder_width: int = 512):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio, self.patch = mask_ratio, patch
        with torch.no_grad():
            was_training = encoder.training
            channels = [f.shape[1] for f in encoder_stages(encoder.eval(), torch.zeros(1, 1, 64, 64))]
            encoder.train(was_training)
        channels = channels[::-1]  # coarsest first
        widths = [decoder_width // 2**i for i in range(6)]  # 5 upsamplings: stride 32 -> 1
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.randn(1, c, 1, 1).clamp(-1, 1) * 0.02) for c in channels
        )
        self.projs = nn.ModuleList(
            nn.Conv2d(c, w, 1 if i == 0 else 3, padding=0 if i == 0 else 1)
            for i, (c, w) in enumerate(zip(channels, widths))
        )
        self.blocks = nn.ModuleList(_DecoderBlock(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Conv2d(widths[-1], 1, 1)

    def random_active(self, n: int, grid: tuple[int, int], device) -> Tensor:
        """(N, 1, gh, gw) bool: round(cells * (1 - mask_ratio)) visible patches per slice."""
        cells = grid[0] * grid[1]
        keep = max(1, round(cells * (1 - self.mask_ratio)))
        order = torch.rand(n, cells, device=device).argsort(dim=1)[:, :keep]
        active = torch.zeros(n, cells, dtype=torch.bool, device=device).scatter_(1, order, True)
        return active.view(n, 1, *grid)

    def forward(self, encoder: resnet.ResNet, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (N, 1, H, W) in [0, 1], H and W multiples of ``patch``.
        Returns (loss, reconstruction (N,1,H,W), active (N,1,H/patch,W/patch))."""
        n, _, h, w = x.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"SparK pre-training needs H, W divisible by {self.patch}; got {h}x{w}")
        active = self.random_active(n, (h // self.patch, w // self.patch), x.device)
        pixels = F.interpolate(active.float(), size=(h, w), mode="nearest")
        feats = encoder_stages(encoder, x * pixels, active)[::-1]  # coarsest first
        y = 0
        for i, f in enumerate(feats):
            f = self.norms[i](f)
            here = F.interpolate(active.float(), size=f.shape[-2:], mode="nearest").bool()
            f = torch.where(here, f, self.mask_tokens[i].to(f.dtype).expand_as(f))
            y = self.blocks[i](y + self.projs[i](f))
        for block in self.blocks[len(feats):]:
            y = block(y)
        rec = self.out(y)
        # Mean squared error per removed patch, averaged over removed patches.
        per_pixel = (rec - x) ** 2
        per_patch = F.avg_pool2d(per_pixel, self.patch)  # (N, 1, gh, gw)
        removed = (~active).float()
        loss = (per_patch * removed).sum() / removed.sum().clamp_min(1)
        return loss, rec, active
