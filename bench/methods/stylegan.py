"""A small StyleGAN: Karras, Laine & Aila, "A Style-Based Generator Architecture for GANs", CVPR 2019 (seed 003).

Networks (bench/nets/style.py): a mapping network (depth `mapping_layers`, learning-rate multiplier 0.01), a
learned 4x4 constant, AdaIN modulation and per-layer noise with a learned per-channel scale, equalised learning rate.
Training: the non-saturating logistic loss with R1 on real images (gamma 10, the paper's FFHQ setting), applied
lazily every `r1_every` steps with its weight multiplied by the interval (Karras et al. 2020); style mixing
regularisation (with probability 0.9 two latents, w1 before a random crossover layer and w2 after it); Adam 1e-3,
betas (0, 0.99). Samples and metrics come from an exponential moving average of G (half-life 10,000 images),
with truncation psi = `truncation_psi` (1.0, none, for metrics: the value is part of the evaluation protocol;
`bench sample --truncation 0.7` for pictures).

Fixed resolution (16-128 px), no progressive growing: growing ties architecture changes to the training budget,
so two methods at one budget would not see the same resolution for the same time; StyleGAN2 (Karras et al. 2020)
dropped it too, for the artefacts it leaves. Written for bench, small and clear, not a port.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

import bench.methods.optim as optim
from bench.methods.base import Hyper, Latents, Method, StepContext, register_method
from bench.methods.ema import ema_beta, ema_copy, ema_update
from bench.methods.objectives import SoftplusNonSaturating
from bench.methods.penalties import r1_penalty
from bench.nets.style import StyleDiscriminator, StyleGenerator
from bench.streams import generator, grid_noise_seed

OBJECTIVE = SoftplusNonSaturating()


class StyleGANHyper(Hyper):
    # the base Hyper gave every method critic_steps until issue 17; this step never read it (one D step per G step)
    retired: ClassVar[dict[str, Any]] = {"critic_steps": 1}
    latent_dim: int = Field(128, gt=0, description="size of z and of w")
    width: int = Field(32, gt=0, description="channels at full resolution, doubling per halving up to 8 x width")
    lr_g: float = Field(1e-3, gt=0)
    lr_d: float = Field(1e-3, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    mapping_layers: int = Field(4, ge=1, description="depth of the mapping network (the paper: 8)")
    mapping_lr_mult: float = Field(0.01, gt=0)
    style_mixing_prob: float = Field(0.9, ge=0, le=1)
    r1_gamma: float = Field(10.0, ge=0)
    r1_every: int = Field(16, ge=1, description="apply R1 every k discriminator steps (lazy regularisation)")
    ema_half_life_images: float = Field(10_000, gt=0)
    truncation_psi: float = Field(1.0, gt=0, le=1, description="psi for metrics and grids (1 = no truncation)")


@register_method
class StyleGAN(Method):
    name = "stylegan"
    description = ("Karras et al. 2019, small: mapping net (lr x0.01), AdaIN + noise, style mixing 0.9, "
                   "R1 gamma 10, EMA of G, truncation at sampling")
    Hyper = StyleGANHyper
    eval_network = "generator_ema"

    def __init__(self, hp, shape):
        super().__init__(hp, shape)
        self.truncation = hp.truncation_psi  # what samples use; `bench sample --truncation` changes it

    def build(self):
        hp, s = self.hp, self.shape
        generator = StyleGenerator(hp.latent_dim, hp.latent_dim, hp.mapping_layers, hp.mapping_lr_mult, s.channels,
                                   s.resolution, hp.width)
        return {"generator": generator, "discriminator": StyleDiscriminator(s.channels, s.resolution, hp.width),
                "generator_ema": ema_copy(generator)}

    def make_optimizers(self):
        hp = self.hp
        return {"generator": optim.adam(self.nets["generator"].parameters(), lr=hp.lr_g,
                                              betas=(hp.beta1, hp.beta2)),
                "discriminator": optim.adam(self.nets["discriminator"].parameters(), lr=hp.lr_d,
                                                  betas=(hp.beta1, hp.beta2))}

    # latents ---------------------------------------------------------------------------------------------------
    def noise_size(self) -> int:
        return self.nets["generator"].synthesis.noise_size()

    def sample_latents(self, n, rng, labels=None, codes=None) -> Latents:
        z = torch.randn(n, self.hp.latent_dim, generator=rng, device=rng.device)
        noise = torch.randn(n, self.noise_size(), generator=rng, device=rng.device)
        return {"z": z, "noise": noise}

    def grid_latents(self, z: torch.Tensor) -> Latents:
        noise = torch.randn(z.shape[0], self.noise_size(), generator=generator(grid_noise_seed()))
        return {"z": z, "noise": noise}

    def generate(self, latents: Latents, network: str | None = None) -> torch.Tensor:
        net = self.nets[network or self.eval_network]
        truncation = self.truncation if (network or self.eval_network) == self.eval_network else 1.0
        if "ws" in latents:  # per-layer styles (style mixing)
            return net.synthesis(latents["ws"], latents["noise"])
        return net(latents["z"], latents["noise"], truncation)

    def mixed_ws(self, z1: torch.Tensor, z2: torch.Tensor, crossover: int, network: str | None = None):
        """Per-layer styles: w(z1) for layers before `crossover`, w(z2) from it on (the paper's figure 3)."""
        net = self.nets[network or self.eval_network]
        w1, w2 = net.mapping(z1), net.mapping(z2)
        if self.truncation != 1.0:
            w1, w2 = net.mapping.w_avg.lerp(w1, self.truncation), net.mapping.w_avg.lerp(w2, self.truncation)
        layers = net.synthesis.num_ws
        ws = w1.unsqueeze(1).repeat(1, layers, 1)
        ws[:, crossover:] = w2.unsqueeze(1)
        return ws

    def probe(self, latents):
        fake = self.generate(latents, network="generator")
        return fake, self.nets["discriminator"](fake)

    # the step ----------------------------------------------------------------------------------------------------
    def _fake(self, g, n: int, rng: torch.Generator, device) -> torch.Tensor:
        """G's images for training: the mapping's running mean updated, styles mixed with probability p."""
        z = torch.randn(n, self.hp.latent_dim, generator=rng, device=device)
        noise = torch.randn(n, self.noise_size(), generator=rng, device=device)
        w = g.mapping(z, track=True)
        layers = g.synthesis.num_ws
        ws = w.unsqueeze(1).repeat(1, layers, 1)
        if self.hp.style_mixing_prob > 0:
            z2 = torch.randn(n, self.hp.latent_dim, generator=rng, device=device)
            crossover = torch.randint(1, layers, (n,), generator=rng, device=device)
            mixed = torch.rand(n, generator=rng, device=device) < self.hp.style_mixing_prob
            cut = torch.where(mixed, crossover, torch.full_like(crossover, layers))
            w2 = g.mapping(z2)
            later = torch.arange(layers, device=device)[None, :] >= cut[:, None]  # (n, layers): from w2
            ws = torch.where(later[:, :, None], w2.unsqueeze(1), ws)
        return g.synthesis(ws, noise)

    def step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        g, d = self.step_nets["generator"], self.step_nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        real = ctx.batches.next()["images"]
        n, device = real.shape[0], real.device
        with ctx.autocast():
            fake = self._fake(g, n, ctx.rng, device)
        opt_d.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_d = OBJECTIVE.d_loss(d(real), d(fake.detach()))
        losses: dict[str, torch.Tensor] = {}
        total_d = loss_d
        if self.hp.r1_gamma > 0 and ctx.step % self.hp.r1_every == 0:
            r1 = r1_penalty(d, real)  # lazy: every r1_every steps, weighted by the interval
            total_d = loss_d + (self.hp.r1_gamma / 2) * self.hp.r1_every * r1
            losses["loss_r1"] = r1.detach()  # logged as the mean over the steps that computed it
        total_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_g = OBJECTIVE.g_loss(d(fake))
        loss_g.backward()
        opt_g.step()
        ema_update(self.nets["generator_ema"], self.nets["generator"],
                   ema_beta(n, self.hp.ema_half_life_images))
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **losses}

