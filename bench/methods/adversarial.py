"""The DCGAN family's step, with the objective, penalties and conditioning as parts a method composes.

The objective is a hyperparameter, `objective: bce | ls | wgan | hinge` (bench/methods/objectives.py's table);
each method's default is its paper's, and a default stays out of a trial's key.

Per generator step: `critic_steps` discriminator steps, each on a fresh real batch and fresh latents, then one
generator step on the fake batch of the last discriminator step. The fakes take the real batch's labels (a draw from
the data's class distribution), so a conditional method spends no randomness on labels while training.

Conditioning (`conditioning:` in a suite, for dcgan, lsgan, wgan, wgan-gp; StudioGAN treats it as an axis):
- `none`: G(z), D(x).
- `concat`: G(z, y) takes a label embedding beside z; D takes the label as an extra image channel (Mirza &
  Osindero 2014; the LEGO study's conditional DCGAN, seed 000).
- `ac`: the auxiliary classifier (Odena et al. 2017): G(z, y) as for concat; D also predicts the class from its
  body. D minimises its adversarial loss plus the class cross-entropy on real AND on fake images, G its adversarial
  loss plus the class cross-entropy of its fakes: the paper's L_C, which D and G both maximise. Published codes
  disagree on the fake term for D (several drop it for stability); it is kept here because it is the paper's
  objective and because the classifier it trains is what pushes G toward its labels.
- `projection`: the projection discriminator (Miyato & Koyama 2018): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>.

Small data (every method of the family, each off by default so existing trials keep their keys and numbers):
- `augment: diffaugment` transforms every input of D, real and fake, in the D and the G step, with
  `diffaugment_policy` (diffaugment.py); `augment: ada` does so with ADA's pipeline at a probability p that follows
  D's overfitting (ada.py; refused with a wgan critic); the gradient penalty's interpolates are between transformed
  images, so D never sees an untransformed one;
- `lecam: WEIGHT` adds the LeCam regulariser to D's loss (lecam.py; the weight depends on D's output scale);
- `bcr: WEIGHT` balanced consistency on real and fake D inputs, `zcr_d` / `zcr_g` / `zcr_sigma` latent consistency
  (consistency.py).
Their terms are logged beside the losses (loss_lecam, loss_bcr, loss_zcr, loss_zcr_g) before their weights, and
ADA's p and r_t as ada_p and ada_rt.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, create_model, field_validator, model_validator
from torch import nn

import bench.methods.optim as optim
from bench.methods.ada import AdaptiveAugment
from bench.methods.base import Hyper, Latents, Method, StepContext, added
from bench.methods.consistency import flip_translate, squared_difference
from bench.methods.diffaugment import DEFAULT_POLICY, diffaugment, parse_policy
from bench.methods.lecam import LeCam
from bench.methods.objectives import OBJECTIVES, Objective, ObjectiveName
from bench.methods.penalties import gradient_penalty
from bench.nets import conv

CONDITIONING = ("none", "concat", "ac", "projection")


class AdversarialHyper(Hyper):
    """Hyperparameters of every method whose step is AdversarialMethod.step: it reads `critic_steps` and
    `objective`."""

    critic_steps: int = Field(1, ge=1, description="discriminator/critic steps per generator step")
    objective: ObjectiveName = added("bce", description="adversarial loss: bce, ls, wgan or hinge")
    augment: Literal["none", "diffaugment", "ada"] = added(
        "none", description="augmentation of every D input, real and fake, in the D and G steps: none, "
                            "diffaugment (Zhao et al. 2020) or ada (Karras et al. 2020, p adapted to D's overfitting)")
    diffaugment_policy: str = added(DEFAULT_POLICY, description="DiffAugment's ops, a comma-separated subset of "
                                                                "color,translation,cutout")
    ada_target: float = added(0.6, gt=0, lt=1, description="ADA's target for r_t = E[sign(D(real) - centre)]")
    ada_interval: int = added(4, ge=1, description="ADA adjusts p after every N discriminator batches")
    ada_kimg: float = added(500.0, gt=0, description="ADA: thousands of real images for p to move from 0 to 1")
    lecam: float = added(0.0, ge=0, description="LeCam regulariser weight (Tseng et al. 2021), 0 = off; it depends "
                                                "on D's output scale: 0.3 for BigGAN-style logits, ~1e-6 for "
                                                "StyleGAN2's")
    lecam_decay: float = added(0.99, ge=0, lt=1, description="decay of LeCam's moving averages of D's outputs")
    lecam_start: int = added(1000, ge=0, description="generator step from which LeCam's averages decay (before: "
                                                     "the current means)")
    bcr: float = added(0.0, ge=0, description="balanced consistency regularisation weight on real and fake "
                                              "(Zhao et al. 2021; published 10), 0 = off")
    zcr_d: float = added(0.0, ge=0, description="latent consistency: D's weight (StudioGAN 20, the paper 5), 0 = off")
    zcr_g: float = added(0.0, ge=0, description="latent consistency: G's weight (published 0.5), 0 = off")
    zcr_sigma: float = added(0.05, gt=0, description="latent consistency: std of the latent perturbation")

    @field_validator("diffaugment_policy")
    @classmethod
    def _known_ops(cls, value: str) -> str:
        parse_policy(value)
        return value

    @model_validator(mode="after")
    def _ada_needs_centred_outputs(self):
        if self.augment == "ada" and OBJECTIVES[self.objective].centre is None:
            raise ValueError(f"augment: ada adapts p to the sign of D's outputs on real images, and a {self.objective} "
                             "critic's outputs have no fixed centre: use augment: diffaugment, or another objective")
        return self


class ConditionalHyper(AdversarialHyper):
    """Hyperparameters of the DCGAN family: conditioning is an axis of every loss."""

    conditioning: Literal["none", "concat", "ac", "projection"] = added(
        "none", description="how labels enter G and D: none, concat, ac (auxiliary classifier), projection")
    label_embedding_dim: int = added(50, gt=0, description="size of the label embedding fed to G (and concat D)")
    class_loss_weight: float = added(1.0, ge=0, description="weight of the auxiliary classifier's loss (ac)")


class Scores(NamedTuple):
    scores: torch.Tensor  # (N,) raw discriminator outputs
    class_logits: torch.Tensor | None = None  # (N, classes) with the auxiliary classifier


class Scored(NamedTuple):
    """One critic step's D loss, its named parts, and D's raw outputs on the real and the fake batch."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    real: torch.Tensor
    fake: torch.Tensor


