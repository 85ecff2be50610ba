"""BigGAN, small: Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural Image Synthesis",
ICLR 2019, at the 32 px ResNet scale of its CIFAR-10 runs (BigGAN-PyTorch's BigGAN.py; StudioGAN's big_resnet.py,
src/configs/CIFAR10/BigGAN-Mod.yaml).

What it adds to the ResNet SNGAN (bench/methods/sngan.py, bench/nets/resnet.py):
- conditional BatchNorm in G whose gains and biases come from a class embedding shared by every block
  (`embedding_dim`, the papers' shared_dim 128) and, with `hierarchical`, from a chunk of z per block (z split into
  equal chunks, the first feeding the linear layer: latent_dim must divide by the number of blocks + 1);
- the projection discriminator (Miyato & Koyama 2018), spectral norm in D and, as BigGAN, in G (`generator_norm`);
- an exponential moving average of G's weights that samples and metrics come from (`ema_decay` 0.9999 from
  generator step `ema_start` 1000 on, a copy of G before: BigGAN-PyTorch's --ema_start, StudioGAN's g_ema_start);
- the hinge loss.
Left out: self-attention (StudioGAN's BigGAN-Mod puts one block at 16x16), orthogonal regularisation (0 in the
CIFAR-10 scripts) and the truncation trick.

Defaults: z 80 (StudioGAN's BigGAN-Mod), Adam 2e-4 (0.5, 0.999) and one D step per G step, as bench's `sngan` (its
Table 1 setting C, which gives five times the generator steps at CPU budgets). The published optimiser settings are
presets named after their source: `biggan-mimicry` (mimicry's for its ResNet GANs, examples/sngan_example.py: Adam
2e-4 (0.0, 0.9), 5 D steps, linear decay) and `biggan-studiogan` (src/config.py's defaults under BigGAN-Mod.yaml:
Adam 2e-4 (0.5, 0.999), eps 1e-6, 5 D steps).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.methods.adversarial import preset
from bench.methods.base import register_method
from bench.methods.ema import ema_copy, ema_update
from bench.methods.sngan import SNGAN, SNGANHyper
from bench.nets.conv import spectral_norm_all
from bench.nets.resnet import ResNetDiscriminator, ResNetGenerator


class BigGANHyper(SNGANHyper):
    latent_dim: int = Field(80, gt=0, description="z; with hierarchical, split into one chunk per G block + 1")
    width: int = Field(128, gt=0, description="D's channels; G's are twice as many")
    architecture: Literal["resnet"] = Field("resnet", description="BigGAN's nets are the ResNet ones")
    conditioning: Literal["none", "projection"] = Field(
        "projection", description="projection: conditional BatchNorm in G and the projection in D; none: neither")
    embedding_dim: int = Field(128, gt=0, description="the class embedding shared by G's blocks (shared_dim)")
    hierarchical: bool = Field(True, description="a chunk of z into every block's conditional BatchNorm")
    generator_norm: Literal["spectral", "none"] = Field("spectral", description="spectral norm in G too, as BigGAN")
    ema_decay: float = Field(0.9999, ge=0, lt=1, description="decay of the moving average of G samples come from")
    ema_start: int = Field(1000, ge=0, description="generator step from which the average decays (before: a copy)")


@register_method
class BigGAN(SNGAN):
    name = "biggan"
    description = ("Brock et al. 2019 at 32 px: ResNet G with conditional BN from a shared class embedding and "
                   "hierarchical z, projection D, spectral norm in both, hinge, EMA of G")
    Hyper = BigGANHyper
    eval_network = "generator_ema"

    def build(self):
        hp, s = self.hp, self.shape
        classes = s.n_classes if self.conditional else 0
        generator = ResNetGenerator(hp.latent_dim, s.channels, s.resolution, hp.width, classes, hp.embedding_dim,
                                    hp.hierarchical)
        if hp.generator_norm == "spectral":
            spectral_norm_all(generator, embeddings=False)  # BigGAN's shared embedding is a plain one
        return {"generator": generator,
                "discriminator": ResNetDiscriminator(s.channels, s.resolution, hp.width, classes),
                "generator_ema": ema_copy(generator)}

    def step(self, ctx):
        losses = super().step(ctx)
        decay = self.hp.ema_decay if ctx.step + 1 >= self.hp.ema_start else 0.0  # a copy of G before ema_start
        ema_update(self.nets["generator_ema"], self.nets["generator"], decay)
        return losses


BIGGAN_MIMICRY = register_method(preset(
    BigGAN, "biggan-mimicry", "BigGAN at 32 px with mimicry's training of its ResNet GANs: Adam 2e-4 (0.0, 0.9), "
    "5 D steps, linear LR decay", beta1=0.0, beta2=0.9, critic_steps=5, lr_decay="linear"))
BIGGAN_STUDIOGAN = register_method(preset(
    BigGAN, "biggan-studiogan", "BigGAN at 32 px with StudioGAN's training: Adam 2e-4 (0.5, 0.999), eps 1e-6, "
    "5 D steps", beta1=0.5, beta2=0.999, adam_eps=1e-6, critic_steps=5))
