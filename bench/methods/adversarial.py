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
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, create_model
from torch import nn

import bench.methods.optim as optim
from bench.methods.base import Hyper, Latents, Method, StepContext, added
from bench.methods.objectives import OBJECTIVES, Objective, ObjectiveName
from bench.methods.penalties import gradient_penalty
from bench.nets import conv

CONDITIONING = ("none", "concat", "ac", "projection")


class AdversarialHyper(Hyper):
    """Hyperparameters of every method whose step is AdversarialMethod.step: it reads `critic_steps` and
    `objective`."""

    critic_steps: int = Field(1, ge=1, description="discriminator/critic steps per generator step")
    objective: ObjectiveName = added("bce", description="adversarial loss: bce, ls, wgan or hinge")


class ConditionalHyper(AdversarialHyper):
    """Hyperparameters of the DCGAN family: conditioning is an axis of every loss."""

    conditioning: Literal["none", "concat", "ac", "projection"] = added(
        "none", description="how labels enter G and D: none, concat, ac (auxiliary classifier), projection")
    label_embedding_dim: int = added(50, gt=0, description="size of the label embedding fed to G (and concat D)")
    class_loss_weight: float = added(1.0, ge=0, description="weight of the auxiliary classifier's loss (ac)")


class Scores(NamedTuple):
    scores: torch.Tensor  # (N,) raw discriminator outputs
    class_logits: torch.Tensor | None = None  # (N, classes) with the auxiliary classifier


class AdversarialMethod(Method):
    """G and D from bench.nets.conv, Adam, `critic_steps` D steps per G step; the objective by name."""

    Hyper: ClassVar[type[Hyper]] = ConditionalHyper

    def __init__(self, hp: Hyper, shape):
        self.conditioning = getattr(hp, "conditioning", "none")
        super().__init__(hp, shape)

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

    def probe(self, latents):
        fake = self.generate(latents, network="generator")
        return fake, self.discriminate(self.nets["discriminator"], fake, latents.get("labels")).scores

    # the step -----------------------------------------------------------------------------------------------
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
                fake = g(z, labels) if self.conditional else g(z)
            opt_d.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss_d, terms = self.discriminator_loss(d, real, fake.detach(), labels, ctx.rng)
            loss_d.backward()
            opt_d.step()
            self.after_discriminator_step()
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss_g = self.generator_loss(d, fake, labels)
        loss_g.backward()  # this also fills D's gradients; D's next zero_grad clears them before they are used
        opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **{k: v.detach() for k, v in terms.items()}}

    def discriminator_loss(self, d, real, fake, labels, rng) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The D loss of one critic step and its named parts (logged beside it)."""
        real_out = self.discriminate(d, real, labels)
        fake_out = self.discriminate(d, fake, labels)
        loss = self.objective.d_loss(real_out.scores, fake_out.scores)
        terms: dict[str, torch.Tensor] = {}
        if self.conditioning == "ac":
            real_class = F.cross_entropy(real_out.class_logits, labels)
            loss = loss + self.hp.class_loss_weight * (real_class + F.cross_entropy(fake_out.class_logits, labels))
            terms["loss_class"] = real_class  # how well D classifies real images
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
        loss, terms = super().discriminator_loss(d, real, fake, labels, rng)
        penalty = gradient_penalty(lambda x: self.discriminate(d, x, labels).scores, real, fake, eps)
        return loss + self.hp.gradient_penalty_weight * penalty, {**terms, "loss_gp": penalty}


def preset(base: type[AdversarialMethod], name: str, description: str, **defaults: Any) -> type[AdversarialMethod]:
    """A registry entry over a method with other defaults (e.g. acgan = dcgan with conditioning: ac), under the
    name the reports use; a suite can still override every hyperparameter."""
    fields = {k: (base.Hyper.model_fields[k].annotation, Field(v, description=base.Hyper.model_fields[k].description))
              for k, v in defaults.items()}
    hyper = create_model(f"{base.Hyper.__name__}_{name.replace('-', '_')}", __base__=base.Hyper, **fields)
    return type(base.__name__ + "Preset", (base,), {"name": name, "description": description, "Hyper": hyper,
                                                    "__module__": base.__module__})
