"""The original GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014; seed 004's fully connected VGAN.

MLP generator and discriminator, the minimax objective min_G max_D E log D(x) + E log(1 - D(G(z))).
The generator minimises log(1 - D(G(z))) as in the paper (`generator_loss: minimax`); the paper's own
non-saturating fix is one setting away. Adam lr 2e-4, betas (0.5, 0.999), latent 100.
"""

from __future__ import annotations

from typing import Literal

from bench.methods.adversarial import AdversarialHyper, AdversarialMethod
from bench.methods.base import register_method
from bench.methods.objectives import Minimax, SoftplusNonSaturating
from bench.nets.mlp import MLPDiscriminator, MLPGenerator


class VanillaHyper(AdversarialHyper):
    generator_loss: Literal["minimax", "non_saturating"] = "minimax"


@register_method
class Vanilla(AdversarialMethod):
    name = "vanilla"
    description = "Goodfellow et al. 2014: MLP generator and discriminator, minimax loss"
    Hyper = VanillaHyper

    @property
    def objective(self):
        return Minimax() if self.hp.generator_loss == "minimax" else SoftplusNonSaturating()

    def build(self):
        return {"generator": MLPGenerator(self.hp.latent_dim, self.shape.channels, self.shape.resolution),
                "discriminator": MLPDiscriminator(self.shape.channels, self.shape.resolution)}

