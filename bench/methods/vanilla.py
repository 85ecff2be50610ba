"""The original GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014; seed 004's fully connected VGAN.

MLP generator and discriminator, the minimax objective min_G max_D E log D(x) + E log(1 - D(G(z))).
The generator minimises log(1 - D(G(z))) as in the paper (`generator_loss: minimax`); the paper's own
non-saturating fix is one setting away. Adam lr 2e-4, betas (0.5, 0.999), latent 100.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F

from bench.methods import Hyper, Method, register_method
from bench.methods.dcgan import bce_d_loss


class VanillaHyper(Hyper):
    generator_loss: Literal["minimax", "non_saturating"] = "minimax"


@register_method
class Vanilla(Method):
    name = "vanilla"
    description = "Goodfellow et al. 2014: MLP generator and discriminator, minimax loss"
    Hyper = VanillaHyper

    def build_generator(self):
        from bench.nets.mlp import MLPGenerator

        return MLPGenerator(self.hp.latent_dim, self.channels, self.resolution)

    def build_discriminator(self):
        from bench.nets.mlp import MLPDiscriminator

        return MLPDiscriminator(self.channels, self.resolution)

    def d_loss(self, discriminator, real, fake, labels, rng):
        return bce_d_loss(discriminator(real), discriminator(fake))

    def g_loss(self, discriminator, fake, labels):
        logits = discriminator(fake)
        if self.hp.generator_loss == "minimax":
            return -F.softplus(logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)
        return F.softplus(-logits).mean()  # -log sigmoid(l)
