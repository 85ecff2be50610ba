"""SNGAN: Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative Adversarial Networks", ICLR 2018.

Every weight of the discriminator (convolutions, linear layers, the projection's class embedding) is divided by its
largest singular value, estimated by one power iteration per forward pass (bench/nets/conv.py, `norm: spectral`),
which bounds D's Lipschitz constant without a penalty or clipping; D has no BatchNorm. The hinge loss (Lim & Ye 2017),
with which the paper's SN-GANs scored better than with cross-entropy: D: E relu(1 - D(x)) + E relu(1 + D(G(z))),
G: -E D(G(z)). Latent z of 128 dimensions, N(0, I), as the paper's networks and the authors' code (dim_z: 128).
Networks are bench's DCGAN nets (the paper's "standard CNN" is a DCGAN-like CNN with extra 3x3 layers); G keeps its
BatchNorm, as the paper's.

Optimizer: Adam lr 2e-4, betas (0.5, 0.999), one D step per G step: Table 1's setting C (Radford et al.'s), one of
the six settings over which the paper shows SN-GANs robust, chosen among them because at
bench's CPU budgets one D step per G step gives five times the generator steps: at the quickstart's budget (25 epochs
of digits at 16 px, width 32) with projection, an oracle classifier reads 99% of its samples as their labels, 47% with
5 D steps, 74% with the authors' code's betas (0.0, 0.9) and 5 D steps. Other published defaults, each with
n_dis 5 (`critic_steps: 5` here, read by the step): the authors' code uses Adam 2e-4, betas (0.0, 0.9), both for
its ResNets with a linear learning-rate decay (pfnet-research/sngan_projection, configs/sn_cifar10_unconditional.yml)
and for its standard CNN (pfnet-research/chainer-gan-lib, train.py); so does mimicry (examples/sngan_example.py,
ResNet, linear decay); StudioGAN (src/configs/CIFAR10/SNGAN.yaml over src/config.py's defaults) uses Adam 2e-4,
betas (0.5, 0.999), a ResNet and a projection discriminator.

The conditioning axis of the DCGAN family comes with it: `conditioning: projection` is Miyato & Koyama 2018's cGAN
(the spectral norm covers the class embedding, as the authors' SNEmbedID, dis_models/snresnet_32.py); `concat` and
`ac` work too.
"""

from __future__ import annotations

from pydantic import Field

from bench.methods.adversarial import AdversarialMethod, ConditionalHyper
from bench.methods.base import added, register_method
from bench.methods.objectives import ObjectiveName


class SNGANHyper(ConditionalHyper):
    latent_dim: int = Field(128, gt=0)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    critic_steps: int = Field(1, ge=1, description="discriminator steps per generator step (the paper's n_dis)")
    objective: ObjectiveName = added("hinge")


@register_method
class SNGAN(AdversarialMethod):
    name = "sngan"
    description = ("Miyato et al. 2018: spectral norm on every layer of D (no BatchNorm), hinge loss, "
                   "Adam 2e-4 (0.5, 0.999); conditioning: projection for the cGAN")
    Hyper = SNGANHyper

    def discriminator_norm(self) -> str:
        return "spectral"
