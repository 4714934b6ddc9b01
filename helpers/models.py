"""Given architectures, used by the notebooks *after* the one that teaches them.

Nothing here is an exercise answer for the notebook that uses it: 02 asks for its
own Encoder/Decoder (its tests check the student's definitions are used), and 03/04
build on the ready-made autoencoder below.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder: x -> z (latent_dim) -> x_hat in [0, 1].

    ``forward`` returns ``(x_hat, z)`` so that losses on the code (sparsity) and on
    the reconstruction can be computed from one pass.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        hidden_dim: int = 256,
        latent_dim: int = 64,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        d = math.prod(input_shape)
        self.encoder = nn.Sequential(
            nn.Flatten(),  # (B, d)
            nn.Linear(d, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, latent_dim),  # (B, latent_dim): the code z
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, d),
            nn.Sigmoid(),
            nn.Unflatten(1, self.input_shape),  # (B, *input_shape)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


class ConvAutoencoder(nn.Module):
    """Small convolutional autoencoder for (B, 1, 28, 28) images; returns ``(x_hat, z)``."""

    def __init__(self, channels: int = 32, latent_dim: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),  # (B, C, 14, 14)
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),  # (B, 2C, 7, 7)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * channels * 7 * 7, latent_dim),  # (B, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 2 * channels * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * channels, 7, 7)),  # (B, 2C, 7, 7)
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
