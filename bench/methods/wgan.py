"""WGAN: Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017 (seeds 000 and 003).

Critic without sigmoid; critic loss E D(G(z)) - E D(x), generator loss -E D(G(z)); weights clipped to
[-0.01, 0.01] after every critic step; RMSprop lr 5e-5 ("momentum based optimizers such as Adam" made it
unstable); 5 critic steps per generator step. The paper's critic is the DCGAN discriminator with BatchNorm.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from bench.methods import Hyper, Method, register_method


class WGANHyper(Hyper):
    lr_g: float = Field(5e-5, gt=0)
    lr_d: float = Field(5e-5, gt=0)
    critic_steps: int = Field(5, ge=1)
    clip_value: float = Field(0.01, gt=0)
    critic_norm: Literal["batch", "layer", "none"] = "batch"


def wasserstein_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return fake_scores.mean() - real_scores.mean()


@register_method
class WGAN(Method):
    name = "wgan"
    description = "Arjovsky et al. 2017: critic, weight clipping [-0.01, 0.01], RMSprop 5e-5, 5 critic steps"
    Hyper = WGANHyper

    def discriminator_norm(self):
        return self.hp.critic_norm

    def optimizers(self, generator, discriminator):
        return (torch.optim.RMSprop(generator.parameters(), lr=self.hp.lr_g),
                torch.optim.RMSprop(discriminator.parameters(), lr=self.hp.lr_d))

    def d_loss(self, discriminator, real, fake, labels, rng):
        return wasserstein_d_loss(self.discriminate(discriminator, real, labels),
                                  self.discriminate(discriminator, fake, labels))

    def g_loss(self, discriminator, fake, labels):
        return -self.discriminate(discriminator, fake, labels).mean()

    @torch.no_grad()
    def after_d_step(self, discriminator):
        for p in discriminator.parameters():
            p.clamp_(-self.hp.clip_value, self.hp.clip_value)
