"""Dense-bottleneck convolutional autoencoder of Baur et al. (MedIA 2021), plain torch.

Follows the authors' "unified" encoder/decoder (TensorFlow reference
StefanDenn3r/Unsupervised_Anomaly_Detection_Brain_MRI, ``models/customlayers.py``):
``n = int(log2(W) - log2(r))`` blocks of [conv 5x5 stride 2, BN, LeakyReLU] with
``min(128, 32 * 2**i)`` filters take the slice down to ``W / 2**n``; a 1x1 conv to C/8
channels, a dense layer to ``z_dim`` (dropout) and back, a 1x1 conv to C channels; the decoder
mirrors the encoder with transposed convs and ends in a linear 1x1 conv (no sigmoid).

At 96 px with the reference's intermediate resolution r = 8 the formula gives n = 3 blocks
(int(6.58 - 3) = 3), i.e. a 12x12x16 feature map flattened to 2304 values -> 128.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

# Keras' LeakyReLU default slope (the reference constructs LeakyReLU() without arguments).
KERAS_LEAKY_SLOPE = 0.3


def n_resolution_steps(image_size: int, intermediate_resolution: int) -> int:
    """Number of stride-2 blocks, as the reference computes it: int(log2(W) - log2(r))."""
    n = int(math.log2(image_size) - math.log2(intermediate_resolution))
    if n < 1:
        raise ValueError(
            f"image_size {image_size} must exceed intermediate_resolution {intermediate_resolution}"
        )
    return n


class ConvEncoder(nn.Module):
    """x: (N, 1, H, W) -> features (N, C/8, H / 2**n, W / 2**n), C = filters of the last block."""

    def __init__(self, image_size: int = 96, intermediate_resolution: int = 8,
                 base_filters: int = 32, max_filters: int = 128) -> None:
        super().__init__()
        n = n_resolution_steps(image_size, intermediate_resolution)
        layers: list[nn.Module] = []
        cin = 1
        for i in range(n):
            cout = min(max_filters, base_filters * 2**i)
            # k5 s2 with padding 2 is TF 'same' padding for even sizes: H -> H/2.
            layers += [nn.Conv2d(cin, cout, 5, 2, 2), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(KERAS_LEAKY_SLOPE)]
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.channels = cin
        self.to_bottleneck = nn.Conv2d(cin, max(1, cin // 8), 1)
        size = image_size
        for _ in range(n):
            size = math.ceil(size / 2)
        self.out_shape = (max(1, cin // 8), size, size)
        self.image_size = image_size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(
                f"network built for image_size={self.image_size}, got slices of "
                f"{tuple(x.shape[-2:])}; set the method's image_size hyperparameter"
            )
        return self.to_bottleneck(self.blocks(x))


class ConvDecoder(nn.Module):
    """features (N, C/8, h, w) -> x_hat (N, 1, h * 2**n, w * 2**n), linear output."""

    def __init__(self, image_size: int = 96, intermediate_resolution: int = 8,
                 base_filters: int = 32, max_filters: int = 128) -> None:
        super().__init__()
        n = n_resolution_steps(image_size, intermediate_resolution)
        encoder_channels = min(max_filters, base_filters * 2 ** (n - 1))
        self.from_bottleneck = nn.Conv2d(max(1, encoder_channels // 8), encoder_channels, 1)
        layers: list[nn.Module] = [nn.BatchNorm2d(encoder_channels), nn.ReLU()]
        cin = encoder_channels
        for i in range(n):
            cout = int(max(base_filters, max_filters / 2**i))
            # k5 s2 padding 2 output_padding 1 doubles the size (TF 'same' transposed conv).
            layers += [nn.ConvTranspose2d(cin, cout, 5, 2, 2, output_padding=1),
                       nn.BatchNorm2d(cout), nn.LeakyReLU(KERAS_LEAKY_SLOPE)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 1))
        self.blocks = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.blocks(self.from_bottleneck(h))


class DenseAutoencoder(nn.Module):
    """Baur et al.'s AE. x: (N, 1, H, W) in [0, 1] -> x_hat (N, 1, H, W), unbounded (linear).

    Dropout sits after the dense encoder layer and after the dense decoder layer, as in the
    reference; it is active in train mode only.
    """

    def __init__(self, image_size: int = 96, z_dim: int = 128, intermediate_resolution: int = 8,
                 base_filters: int = 32, max_filters: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        args = (image_size, intermediate_resolution, base_filters, max_filters)
        self.encoder = ConvEncoder(*args)
        self.decoder = ConvDecoder(*args)
        self.bottom = self.encoder.out_shape
        flat = math.prod(self.bottom)
        self.to_latent = nn.Linear(flat, z_dim)
        self.from_latent = nn.Linear(z_dim, flat)
        self.dropout = nn.Dropout(dropout)

    def encode(self, x: Tensor) -> Tensor:
        """x: (N, 1, H, W) -> z: (N, z_dim)."""
        return self.dropout(self.to_latent(self.encoder(x).flatten(1)))

    def decode(self, z: Tensor) -> Tensor:
        """z: (N, z_dim) -> x_hat: (N, 1, H, W)."""
        h = self.dropout(self.from_latent(z)).view(-1, *self.bottom)
        return self.decoder(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
