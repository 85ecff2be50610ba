"""WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (seed 003, Algorithm 1).

Critic loss E D(G(z)) - E D(x) + lambda E (||grad D(x_hat)||_2 - 1)^2 on random interpolates x_hat; lambda 10,
5 critic steps, Adam lr 1e-4, betas (0, 0.9). No BatchNorm in the critic: the penalty is per sample and batch
statistics would couple the samples (the paper suggests layer norm; `critic_norm: layer` gives it).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from bench.methods import Hyper, Method, register_method
from bench.methods.wgan import wasserstein_d_loss


class WGANGPHyper(Hyper):
    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.9, ge=0, lt=1)
    critic_steps: int = Field(5, ge=1)
    gradient_penalty_weight: float = Field(10.0, ge=0)
    critic_norm: Literal["batch", "layer", "none"] = "none"


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """E (||grad_x D(x_hat)||_2 - 1)^2 with x_hat = eps * real + (1 - eps) * fake, eps of shape (N, 1, 1, 1)."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


@register_method
class WGANGP(Method):
    name = "wgan-gp"
    description = "Gulrajani et al. 2017: gradient penalty 10, 5 critic steps, Adam 1e-4 betas (0, 0.9), no BatchNorm"
    Hyper = WGANGPHyper

    def discriminator_norm(self):
        return self.hp.critic_norm

    def d_loss(self, discriminator, real, fake, labels, rng):
        eps = torch.rand(real.shape[0], 1, 1, 1, generator=rng, device=real.device, dtype=real.dtype)
        critic = lambda x: self.discriminate(discriminator, x, labels)  # noqa: E731
        return (wasserstein_d_loss(critic(real), critic(fake))
                + self.hp.gradient_penalty_weight * gradient_penalty(critic, real, fake, eps))

    def g_loss(self, discriminator, fake, labels):
        return -self.discriminate(discriminator, fake, labels).mean()
