"""WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (seed 003, Algorithm 1).

Critic loss E D(G(z)) - E D(x) + lambda E (||grad D(x_hat)||_2 - 1)^2 on random interpolates x_hat; lambda 10,
5 critic steps, Adam lr 1e-4, betas (0, 0.9). No BatchNorm in the critic: the penalty is per sample and batch
statistics would couple the samples (the paper suggests layer norm; `critic_norm: layer` gives it;
`critic_norm: spectral` gives Miyato et al. 2018's spectral norm, which composes with the penalty).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.methods.adversarial import GradientPenaltyHyper, GradientPenaltyMethod
from bench.methods.base import added, register_method
from bench.methods.objectives import ObjectiveName


class WGANGPHyper(GradientPenaltyHyper):
    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.9, ge=0, lt=1)
    critic_steps: int = Field(5, ge=1)
    objective: ObjectiveName = added("wgan")
    critic_norm: Literal["batch", "layer", "none", "spectral"] = "none"


@register_method
class WGANGP(GradientPenaltyMethod):
    name = "wgan-gp"
    description = "Gulrajani et al. 2017: gradient penalty 10, 5 critic steps, Adam 1e-4 betas (0, 0.9), no BatchNorm"
    Hyper = WGANGPHyper

    def discriminator_norm(self):
        return self.hp.critic_norm
