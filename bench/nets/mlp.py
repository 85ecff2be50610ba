"""Fully connected generator and discriminator of the original GAN (Goodfellow et al. 2014; seed 004's "VGAN").

Layer sizes follow the common PyTorch MLP GAN (G: 256-512-1024, D: 512-256) with LeakyReLU(0.2).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, resolution: int, hidden: tuple[int, ...] = (256, 512, 1024)):
        super().__init__()
        self.shape = (channels, resolution, resolution)
        sizes = (latent_dim, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2, True)]
        layers += [nn.Linear(sizes[-1], math.prod(self.shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1)).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, channels: int, resolution: int, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        sizes = (channels * resolution * resolution, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2, True)]
        layers += [nn.Linear(sizes[-1], 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).view(-1)  # reshape: a channels_last x is no view
