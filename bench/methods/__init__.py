"""Method registry. A method is a GAN: its networks, objective and optimizers, with defaults cited from the papers.

The one training loop (bench.train) alternates `critic_steps` discriminator steps and one generator step and
asks the method for everything else. Adding a GAN is one module and one import line at the bottom of this file.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from bench.errors import BenchError


class Hyper(BaseModel):
    """Hyperparameters every method has; methods subclass it and change the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latent_dim: int = Field(100, gt=0)
    width: int = Field(64, gt=0, description="channels of the first discriminator / last generator layer")
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    critic_steps: int = Field(1, ge=1, description="discriminator/critic steps per generator step")


class Method:
    """Base GAN: DCGAN networks, Adam, no objective. Subclasses define `d_loss` and `g_loss`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Hyper: ClassVar[type[Hyper]] = Hyper
    conditional: ClassVar[bool] = False

    def __init__(self, hp: Hyper, channels: int, resolution: int, n_classes: int = 0):
        if self.conditional and n_classes < 2:
            raise BenchError(f"method '{self.name}' is conditional and needs a labelled dataset (class subfolders)")
        self.hp, self.channels, self.resolution, self.n_classes = hp, channels, resolution, n_classes

    # networks -------------------------------------------------------------------------------------------
    def build_generator(self) -> nn.Module:
        from bench.nets.conv import ConvGenerator, init_dcgan_weights

        g = ConvGenerator(self.hp.latent_dim, self.channels, self.resolution, self.hp.width)
        init_dcgan_weights(g)
        return g

    def build_discriminator(self) -> nn.Module:
        from bench.nets.conv import ConvDiscriminator, init_dcgan_weights

        d = ConvDiscriminator(self.channels, self.resolution, self.hp.width, norm=self.discriminator_norm())
        init_dcgan_weights(d)
        return d

    def discriminator_norm(self) -> str:
        return "batch"

    def optimizers(self, generator: nn.Module, discriminator: nn.Module):
        hp = self.hp
        opt_g = torch.optim.Adam(generator.parameters(), lr=hp.lr_g, betas=(hp.beta1, hp.beta2))
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=hp.lr_d, betas=(hp.beta1, hp.beta2))
        return opt_g, opt_d

    # the step ---------------------------------------------------------------------------------------------
    def generate(self, generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return generator(z)

    @torch.no_grad()
    def sample(self, generator: nn.Module, n: int, rng: torch.Generator, class_weights: torch.Tensor | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """n images in [-1, 1] from latents (and, if conditional, labels drawn by class frequency) off `rng` alone."""
        device = rng.device if device is None else device
        z = torch.randn(n, self.hp.latent_dim, generator=rng, device=rng.device).to(device)
        labels = None
        if self.conditional and class_weights is not None:
            labels = torch.multinomial(class_weights.to(rng.device), n, replacement=True, generator=rng).to(device)
        return self.generate(generator, z, labels).float()

    def discriminate(self, discriminator: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return discriminator(x)

    def d_loss(self, discriminator, real, fake, labels, rng: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, discriminator, fake, labels) -> torch.Tensor:
        raise NotImplementedError

    def after_d_step(self, discriminator: nn.Module) -> None:
        """Called after every discriminator optimizer step (WGAN clips weights here)."""


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise BenchError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


# Methods register themselves on import.
from bench.methods import cdcgan, dcgan, lsgan, vanilla, wgan, wgan_gp  # noqa: E402,F401
