"""Given architectures, used by the notebooks *after* the one that teaches them.

Nothing here is an exercise answer for the notebook that uses it: 02 asks for its
own Encoder/Decoder (its tests check the student's definitions are used), and 03/04
build on the ready-made autoencoder below.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


def conv_encoder_layers(channels: int, out_dim: int) -> list[nn.Module]:
    """Two stride-2 convolutions and a linear layer: (B, 1, 28, 28) -> (B, out_dim).

    A list, so that each user's ``nn.Sequential`` keeps its flat parameter names (checkpoints).
    """
    return [
        nn.Conv2d(1, channels, 3, stride=2, padding=1),  # (B, C, 14, 14)
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),  # (B, 2C, 7, 7)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * channels * 7 * 7, out_dim),  # (B, out_dim)
    ]


class ConvAutoencoder(nn.Module):
    """Small convolutional autoencoder for (B, 1, 28, 28) images; returns ``(x_hat, z)``."""

    def __init__(self, channels: int = 32, latent_dim: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(*conv_encoder_layers(channels, latent_dim))
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


class FixedNormColumns(nn.Module):
    """Parametrisation that rescales every column of a weight matrix to the norm ``norm``."""

    def __init__(self, norm: float = 1.0) -> None:
        super().__init__()
        self.norm = float(norm)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # (D, latent_dim)
        return self.norm * weight / weight.norm(dim=0, keepdim=True).clamp_min(1e-8)


class DictionaryAutoencoder(nn.Module):
    """MLP encoder to a wide code ``z``; a linear decoder whose columns are image "atoms".

    ``x_hat = D a + b`` with ``a = activation(z)`` (``z`` itself when ``activation`` is None):
    each code unit adds its column of ``D`` (an atom, shaped like an image) to the picture,
    weighted by its activation. Passing the bounded activation the sparsity penalty measures
    (e.g. 04's ``unit_activation``) makes the decoder read exactly what is penalised. With ``atom_norm`` set, every column is kept at that norm (the
    cure for the scale problem of sparsity penalties: otherwise the decoder can grow its
    columns while the encoder shrinks the code, and the penalty on ``z`` is dodged rather
    than met; Olshausen & Field, 1997; Lee et al., 2007). ``atom_norm=None`` leaves them free.
    ``relu_code`` makes the code non-negative, so inactive units are exactly 0.
    ``forward`` returns ``(x_hat, z)``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        hidden_dim: int = 256,
        latent_dim: int = 256,
        atom_norm: float | None = 1.0,
        relu_code: bool = True,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        from torch.nn.utils import parametrize

        self.input_shape = tuple(input_shape)
        self.activation = activation
        d = math.prod(input_shape)
        self.encoder = nn.Sequential(
            nn.Flatten(),  # (B, d)
            nn.Linear(d, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, latent_dim),  # (B, latent_dim)
            *([nn.ReLU()] if relu_code else []),
        )
        self.dictionary = nn.Linear(latent_dim, d)  # weight (d, latent_dim): one atom per column
        if atom_norm is not None:
            parametrize.register_parametrization(
                self.dictionary, "weight", FixedNormColumns(atom_norm)
            )

    def atoms(self) -> torch.Tensor:
        """The decoder's columns as images ``(latent_dim, *input_shape)``."""
        return self.dictionary.weight.detach().T.reshape(-1, *self.input_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)  # (B, latent_dim)
        a = z if self.activation is None else self.activation(z)  # (B, latent_dim)
        x_hat = self.dictionary(a).view(-1, *self.input_shape)  # (B, *input_shape)
        return x_hat, z


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
