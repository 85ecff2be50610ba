"""Regularisers of the discriminator: gradient penalty (WGAN-GP), R1 (StyleGAN), weight clipping (WGAN)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
    """E (||grad_x D(x_hat)||_2 - 1)^2 with x_hat = eps * real + (1 - eps) * fake, eps of shape (N, 1, 1, 1)
    (Gulrajani et al. 2017, Algorithm 1)."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real images (Mescheder et al. 2018); the caller weighs it by gamma / 2."""
    real = real.detach().requires_grad_(True)
    scores = critic(real)
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, value: float) -> None:
    """Every parameter into [-value, value] (Arjovsky et al. 2017)."""
    for p in module.parameters():
        p.clamp_(-value, value)