class AdversarialMethod(Method):
    """G and D from bench.nets.conv, Adam, `critic_steps` D steps per G step; the objective by name."""

    Hyper: ClassVar[type[Hyper]] = ConditionalHyper

    def __init__(self, hp: Hyper, shape):
        self.conditioning = getattr(hp, "conditioning", "none")
        super().__init__(hp, shape)
        self.ops = parse_policy(hp.diffaugment_policy) if hp.augment == "diffaugment" else ()
        self.ada = None
        if hp.augment == "ada":
            self.ada = AdaptiveAugment(hp.ada_target, hp.ada_interval, hp.ada_kimg, self.objective.centre)
        self.lecam = LeCam(hp.lecam_decay, hp.lecam_start) if hp.lecam > 0 else None

    def augmented(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """What D sees of a batch: DiffAugment's T(x) or ADA's pipeline at its p, with fresh draws; or the batch."""
        if self.ada is not None:
            return self.ada(x, rng)
        return diffaugment(x, self.ops, rng) if self.ops else x

    def extra_state(self) -> dict[str, Any]:
        state = {}
        if self.lecam is not None:
            state["lecam"] = self.lecam.state_dict()
        if self.ada is not None:
            state["ada"] = self.ada.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.lecam is not None:
            self.lecam.load_state_dict(state["lecam"])
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])

    @property
    def objective(self) -> Objective:
        return OBJECTIVES[self.hp.objective]

    @property
    def conditional(self) -> bool:
        return self.conditioning != "none"

    def uses_labels(self) -> bool:
        return self.conditional

    @classmethod
    def real_batches_per_step(cls, hp: Hyper) -> int:
        return hp.critic_steps  # the step below draws a fresh real batch for every critic step

    # networks ---------------------------------------------------------------------------------------------
    def discriminator_norm(self) -> str:
        return "batch"

    def build(self) -> dict[str, nn.Module]:
        hp, s = self.hp, self.shape
        if self.conditional:
            generator = conv.ConditionalGenerator(hp.latent_dim, s.channels, s.resolution, hp.width, s.n_classes,
                                                  hp.label_embedding_dim)
        else:
            generator = conv.ConvGenerator(hp.latent_dim, s.channels, s.resolution, hp.width)
            conv.init_dcgan_weights(generator)
        norm = self.discriminator_norm()
        if self.conditioning == "concat":
            discriminator = conv.ConcatDiscriminator(s.channels, s.resolution, hp.width, s.n_classes,
                                                     hp.label_embedding_dim, norm)
        elif self.conditioning == "ac":
            discriminator = conv.HeadedDiscriminator(s.channels, s.resolution, hp.width, norm,
                                                     conv.class_head(s.resolution, hp.width, s.n_classes))
        elif self.conditioning == "projection":
            discriminator = conv.ProjectionDiscriminator(s.channels, s.resolution, hp.width, s.n_classes, norm)
        else:
            discriminator = conv.ConvDiscriminator(s.channels, s.resolution, hp.width, norm=norm)
            conv.init_dcgan_weights(discriminator)
        return {"generator": generator, "discriminator": discriminator}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hp
        return {name: optim.adam(self.nets[name].parameters(), lr=lr, betas=(hp.beta1, hp.beta2))
                for name, lr in (("generator", hp.lr_g), ("discriminator", hp.lr_d))}

    # latents and forward passes ----------------------------------------------------------------------------
    def sample_latents(self, n, rng, labels=None, codes=None) -> Latents:
        latents = super().sample_latents(n, rng)
        if self.conditional:
            latents["labels"] = self.draw_labels(n, rng) if labels is None else labels.to(rng.device)
        return latents

    def generate(self, latents: Latents, network: str | None = None) -> torch.Tensor:
        net = self.nets[network or self.eval_network]
        return net(latents["z"], latents["labels"]) if self.conditional else net(latents["z"])

    def grid_latents(self, z: torch.Tensor) -> Latents:
        return self.class_grid(z) if self.conditional else {"z": z}

    def discriminate(self, d: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> Scores:
        if self.conditioning == "none":
            return Scores(d(x))
        if self.conditioning == "ac":
            scores, logits, _ = d(x)
            return Scores(scores, logits)
        return Scores(d(x, labels))

    @torch.no_grad()
    def real_scores(self, images: torch.Tensor, labels: torch.Tensor | None) -> float:
        """D's mean raw output on real images, in eval mode (no batch statistics, no power iteration)."""
        with self.eval_mode():
            return float(self.discriminate(self.nets["discriminator"], images, labels).scores.float().mean())

    def probe(self, latents):
        fake = self.generate(latents, network="generator")
        return fake, self.discriminate(self.nets["discriminator"], fake, latents.get("labels")).scores

    # the step -----------------------------------------------------------------------------------------------
    def generate_batch(self, g: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return g(z, labels) if self.conditional else g(z)

    def step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        g, d = self.step_nets["generator"], self.step_nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        critic_steps = self.hp.critic_steps
        for i in range(critic_steps):
            batch = ctx.batches.next()
            real, labels = batch["images"], batch["labels"]
            z = torch.randn(real.shape[0], self.hp.latent_dim, device=real.device, generator=ctx.rng)
            # only the last critic step's fakes feed the generator step: only they need a graph through G
            with torch.set_grad_enabled(i == critic_steps - 1), ctx.autocast():
                fake = self.generate_batch(g, z, labels)
            opt_d.zero_grad(set_to_none=True)
            with ctx.autocast():
                seen_real, seen_fake = self.augmented(real, ctx.rng), self.augmented(fake.detach(), ctx.rng)
                scored = self.discriminator_loss(d, seen_real, seen_fake, labels, ctx.rng)
                loss_d, terms = self.regularised(d, g, scored, seen_real, seen_fake, fake.detach(), z, labels, ctx)
            if self.ada is not None:
                self.ada.observe(scored.real)
            loss_d.backward()
            opt_d.step()
            self.after_discriminator_step()
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_g = self.generator_loss(d, self.augmented(fake, ctx.rng), labels)
            if self.hp.zcr_g > 0:  # G should move when z moves: its loss falls as G(z + dz) parts from G(z)
                dz = torch.randn(z.shape, device=z.device, generator=ctx.rng) * self.hp.zcr_sigma
                spread = squared_difference(fake, self.generate_batch(g, z + dz, labels))
                loss_g = loss_g - self.hp.zcr_g * spread
                terms["loss_zcr_g"] = spread
        loss_g.backward()  # this also fills D's gradients; D's next zero_grad clears them before they are used
        opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **{k: v.detach() for k, v in terms.items()},
                **self.diagnostics(loss_d.device)}

    def diagnostics(self, device) -> dict[str, torch.Tensor]:
        """ADA's p after this step and its last r_t (once there is one), logged beside the losses."""
        if self.ada is None:
            return {}
        out = {"ada_p": torch.tensor(self.ada.p, device=device)}
        if self.ada.rt == self.ada.rt:  # not NaN: an adjustment has happened
            out["ada_rt"] = torch.tensor(self.ada.rt, device=device)
        return out

    def discriminator_loss(self, d, real, fake, labels, rng) -> Scored:
        """The D loss of one critic step, its named parts (logged beside it) and D's outputs on real and fake."""
        real_out = self.discriminate(d, real, labels)
        fake_out = self.discriminate(d, fake, labels)
        loss = self.objective.d_loss(real_out.scores, fake_out.scores)
        terms: dict[str, torch.Tensor] = {}
        if self.conditioning == "ac":
            real_class = F.cross_entropy(real_out.class_logits, labels)
            loss = loss + self.hp.class_loss_weight * (real_class + F.cross_entropy(fake_out.class_logits, labels))
            terms["loss_class"] = real_class  # how well D classifies real images
        return Scored(loss, terms, real_out.scores, fake_out.scores)

    def regularised(self, d, g, scored: Scored, seen_real, seen_fake, fake, z, labels,
                    ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss with the small-data regularisers the trial asks for (LeCam, bCR, zCR), each term logged."""
        hp, loss, terms = self.hp, scored.loss, dict(scored.terms)
        if self.lecam is not None:
            self.lecam.update(scored.real, scored.fake, ctx.step)
            terms["loss_lecam"] = self.lecam.penalty(scored.real, scored.fake)
            loss = loss + hp.lecam * terms["loss_lecam"]
        if hp.bcr > 0:  # D should not care about a flip and a small shift, of real and of fake images alike
            terms["loss_bcr"] = (
                squared_difference(scored.real, self.discriminate(d, flip_translate(seen_real, ctx.rng), labels).scores)
                + squared_difference(scored.fake,
                                     self.discriminate(d, flip_translate(seen_fake, ctx.rng), labels).scores))
            loss = loss + hp.bcr * terms["loss_bcr"]
        if hp.zcr_d > 0:  # ... nor about a small move of z
            dz = torch.randn(z.shape, device=z.device, generator=ctx.rng) * hp.zcr_sigma
            with torch.no_grad():
                moved = self.generate_batch(g, z + dz, labels)
            here = self.discriminate(d, fake, labels).scores if self.ops else scored.fake
            terms["loss_zcr"] = squared_difference(here, self.discriminate(d, moved, labels).scores)
            loss = loss + hp.zcr_d * terms["loss_zcr"]
        return loss, terms

    def generator_loss(self, d, fake, labels) -> torch.Tensor:
        out = self.discriminate(d, fake, labels)
        loss = self.objective.g_loss(out.scores)
        if self.conditioning == "ac":
            loss = loss + self.hp.class_loss_weight * F.cross_entropy(out.class_logits, labels)
        return loss

    def after_discriminator_step(self) -> None:
        """Called after every discriminator optimizer step (WGAN clips weights here)."""


class GradientPenaltyHyper(ConditionalHyper):
    gradient_penalty_weight: float = Field(10.0, ge=0)


class GradientPenaltyMethod(AdversarialMethod):
    """Adds Gulrajani et al.'s penalty on interpolates to the discriminator's loss."""

    Hyper: ClassVar[type[Hyper]] = GradientPenaltyHyper

    def discriminator_loss(self, d, real, fake, labels, rng):
        # drawn before D's forward passes, as Algorithm 1 draws it with the batch
        eps = torch.rand(real.shape[0], 1, 1, 1, generator=rng, device=real.device, dtype=real.dtype)
        scored = super().discriminator_loss(d, real, fake, labels, rng)
        penalty = gradient_penalty(lambda x: self.discriminate(d, x, labels).scores, real, fake, eps)
        return scored._replace(loss=scored.loss + self.hp.gradient_penalty_weight * penalty,
                               terms={**scored.terms, "loss_gp": penalty})


def preset(base: type[AdversarialMethod], name: str, description: str, **defaults: Any) -> type[AdversarialMethod]:
    """A registry entry over a method with other defaults (e.g. acgan = dcgan with conditioning: ac), under the
    name the reports use; a suite can still override every hyperparameter."""
    fields = {k: (base.Hyper.model_fields[k].annotation, Field(v, description=base.Hyper.model_fields[k].description))
              for k, v in defaults.items()}
    hyper = create_model(f"{base.Hyper.__name__}_{name.replace('-', '_')}", __base__=base.Hyper, **fields)
    return type(base.__name__ + "Preset", (base,), {"name": name, "description": description, "Hyper": hyper,
                                                    "__module__": base.__module__})
