"""Reverse distillation (Deng & Li, CVPR 2022): teacher -> one-class bottleneck -> student.

Plain torch; the frozen teacher is :class:`benchmark.backbones.FeatureExtractor`.
Shapes for the 96 x 96 default with a Wide-ResNet-50-2 teacher:
teacher f1 (256, 24, 24), f2 (512, 12, 12), f3 (1024, 6, 6) -> OCBE (2048, 3, 3)
-> student (1024, 6, 6), (512, 12, 12), (256, 24, 24), returned in teacher order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.backbones import bottleneck_stage, conv3x3, reverse_stage


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [conv3x3(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class OCBE(nn.Module):
    """One-class bottleneck embedding (RD4AD ``BN_layer``): fuse three scales, compress.

    f1 -> two stride-2 3x3 convs, f2 -> one, both to f3's size and width; concat (3 c3)
    -> ``n_blocks`` Bottlenecks, the first with stride 2 -> (N, 2 c3, h3/2, w3/2).
    """

    def __init__(self, channels: tuple[int, int, int], wide: int, n_blocks: int = 3):
        super().__init__()
        c1, c2, c3 = channels
        self.down1 = nn.Sequential(*_conv_bn_relu(c1, c2, 2), *_conv_bn_relu(c2, c3, 2))
        self.down2 = nn.Sequential(*_conv_bn_relu(c2, c3, 2))
        self.fuse = bottleneck_stage(3 * c3, 2 * c3, n_blocks, wide, stride=2)

    def forward(self, feats: list[Tensor]) -> Tensor:
        f1, f2, f3 = feats
        return self.fuse(torch.cat([self.down1(f1), self.down2(f2), f3], dim=1))


class StudentDecoder(nn.Module):
    """Reverse ResNet (RD4AD ``de_wide_resnet50_2``, stages of 3, 4, 6 blocks).

    z: (N, 2 c3, h3/2, w3/2) -> [(N, c1, h1, w1), (N, c2, h2, w2), (N, c3, h3, w3)].
    """

    def __init__(self, channels: tuple[int, int, int], wide: int,
                 blocks: tuple[int, int, int] = (3, 4, 6)):
        super().__init__()
        c1, c2, c3 = channels
        self.stage3 = reverse_stage(2 * c3, c3, blocks[0], wide, "deconv")
        self.stage2 = reverse_stage(c3, c2, blocks[1], wide, "deconv")
        self.stage1 = reverse_stage(c2, c1, blocks[2], wide, "deconv")

    def forward(self, z: Tensor) -> list[Tensor]:
        d3 = self.stage3(z)
        d2 = self.stage2(d3)
        return [self.stage1(d2), d2, d3]


def rd_loss(teacher: list[Tensor], student: list[Tensor]) -> Tensor:
    """RD4AD ``loss_fucntion``: sum_k mean_b [1 - cos(flat f_k^T, flat f_k^S)].

    The cosine is taken over each image's whole flattened feature map, not per pixel.
    """
    loss = teacher[0].new_zeros(())
    for t, s in zip(teacher, student):
        loss = loss + (1 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()
    return loss


def rd_anomaly_map(teacher: list[Tensor], student: list[Tensor],
                   size: tuple[int, int]) -> Tensor:
    """M = sum_k up_bilinear(1 - cos_channel(f_k^T, f_k^S)) (RD4AD ``cal_anomaly_map``, 'a').

    Each scale's (N, h_k, w_k) map is upsampled with align_corners=True to ``size``.
    Returns (N, 1, H, W), 0 where student and teacher agree in direction.
    """
    amap = None
    for t, s in zip(teacher, student):
        m = 1 - F.cosine_similarity(t, s, dim=1).unsqueeze(1)
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=True)
        amap = m if amap is None else amap + m
    return amap


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian filter, kernel 2 * int(4 sigma + 0.5) + 1 (anomalib's choice), reflect pad.

    x: (N, 1, H, W); sigma <= 0 returns x unchanged.
    """
    if sigma <= 0:
        return x
    radius = int(4 * sigma + 0.5)
    radius = min(radius, min(x.shape[-2:]) - 1)  # reflect padding needs radius < size
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-grid ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))
