"""LSGAN: Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017 (seeds 000 and 003).

D minimises 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2, G minimises 1/2 E (D(G(z)) - c)^2 with the 0-1 coding
a=0, b=1, c=1. DCGAN networks with a linear output; Adam lr 2e-4, beta1 0.5 as in the paper.
"""

from __future__ import annotations

from bench.methods import Hyper, Method, register_method


class LSGANHyper(Hyper):
    a: float = 0.0
    b: float = 1.0
    c: float = 1.0


@register_method
class LSGAN(Method):
    name = "lsgan"
    description = "Mao et al. 2017: least-squares loss (a=0, b=1, c=1) on DCGAN networks"
    Hyper = LSGANHyper

    def d_loss(self, discriminator, real, fake, labels, rng):
        hp = self.hp
        return (0.5 * (self.discriminate(discriminator, real, labels) - hp.b).pow(2).mean()
                + 0.5 * (self.discriminate(discriminator, fake, labels) - hp.a).pow(2).mean())

    def g_loss(self, discriminator, fake, labels):
        return 0.5 * (self.discriminate(discriminator, fake, labels) - self.hp.c).pow(2).mean()
