"""LSGAN: Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017 (seeds 000 and 003).

D minimises 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2, G minimises 1/2 E (D(G(z)) - c)^2 with the 0-1 coding
a=0, b=1, c=1. DCGAN networks with a linear output; Adam lr 2e-4, beta1 0.5 as in the paper.
"""

from __future__ import annotations

from pydantic import model_validator

from bench.methods.adversarial import AdversarialMethod, ConditionalHyper
from bench.methods.base import added, register_method
from bench.methods.objectives import LeastSquares, Objective, ObjectiveName


class LSGANHyper(ConditionalHyper):
    objective: ObjectiveName = added("ls")
    a: float = 0.0
    b: float = 1.0
    c: float = 1.0

    @model_validator(mode="after")
    def codes_belong_to_ls(self):
        moved = [k for k in ("a", "b", "c") if getattr(self, k) != type(self).model_fields[k].default]
        if moved and self.objective != "ls":
            raise ValueError(f"{', '.join(moved)}: the codes of the ls objective; objective {self.objective} has none")
        return self


@register_method
class LSGAN(AdversarialMethod):
    name = "lsgan"
    description = "Mao et al. 2017: least-squares loss (a=0, b=1, c=1) on DCGAN networks"
    Hyper = LSGANHyper

    @property
    def objective(self) -> Objective:
        return LeastSquares(self.hp.a, self.hp.b, self.hp.c) if self.hp.objective == "ls" else super().objective
