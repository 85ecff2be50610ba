"""DCGAN: Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016.

Non-saturating BCE loss; Adam lr 2e-4, beta1 0.5 ("0.9 resulted in training oscillation"); N(0, 0.02) init;
latent 100. Seeds 000 (LEGO study), 001 (CIFAR-10, 64 px) and 004 (MNIST) use the same recipe.
"""

from __future__ import annotations

from bench.methods.adversarial import AdversarialMethod
from bench.methods.base import register_method


@register_method
class DCGAN(AdversarialMethod):
    name = "dcgan"
    description = "Radford et al. 2016: conv G (BatchNorm, ReLU, tanh) / strided-conv D (LeakyReLU 0.2), BCE loss"
