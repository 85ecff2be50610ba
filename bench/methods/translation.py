"""What image-to-image methods share: batches of two domains, translations instead of samples, a learning rate
that is constant for a first part of the budget and then falls linearly to zero (Zhu et al. 2017: 100 epochs
constant, 100 decaying), checkpointed with the optimizers, and the grids of input | translation | ..."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

import bench.methods.optim as optim
from bench.errors import BenchError
from bench.methods.base import Hyper, Method, added


class TranslationHyper(Hyper):
    # the base Hyper gave every method critic_steps until issue 17; these steps never read it (one D step per G step)
    retired: ClassVar[dict[str, Any]] = {"critic_steps": 1}
    width: int = Field(64, gt=0, description="channels of the first layer of G and D (ngf, ndf)")
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    decay_start: float = Field(0.5, ge=0, le=1, description="fraction of the budget after which the learning "
                                                           "rate falls linearly to zero")
    patch_layers: int | None = added(None, ge=1, le=5, description="stride-2 layers of the PatchGAN (None: 3 "
                                                                   "where the image allows, 70x70 patches)")


class TranslationMethod(Method):
    """A method whose data are two domains (bench.data.PairSet) and whose output translates an input image."""

    task: ClassVar[str] = "translation"
    directions: ClassVar[tuple[str, ...]] = ("a2b",)
    needs_pairs: ClassVar[bool] = False  # Pix2Pix learns from aligned pairs; CycleGAN from two unpaired sets

    def __init__(self, hp, shape):
        super().__init__(hp, shape)
        if shape.pairs is None:
            raise BenchError(f"method '{self.name}' translates images between two domains: give it an unpaired or "
                             "paired dataset (unpaired, paired, digits-thick, digits-edges)")
        if self.needs_pairs and shape.pairs != "paired":
            raise BenchError(f"method '{self.name}' learns from aligned pairs; dataset is unpaired (use a paired "
                             "dataset, or cyclegan)")

    def make_schedulers(self, total_steps: int) -> dict:
        start = int(self.hp.decay_start * total_steps)

        def factor(step: int) -> float:  # 1 until `start`, then linearly to 0 at the last step
            return 1.0 if step < start else max(0.0, (total_steps - step) / max(1, total_steps - start))

        return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in self.optimizers.items()}

    def make_optimizers(self):
        hp = self.hp
        return {name: optim.adam([p for n in nets for p in self.nets[n].parameters()], lr=lr,
                                       betas=(hp.beta1, hp.beta2))
                for name, nets, lr in self.optimized()}

    def optimized(self) -> list[tuple[str, list[str], float]]:
        """(optimizer name, networks it updates, learning rate)."""
        raise NotImplementedError

    def step_schedulers(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    # no latents: a translation model maps images -------------------------------------------------------------
    def sample_latents(self, n, rng, labels=None, codes=None):
        raise BenchError(f"method '{self.name}' translates images; it draws no samples from noise (bench sample "
                         "TRIAL --input DIR translates a folder)")

    def translate(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """Images of the source domain -> the target domain, through the evaluation networks, in eval mode."""
        with torch.no_grad(), self.eval_mode():
            return self.nets[self.generator_for(direction)](images.to(self.device)).float()

    def generator_for(self, direction: str) -> str:
        raise NotImplementedError

    def translation_grid(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Rows of 8: see each method."""
        raise NotImplementedError

    def probe(self, latents):
        raise NotImplementedError  # preflight checks translation networks with check_translation below

    def check_shapes(self, a: torch.Tensor) -> None:
        """Pass a batch through every generator and discriminator (preflight runs it on the meta device)."""
        raise NotImplementedError
