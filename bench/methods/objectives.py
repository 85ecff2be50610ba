"""Adversarial objectives on raw discriminator scores (logits / critic values): each a D loss and a G loss.

OBJECTIVES is the one table of them by name, the values of the adversarial family's `objective:` hyperparameter
(compare_gan's losses by name):
- `bce`: Goodfellow et al. 2014 with the generator's non-saturating loss -log D(G(z)) (Radford et al. 2016).
- `ls`: Mao et al. 2017, D: 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2, G: 1/2 E (D(G(z)) - c)^2, a=0 b=1 c=1.
- `wgan`: Arjovsky et al. 2017, D: E D(G(z)) - E D(x), G: -E D(G(z)).
- `hinge`: Lim & Ye 2017 / Miyato et al. 2018, D: E relu(1 - D(x)) + E relu(1 + D(G(z))), G: -E D(G(z)).
Variants outside the table: `Minimax` (the paper's log(1 - D(G(z))) for G, vanilla's `generator_loss: minimax`)
and `SoftplusNonSaturating` (bce's values in StyleGAN's softplus form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


def bce_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), on logits for numerical stability."""
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


class Objective:
    name = "objective"
    # the value between D's targets for real and fake outputs (ADA's overfitting heuristic counts the real outputs
    # above it); None where the outputs have no fixed centre (a Wasserstein critic)
    centre: float | None = 0.0

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NonSaturating(Objective):
    name = "bce"

    def d_loss(self, real, fake):
        return bce_d_loss(real, fake)

    def g_loss(self, fake):
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # -log D(G(z))


class Minimax(NonSaturating):
    name = "minimax"

    def g_loss(self, fake):
        return -F.softplus(fake).mean()  # log(1 - sigmoid(l)) = -softplus(l)


class SoftplusNonSaturating(NonSaturating):
    """The non-saturating loss written with softplus (StyleGAN's form): the same values as NonSaturating."""

    name = "softplus"

    def g_loss(self, fake):
        return F.softplus(-fake).mean()  # -log sigmoid(l)


@dataclass(frozen=True)
class LeastSquares(Objective):
    a: float = 0.0
    b: float = 1.0
    c: float = 1.0
    name = "ls"

    @property
    def centre(self) -> float:
        return (self.a + self.b) / 2

    def d_loss(self, real, fake):
        return 0.5 * (real - self.b).pow(2).mean() + 0.5 * (fake - self.a).pow(2).mean()

    def g_loss(self, fake):
        return 0.5 * (fake - self.c).pow(2).mean()


class Wasserstein(Objective):
    name = "wgan"
    centre = None

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake):
        return -fake.mean()


class Hinge(Objective):
    name = "hinge"

    def d_loss(self, real, fake):
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (NonSaturating(), LeastSquares(), Wasserstein(), Hinge())}
ObjectiveName = Literal[tuple(OBJECTIVES)]  # what `objective:` takes: the table's names, from the table
