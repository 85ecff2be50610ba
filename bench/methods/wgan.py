"""WGAN: Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017 (seeds 000 and 003).

Critic without sigmoid; critic loss E D(G(z)) - E D(x), generator loss -E D(G(z)); weights clipped to
[-0.01, 0.01] after every critic step; RMSprop lr 5e-5 ("momentum based optimizers such as Adam" made it
unstable); 5 critic steps per generator step. The paper's critic is the DCGAN discriminator with BatchNorm.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import bench.methods.optim as optim
from bench.methods.adversarial import AdversarialMethod, ConditionalHyper
from bench.methods.base import added, register_method
from bench.methods.objectives import ObjectiveName
from bench.methods.penalties import clip_weights


class WGANHyper(ConditionalHyper):
    lr_g: float = Field(5e-5, gt=0)
    lr_d: float = Field(5e-5, gt=0)
    critic_steps: int = Field(5, ge=1)
    objective: ObjectiveName = added("wgan")
    clip_value: float = Field(0.01, gt=0)
    critic_norm: Literal["batch", "layer", "none", "spectral"] = "batch"


@register_method
class WGAN(AdversarialMethod):
    name = "wgan"
    description = "Arjovsky et al. 2017: critic, weight clipping [-0.01, 0.01], RMSprop 5e-5, 5 critic steps"
    Hyper = WGANHyper

    def discriminator_norm(self):
        return self.hp.critic_norm

    def make_optimizers(self):
        return {"generator": optim.RMSprop(self.nets["generator"].parameters(), lr=self.hp.lr_g),
                "discriminator": optim.RMSprop(self.nets["discriminator"].parameters(), lr=self.hp.lr_d)}

    def after_discriminator_step(self):
        clip_weights(self.nets["discriminator"], self.hp.clip_value)
