"""Encoder-decoder contrast (Guo et al., IEEE TMI 2023), plain torch.

The ImageNet ResNet-50 encoder is fine-tuned (small lr); the decoder mirrors ResNet-50
stages 3, 2, 1 with bilinear x2 upsampling (EDC ``resnet_decoder``) and is fed e4.
Shapes at 96 x 96: e1 (256, 24), e2 (512, 12), e3 (1024, 6), e4 (2048, 3)
-> d3 (1024, 6), d2 (512, 12), d1 (256, 24).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.backbones import reverse_stage


class EDCDecoder(nn.Module):
    """e4: (N, c4, h, w) -> [d1 (N, c1, 8h, 8w), d2 (N, c2, 4h, 4w), d3 (N, c3, 2h, 2w)].

    EDC's decoder also builds a stride-1 ``layer4`` that ``forward`` skips; it is left out
    here (it holds no gradient and would only add unused parameters).
    """

    def __init__(self, channels: tuple[int, int, int, int], wide: int = 1,
                 blocks: tuple[int, int, int] = (6, 4, 3)):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.layer3 = reverse_stage(c4, c3, blocks[0], wide, "bilinear")
        self.layer2 = reverse_stage(c3, c2, blocks[1], wide, "bilinear")
        self.layer1 = reverse_stage(c2, c1, blocks[2], wide, "bilinear")

    def forward(self, e4: Tensor) -> list[Tensor]:
        d3 = self.layer3(e4)
        d2 = self.layer2(d3)
        return [self.layer1(d2), d2, d3]


def set_bn_momentum(module: nn.Module, momentum: float) -> None:
    """EDC sets every BatchNorm's momentum to 0.01 (slow running statistics)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum


def edc_loss(encoder: list[Tensor], decoder: list[Tensor]) -> Tensor:
    """L = sum_k [1 - cos(flat d_k, flat sg(e_k))], batch mean (EDC ``global_cosine``).

    The stop-gradient on e_k is what prevents collapse: the encoder only learns through
    e4 -> decoder, never by moving its own features towards the decoder's.
    """
    loss = decoder[0].new_zeros(())
    for e, d in zip(encoder, decoder):
        cos = F.cosine_similarity(d.flatten(1), e.detach().flatten(1), dim=1)
        loss = loss + (1 - cos).mean()
    return loss


def edc_anomaly_map(encoder: list[Tensor], decoder: list[Tensor],
                    size: tuple[int, int]) -> Tensor:
    """p_k = 1 - cos_channel(d_k, e_k); p2, p3 bilinear (align_corners=False) to p1's size;
    map = mean_k p_k, then bilinear up to ``size``. Returns (N, 1, H, W)."""
    maps = [1 - F.cosine_similarity(e, d, dim=1).unsqueeze(1) for e, d in zip(encoder, decoder)]
    base = maps[0].shape[-2:]
    maps = [maps[0]] + [F.interpolate(m, size=base, mode="bilinear", align_corners=False)
                        for m in maps[1:]]
    amap = sum(maps) / len(maps)
    return F.interpolate(amap, size=size, mode="bilinear", align_corners=False)
