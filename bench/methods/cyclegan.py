"""CycleGAN: Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", ICCV 2017 (seeds 002 and 004).

Two generators (A->B, B->A; ResNet, 6 blocks up to 128 px, 9 above) and two 70x70 PatchGAN discriminators with
instance norm. Least-squares adversarial loss as the authors' code (mean (D(x) - 1)^2 for G; D's loss halved);
cycle consistency |F(G(a)) - a|_1 + |G(F(b)) - b|_1 weight 10; identity |G(b) - b|_1 + |F(a) - a|_1 weight 0.5 x
the cycle weight (report 004's 5). D sees generated images through a pool of 50: once full, each new image is
swapped for a stored one with probability 0.5 and that stored one is shown instead (Shrivastava et al. 2017).
Adam 2e-4, beta1 0.5; constant learning rate for half the budget, then linear decay to zero; batch 1 by default.

Consistency regularisation (`consistency_weight` > 0, report 004 used 1): D's score of an image and of its
translated-and-flipped copy are pulled together, lambda_c E (D(x) - D(T(x)))^2 (Zhang et al. 2019, "Consistency
Regularization for GANs", whose best augmentation was a shift of a few pixels and a horizontal flip). Zhang et al.
regularise D on real images, report 004 on generated ones; bench does both (Zhao et al. 2020's balanced form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from bench.methods.base import StepContext, register_method
from bench.methods.translation import TranslationHyper, TranslationMethod
from bench.nets.translation import PatchDiscriminator, ResnetGenerator


class CycleGANHyper(TranslationHyper):
    cycle_weight: float = Field(10.0, ge=0, description="lambda of the cycle-consistency L1")
    identity_weight: float = Field(0.5, ge=0, description="identity L1 weight, as a fraction of cycle_weight")
    pool_size: int = Field(50, ge=0, description="generated images kept to show D (0: no pool)")
    consistency_weight: float = Field(0.0, ge=0, description="lambda_c of consistency regularisation (0: off)")
    blocks: int | None = Field(None, ge=1, description="residual blocks (None: 6 up to 128 px, 9 above)")


def shift_and_flip(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Zhang et al.'s T: a random shift of up to 1/8 of the side (reflect-padded) and a horizontal flip with
    probability 0.5, per image."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=rng, device=rng.device).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=rng, device=rng.device).tolist()
    flip = (torch.rand(n, generator=rng, device=rng.device) < 0.5).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    return torch.stack([o.flip(-1) if f else o for o, f in zip(out, flip, strict=True)])


class ImagePool:
    """Shrivastava et al. 2017's history of generated images (what CycleGAN's D sees), in the checkpoint."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=rng, device=rng.device).item() < 0.5:
                index = int(torch.randint(0, self.size, (), generator=rng, device=rng.device))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


@register_method
class CycleGAN(TranslationMethod):
    name = "cyclegan"
    description = ("Zhu et al. 2017: two ResNet generators, two 70x70 PatchGANs, LSGAN loss, cycle 10, identity "
                   "0.5x, image pool 50, linear LR decay; optional consistency regularisation (report 004)")
    Hyper = CycleGANHyper
    directions = ("a2b", "b2a")

    def __init__(self, hp, shape):
        super().__init__(hp, shape)
        self.pools = {"a": ImagePool(hp.pool_size), "b": ImagePool(hp.pool_size)}

    def build(self):
        hp, s = self.hp, self.shape
        blocks = hp.blocks or (6 if s.resolution <= 128 else 9)
        return {"generator_a2b": ResnetGenerator(s.channels, s.channels, hp.width, blocks),
                "generator_b2a": ResnetGenerator(s.channels, s.channels, hp.width, blocks),
                "discriminator_a": PatchDiscriminator(s.channels, s.resolution, hp.width, hp.patch_layers),
                "discriminator_b": PatchDiscriminator(s.channels, s.resolution, hp.width, hp.patch_layers)}

    def optimized(self):
        return [("generators", ["generator_a2b", "generator_b2a"], self.hp.lr_g),
                ("discriminators", ["discriminator_a", "discriminator_b"], self.hp.lr_d)]

    def generator_for(self, direction: str) -> str:
        return "generator_a2b" if direction == "a2b" else "generator_b2a"

    def check_shapes(self, a):
        fake = self.nets["generator_a2b"](a)
        back = self.nets["generator_b2a"](fake)
        self.nets["discriminator_a"](back)
        return fake, self.nets["discriminator_b"](fake)

    def translation_grid(self, a, b):
        """Rows: a, a->b, a->b->a, then b, b->a, b->a->b."""
        with torch.no_grad(), self.eval_mode():
            g, f = self.nets["generator_a2b"], self.nets["generator_b2a"]
            fake_b, fake_a = g(a), f(b)
            return torch.cat([a, fake_b, f(fake_b), b, fake_a, g(fake_a)]).float()

    # the step ------------------------------------------------------------------------------------------------
    def step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        hp, nets = self.hp, self.step_nets
        g, f, d_a, d_b = nets["generator_a2b"], nets["generator_b2a"], nets["discriminator_a"], nets["discriminator_b"]
        batch = ctx.batches.next()
        a, b = batch["a"], batch["b"]
        opt_g, opt_d = self.optimizers["generators"], self.optimizers["discriminators"]
        # generators first (the authors' order), with both discriminators frozen: their gradients would be waste
        for d in (d_a, d_b):
            d.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            fake_b, fake_a = g(a), f(b)
            adversarial = (d_b(fake_b) - 1).pow(2).mean() + (d_a(fake_a) - 1).pow(2).mean()
            cycle = (f(fake_b) - a).abs().mean() + (g(fake_a) - b).abs().mean()
            loss_g = adversarial + hp.cycle_weight * cycle
            identity = torch.zeros((), device=a.device)
            if hp.identity_weight > 0:
                identity = (g(b) - b).abs().mean() + (f(a) - a).abs().mean()
                loss_g = loss_g + hp.identity_weight * hp.cycle_weight * identity
        loss_g.backward()
        opt_g.step()
        for d in (d_a, d_b):
            d.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with ctx.autocast():
            pooled_b, pooled_a = self.pools["b"].query(fake_b, ctx.rng), self.pools["a"].query(fake_a, ctx.rng)
            loss_d = 0.5 * (self._d_loss(d_a, a, pooled_a) + self._d_loss(d_b, b, pooled_b))
            consistency = torch.zeros((), device=a.device)
            if hp.consistency_weight > 0:
                consistency = sum(((d(x) - d(shift_and_flip(x, ctx.rng))).pow(2).mean()
                                   for d, x in ((d_a, a), (d_a, pooled_a), (d_b, b), (d_b, pooled_b))),
                                  torch.zeros((), device=a.device))
                loss_d = loss_d + hp.consistency_weight * consistency
        loss_d.backward()
        opt_d.step()
        self.step_schedulers()
        losses = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_adversarial": adversarial.detach(),
                  "loss_cycle": cycle.detach(), "loss_identity": identity.detach()}
        if hp.consistency_weight > 0:
            losses["loss_consistency"] = consistency.detach()
        return losses

    @staticmethod
    def _d_loss(d, real, fake):
        return (d(real) - 1).pow(2).mean() + d(fake.detach()).pow(2).mean()

    # the pools are part of the state ------------------------------------------------------------------------
    def extra_state(self):
        return {name: torch.stack(pool.images) if pool.images else None for name, pool in self.pools.items()}

    def load_extra_state(self, state):
        for name, images in state.items():
            self.pools[name].images = [] if images is None else [i.to(self.device) for i in images]
