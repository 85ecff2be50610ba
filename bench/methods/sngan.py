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
`ac` work too. With `architecture: resnet` the projection cGAN is the authors' ResNet one and mimicry's cgan_pd_32:
conditional BatchNorm in G's up-blocks (here a label embedding of `label_embedding_dim` mapped linearly to each
BatchNorm's gain and bias, where the authors' code keeps a gain and bias per class: the same family of functions)
and the projection in D (bench/nets/resnet.py).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

import bench.methods.optim as optim
from bench.methods.adversarial import AdversarialMethod, ConditionalHyper, preset
from bench.methods.base import added, register_method
from bench.methods.objectives import ObjectiveName
from bench.nets.resnet import ResNetDiscriminator, ResNetGenerator


class SNGANHyper(ConditionalHyper):
    latent_dim: int = Field(128, gt=0)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    critic_steps: int = Field(1, ge=1, description="discriminator steps per generator step (the paper's n_dis)")
    objective: ObjectiveName = added("hinge")
    architecture: Literal["dcgan", "resnet"] = added(
        "dcgan", description="dcgan: bench's DCGAN nets; resnet: the 32 px ResNet baseline (bench/nets/resnet.py)")
    lr_decay: Literal["none", "linear"] = added("none", description="learning rates constant, or linearly to 0 at the "
                                                                   "last step (mimicry)")
    adam_eps: float = added(1e-8, gt=0, description="Adam's epsilon (StudioGAN: 1e-6)")

    @model_validator(mode="after")
    def _resnet_conditions_by_projection(self):
        if self.architecture == "resnet" and self.conditioning not in ("none", "projection"):
            raise ValueError(f"architecture: resnet takes conditioning: none or projection (conditional BatchNorm in "
                             f"G, the projection in D), not {self.conditioning}; use architecture: dcgan for it")
        return self


@register_method
class SNGAN(AdversarialMethod):
    name = "sngan"
    description = ("Miyato et al. 2018: spectral norm on every layer of D (no BatchNorm), hinge loss, "
                   "Adam 2e-4 (0.5, 0.999); conditioning: projection for the cGAN")
    Hyper = SNGANHyper

    def discriminator_norm(self) -> str:
        return "spectral"

    def build(self):
        if self.hp.architecture == "dcgan":
            return super().build()
        hp, s = self.hp, self.shape
        classes = s.n_classes if self.conditional else 0
        return {"generator": ResNetGenerator(hp.latent_dim, s.channels, s.resolution, hp.width, classes,
                                             hp.label_embedding_dim),
                "discriminator": ResNetDiscriminator(s.channels, s.resolution, hp.width, classes)}

    def make_optimizers(self):
        hp = self.hp
        return {name: optim.adam(self.nets[name].parameters(), lr=lr, betas=(hp.beta1, hp.beta2), eps=hp.adam_eps)
                for name, lr in (("generator", hp.lr_g), ("discriminator", hp.lr_d))}

    def make_schedulers(self, total_steps: int) -> dict:
        if self.hp.lr_decay == "none":
            return {}

        def factor(step: int) -> float:  # 1 at the first step, linearly to 0 at the last (mimicry's `linear`)
            return max(0.0, 1 - step / max(1, total_steps))

        return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in self.optimizers.items()}

    def step(self, ctx):
        losses = super().step(ctx)
        for scheduler in self.schedulers.values():
            scheduler.step()
        return losses


# The ResNet baseline with each published optimiser setting, under its source's name: mimicry's (examples/
# sngan_example.py: Adam 2e-4, betas (0.0, 0.9), 5 D steps, linear decay; ndf 128, ngf 256; its cgan_pd_32 trains
# the projection cGAN alike) and StudioGAN's (src/configs/CIFAR10/SNGAN.yaml over src/config.py: Adam 2e-4, betas
# (0.5, 0.999), eps 1e-6, 5 D steps; its CIFAR-10 SNGAN is the projection cGAN: `conditioning: projection`).
SNGAN_MIMICRY = register_method(preset(
    SNGAN, "sngan-mimicry", "SNGAN's 32 px ResNet with mimicry's training: Adam 2e-4 (0.0, 0.9), 5 D steps, linear "
    "LR decay, hinge", architecture="resnet", width=128, beta1=0.0, beta2=0.9, critic_steps=5, lr_decay="linear"))
SNGAN_STUDIOGAN = register_method(preset(
    SNGAN, "sngan-studiogan", "SNGAN's 32 px ResNet with StudioGAN's training: Adam 2e-4 (0.5, 0.999), eps 1e-6, "
    "5 D steps, hinge", architecture="resnet", width=128, beta1=0.5, beta2=0.999, adam_eps=1e-6, critic_steps=5))
