"""Pix2Pix: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017
(seed 002).

A U-Net generator whose only noise is dropout (0.5, in training and at test time); a PatchGAN that judges (input,
output) pairs, so it asks "is this a plausible output for this input"; the non-saturating BCE loss (D's halved, as
the authors' code) plus L1 to the ground truth, weight 100; Adam 2e-4, beta1 0.5; batch 1; learning rate constant
for half the budget then linear to zero (the authors' code's schedule). Needs aligned pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from bench.methods.base import StepContext, register_method
from bench.methods.translation import TranslationHyper, TranslationMethod
from bench.nets.translation import PatchDiscriminator, UnetGenerator


class Pix2PixHyper(TranslationHyper):
    l1_weight: float = Field(100.0, ge=0, description="lambda of the L1 to the ground truth")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout in the U-Net's three innermost decoder layers")


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@register_method
class Pix2Pix(TranslationMethod):
    name = "pix2pix"
    description = ("Isola et al. 2017: U-Net G with dropout as noise, PatchGAN on (input, output) pairs, BCE + L1 "
                   "x100, Adam 2e-4 beta1 0.5; paired data")
    Hyper = Pix2PixHyper
    needs_pairs = True

    def build(self):
        hp, s = self.hp, self.shape
        return {"generator": UnetGenerator(s.channels, s.channels, s.resolution, hp.width, hp.dropout),
                "discriminator": PatchDiscriminator(2 * s.channels, s.resolution, hp.width, hp.patch_layers,
                                                    norm="batch")}

    def optimized(self):
        return [("generator", ["generator"], self.hp.lr_g), ("discriminator", ["discriminator"], self.hp.lr_d)]

    def generator_for(self, direction: str) -> str:
        return "generator"

    def check_shapes(self, a):
        fake = self.nets["generator"](a)
        return fake, self.nets["discriminator"](torch.cat([a, fake], dim=1))

    def translation_grid(self, a, b):
        """Rows: input, output, target."""
        with torch.no_grad(), self.eval_mode():
            return torch.cat([a, self.nets["generator"](a), b]).float()

    def step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        g, d = self.step_nets["generator"], self.step_nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        batch = ctx.batches.next()
        a, b = batch["a"], batch["b"]
        with ctx.autocast():
            fake = g(a)
        opt_d.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_d = 0.5 * (bce(d(torch.cat([a, b], 1)), 1.0) + bce(d(torch.cat([a, fake.detach()], 1)), 0.0))
        loss_d.backward()
        opt_d.step()
        d.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            adversarial = bce(d(torch.cat([a, fake], 1)), 1.0)
            l1 = (fake - b).abs().mean()
            loss_g = adversarial + self.hp.l1_weight * l1
        loss_g.backward()
        opt_g.step()
        d.requires_grad_(True)
        self.step_schedulers()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_adversarial": adversarial.detach(),
                "loss_l1": l1.detach()}
