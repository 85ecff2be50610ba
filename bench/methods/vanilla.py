"""The original GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014; seed 004's fully connected VGAN.

MLP generator and discriminator, the minimax objective min_G max_D E log D(x) + E log(1 - D(G(z))).
The generator minimises log(1 - D(G(z))) as in the paper (`generator_loss: minimax`); the paper's own
non-saturating fix is one setting away. Both are forms of the `bce` objective, the default; another `objective:`
(ls, wgan, hinge) brings its own generator loss. Adam lr 2e-4, betas (0.5, 0.999), latent 100.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.methods.adversarial import AdversarialHyper, AdversarialMethod
from bench.methods.base import register_method
from bench.methods.objectives import Minimax, Objective, SoftplusNonSaturating
from bench.nets.mlp import MLPDiscriminator, MLPGenerator


class VanillaHyper(AdversarialHyper):
    generator_loss: Literal["minimax", "non_saturating"] = Field(
        "minimax", description="G's loss under the bce objective: the paper's minimax, or non_saturating")

    @model_validator(mode="after")
    def generator_loss_belongs_to_bce(self):
        if self.generator_loss != "minimax" and self.objective != "bce":
            raise ValueError(f"generator_loss: {self.generator_loss} is a form of the bce objective's; objective "
                             f"{self.objective} has its own generator loss")
        return self


@register_method
class Vanilla(AdversarialMethod):
    name = "vanilla"
    description = "Goodfellow et al. 2014: MLP generator and discriminator, minimax loss"
    Hyper = VanillaHyper

    @property
    def objective(self) -> Objective:
        if self.hp.objective != "bce":
            return super().objective
        return Minimax() if self.hp.generator_loss == "minimax" else SoftplusNonSaturating()

    def build(self):
        return {"generator": MLPGenerator(self.hp.latent_dim, self.shape.channels, self.shape.resolution),
                "discriminator": MLPDiscriminator(self.shape.channels, self.shape.resolution)}

