"""InfoGAN: Chen et al., "InfoGAN: Interpretable Representation Learning by Information Maximizing GANs",
NeurIPS 2016 (seed 003).

G takes z with a categorical code (10 values, one-hot) and continuous codes (2, uniform on [-1, 1]); a Q head on the
discriminator's body predicts the codes of a fake image, and the mutual-information bound L_I (the categorical
cross-entropy, weight lambda_cat = 1, plus for the continuous codes a Gaussian of unit variance, i.e. half the squared
error, weight lambda_cont = 0.1) is minimised by G and by D with its Q head, as the official code does
(openai/InfoGAN infogan_trainer.py subtracts the MI estimate from both losses): Q shares D's body, so the info loss
shapes that body too. Works on unlabelled data: nothing tells it which code value is which digit.
The paper's MNIST settings: z of 62 dimensions, Adam lr 2e-4 for D and 1e-3 for G, beta1 0.5. Networks are bench's
DCGAN nets (the paper's MNIST nets are a small DCGAN too); Q is FC 128 - BatchNorm - LeakyReLU - FC, as the paper's.
Sample grids show one row per categorical value (the same z along a column); `bench sample --traverse` varies one code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import bench.methods.optim as optim
from bench.methods.base import Hyper, Latents, Method, StepContext, register_method
from bench.methods.objectives import OBJECTIVES
from bench.nets.conv import ConvGenerator, HeadedDiscriminator, init_dcgan_weights, split_resolution

OBJECTIVE = OBJECTIVES["bce"]  # the paper's GAN loss, non-saturating for G


class InfoGANHyper(Hyper):
    # the base Hyper gave every method critic_steps until issue 17; this step never read it (one D step per G step)
    retired: ClassVar[dict[str, Any]] = {"critic_steps": 1}
    latent_dim: int = Field(62, gt=0, description="size of the incompressible noise z")
    lr_g: float = Field(1e-3, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    categories: int = Field(10, ge=2, description="values of the categorical code")
    continuous_codes: int = Field(2, ge=0, description="continuous codes, uniform on [-1, 1]")
    lambda_cat: float = Field(1.0, ge=0)
    lambda_cont: float = Field(0.1, ge=0)
    q_hidden: int = Field(128, gt=0, description="width of Q's hidden layer")


def q_head(resolution: int, width: int, hidden: int, outputs: int) -> nn.Module:
    base, _ = split_resolution(resolution)
    head = nn.Sequential(nn.Flatten(), nn.Linear(HeadedDiscriminator.top_channels(resolution, width) * base * base,
                                                 hidden),
                         nn.BatchNorm1d(hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, outputs))
    init_dcgan_weights(head)
    return head


@register_method
class InfoGAN(Method):
    name = "infogan"
    description = ("Chen et al. 2016: 10-way categorical + 2 continuous codes, Q head on D's body, "
                   "mutual-information loss (lambda_cat 1, lambda_cont 0.1); unsupervised")
    Hyper = InfoGANHyper

    @property
    def code_size(self) -> int:
        return self.hp.categories + self.hp.continuous_codes

    def build(self):
        hp, s = self.hp, self.shape
        generator = ConvGenerator(hp.latent_dim, s.channels, s.resolution, hp.width, extra_input=self.code_size)
        init_dcgan_weights(generator)
        discriminator = HeadedDiscriminator(s.channels, s.resolution, hp.width, "batch",
                                            q_head(s.resolution, hp.width, hp.q_hidden, self.code_size))
        return {"generator": generator, "discriminator": discriminator}

    def make_optimizers(self):
        hp = self.hp
        return {name: optim.adam(self.nets[name].parameters(), lr=lr, betas=(hp.beta1, hp.beta2))
                for name, lr in (("generator", hp.lr_g), ("discriminator", hp.lr_d))}

    # latents -----------------------------------------------------------------------------------------------------
    def sample_latents(self, n, rng, labels=None, codes=None) -> Latents:
        """z ~ N(0, 1), the categorical code uniform (or `codes`' first column), continuous codes U(-1, 1)."""
        z = torch.randn(n, self.hp.latent_dim, generator=rng, device=rng.device)
        category = torch.randint(0, self.hp.categories, (n,), generator=rng, device=rng.device)
        continuous = torch.rand(n, self.hp.continuous_codes, generator=rng, device=rng.device) * 2 - 1
        return {"z": z, "category": category, "continuous": continuous}

    def generate(self, latents: Latents, network: str | None = None) -> torch.Tensor:
        net = self.nets[network or self.eval_network]
        return net(self.generator_input(latents["z"], latents["category"], latents["continuous"]))

    def generator_input(self, z, category, continuous) -> torch.Tensor:
        one_hot = F.one_hot(category, self.hp.categories).to(z.dtype)
        return torch.cat([z, one_hot, continuous.to(z.dtype)], dim=1)

    def grid_latents(self, z: torch.Tensor) -> Latents:
        """One row per categorical value, the same 8 z along each column, continuous codes at 0."""
        rows = self.hp.categories
        return {"z": z[:8].repeat(rows, 1), "category": torch.arange(rows).repeat_interleave(8),
                "continuous": torch.zeros(rows * 8, self.hp.continuous_codes)}

    def traversal(self, code: str, z: torch.Tensor, steps: int = 8) -> Latents:
        """A grid that varies one code along each row (the same z per row, the other codes fixed at their
        middle): `category` walks its values, `c1`, `c2`, ... walk [-1, 1] (the paper's figure 2 goes to +-2)."""
        n = z.shape[0]
        if code == "category":
            values = torch.arange(self.hp.categories)
            return {"z": z.repeat_interleave(len(values), 0), "category": values.repeat(n),
                    "continuous": torch.zeros(n * len(values), self.hp.continuous_codes)}
        index = int(code[1:]) - 1
        values = torch.linspace(-1, 1, steps)
        continuous = torch.zeros(n * steps, self.hp.continuous_codes)
        continuous[:, index] = values.repeat(n)
        return {"z": z.repeat_interleave(steps, 0), "category": torch.zeros(n * steps, dtype=torch.long),
                "continuous": continuous}

    def codes(self) -> list[str]:
        return ["category"] + [f"c{i + 1}" for i in range(self.hp.continuous_codes)]

    def probe(self, latents):
        fake = self.generate(latents, network="generator")
        return fake, self.nets["discriminator"](fake)[0]

    # the step ----------------------------------------------------------------------------------------------------
    def info_loss(self, q: torch.Tensor, category: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """L_I's bound: cross-entropy of the categorical code + half the squared error of the continuous ones."""
        hp = self.hp
        loss = hp.lambda_cat * F.cross_entropy(q[:, :hp.categories], category)
        if hp.continuous_codes:
            loss = loss + hp.lambda_cont * 0.5 * (q[:, hp.categories:] - continuous).pow(2).sum(dim=1).mean()
        return loss

    def step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        g, d = self.step_nets["generator"], self.step_nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        real = ctx.batches.next()["images"]
        latents = self.sample_latents(real.shape[0], ctx.rng)
        with ctx.autocast():
            fake = g(self.generator_input(latents["z"], latents["category"], latents["continuous"]))
        opt_d.zero_grad(set_to_none=True)
        with ctx.autocast():
            real_scores = d(real)[0]
            fake_scores, q, _ = d(fake.detach())
            loss_d = OBJECTIVE.d_loss(real_scores, fake_scores) + self.info_loss(q, latents["category"],
                                                                               latents["continuous"])
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            fake_scores, q, _ = d(fake)
            loss_info = self.info_loss(q, latents["category"], latents["continuous"])
            loss_g = OBJECTIVE.g_loss(fake_scores) + loss_info
        loss_g.backward()
        opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_info": loss_info.detach()}
