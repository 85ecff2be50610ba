"""DCGAN: Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016.

Non-saturating BCE loss; Adam lr 2e-4, beta1 0.5 ("0.9 resulted in training oscillation"); N(0, 0.02) init;
latent 100. Seeds 000 (LEGO study), 001 (CIFAR-10, 64 px) and 004 (MNIST) use the same recipe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.methods import Method, register_method


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), on logits for numerical stability."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


@register_method
class DCGAN(Method):
    name = "dcgan"
    description = "Radford et al. 2016: conv G (BatchNorm, ReLU, tanh) / strided-conv D (LeakyReLU 0.2), BCE loss"

    def d_loss(self, discriminator, real, fake, labels, rng):
        return bce_d_loss(self.discriminate(discriminator, real, labels),
                          self.discriminate(discriminator, fake, labels))

    def g_loss(self, discriminator, fake, labels):
        logits = self.discriminate(discriminator, fake, labels)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # non-saturating: -log D(G(z))
