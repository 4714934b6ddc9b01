"""Given GAN architectures for 28x28 digits, used *after* 06 teaches them.

``FCGenerator``/``FCDiscriminator`` are the small fully connected pair that 06 trains
first. ``ConvGenerator``/``ConvDiscriminator`` are the convolutional pair of the 06
contract, in the DCGAN style of Radford et al. (2015): transposed convolutions with batch
normalisation and ReLU in G, strided convolutions with LeakyReLU(0.2) in D, no batch
normalisation on G's output layer nor on D's input layer. 07 and 08 import them as given
code; in 06 the students write their own ``Generator``/``Discriminator``.

Generators map noise ``(B, noise_dim)`` to images ``(B, 1, 28, 28)`` in [0, 1] (a sigmoid,
like the pixels of the data); discriminators map images to ``(B, 1)`` raw scores (logits),
so that the loss decides what to do with them (BCE with logits, least squares, ...).
"""

from __future__ import annotations

import math

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)


class FCGenerator(nn.Module):
    """noise -> Linear/LeakyReLU x2 -> Linear -> Sigmoid -> (B, 1, 28, 28)."""

    def __init__(
        self, noise_dim: int = 100, hidden_dim: int = 256, image_shape=IMAGE_SHAPE
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, 2 * hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(2 * hidden_dim, math.prod(image_shape)),
            nn.Sigmoid(),  # pixels in [0, 1]
            nn.Unflatten(1, tuple(image_shape)),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class FCDiscriminator(nn.Module):
    """image -> Flatten -> Linear/LeakyReLU x2 -> Linear -> (B, 1) logits."""

    def __init__(self, hidden_dim: int = 256, image_shape=IMAGE_SHAPE) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 784)
            nn.Linear(math.prod(image_shape), 2 * hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(2 * hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, 1),  # (B, 1): a logit, no sigmoid
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvGenerator(nn.Module):
    """noise -> fc -> (B, 128, 7, 7) -> two transposed convs -> (B, 1, 28, 28) in [0, 1]."""

    def __init__(self, noise_dim: int = 100, channels: int = 32) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.fc = nn.Sequential(
            nn.Linear(noise_dim, 128 * 7 * 7),
            nn.BatchNorm1d(128 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (128, 7, 7)),  # (B, 128, 7, 7)
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, channels, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
            nn.Sigmoid(),  # pixels in [0, 1]; no batch norm on the output layer (DCGAN)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z))


class ConvDiscriminator(nn.Module):
    """image -> two strided convs -> (B, 128, 7, 7) -> fc -> (B, 1) logits."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.LeakyReLU(0.2),  # no batch norm on the input layer (DCGAN)
            nn.Conv2d(channels, 128, 4, stride=2, padding=1),  # (B, 128, 7, 7)
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * 7 * 7, 1))  # (B, 1): a logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))
