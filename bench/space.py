"""Search spaces: which hyperparameters a study varies, over which distribution, per method.

Distributions, as a suite writes them under `tune: {space: {...}}` (or `tune: {spaces: {<label>: {...}}}` for one
method of the suite):

    lr_g: {log_uniform: [1.0e-5, 1.0e-2]}     # a float, uniform in log space
    beta1: {uniform: [0.0, 0.9]}               # a float
    critic_steps: {int: [1, 5]}                # an integer, both ends included
    batch_size: {choice: [32, 64, 128]}        # one of these values

Defaults per method: learning rates log-uniform over Lucic et al. 2018's wide range (1e-5 to 1e-2, "Are GANs Created
Equal?", appendix); Adam's beta1 over the values the methods' papers use, and beta2 between 0.9 and 0.999; critic
steps 1 to 5 (Lucic et al.'s n_disc); the gradient-penalty weight log-uniform 0.1 to 100 (Lucic et al.'s lambda);
WGAN's clip value log-uniform around the paper's 0.01 (1e-3 to 1e-1); batch size, latent size and width over the
common choices. Every parameter is checked against the method's own schema before any training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

KINDS = ("log_uniform", "uniform", "int", "choice")
TRIAL_LEVEL = ("batch_size",)  # tunable settings of the trial rather than of the method


@dataclass(frozen=True)
class Distribution:
    kind: str  # one of KINDS
    values: tuple  # (low, high) or the choices

    def suggest(self, trial, name: str) -> Any:
        if self.kind == "log_uniform":
            return trial.suggest_float(name, self.values[0], self.values[1], log=True)
        if self.kind == "uniform":
            return trial.suggest_float(name, self.values[0], self.values[1])
        if self.kind == "int":
            return trial.suggest_int(name, self.values[0], self.values[1])
        return trial.suggest_categorical(name, list(self.values))

    def to_yaml(self) -> dict:
        return {self.kind: list(self.values)}


LR = Distribution("log_uniform", (1e-5, 1e-2))
ADAM = {"lr_g": LR, "lr_d": LR, "beta1": Distribution("choice", (0.0, 0.5, 0.9)),
        "beta2": Distribution("uniform", (0.9, 0.999))}
SHAPES = {"batch_size": Distribution("choice", (32, 64, 128)), "latent_dim": Distribution("choice", (64, 100, 128)),
          "width": Distribution("choice", (16, 32, 64))}
CRITIC = {"critic_steps": Distribution("int", (1, 5))}
GP = {"gradient_penalty_weight": Distribution("log_uniform", (0.1, 100.0))}

DEFAULT_SPACES: dict[str, dict[str, Distribution]] = {
    "vanilla": {**ADAM, **SHAPES},
    "dcgan": {**ADAM, **SHAPES},
    "lsgan": {**ADAM, **SHAPES},
    "cdcgan": {**ADAM, **SHAPES},
    "acgan": {**ADAM, **SHAPES},
    "wgan": {"lr_g": LR, "lr_d": LR, **CRITIC, "clip_value": Distribution("log_uniform", (1e-3, 1e-1)), **SHAPES},
    "wgan-gp": {**ADAM, **CRITIC, **GP, **SHAPES},
    "wgan-gp-acgan": {**ADAM, **CRITIC, **GP, **SHAPES},
    "infogan": {**ADAM, **SHAPES},
    "sngan": {**ADAM, **CRITIC, **SHAPES},
    "stylegan": {**ADAM, "batch_size": SHAPES["batch_size"], "width": SHAPES["width"],
                 "r1_gamma": Distribution("log_uniform", (0.1, 100.0))},
}


def parse_distribution(name: str, spec: Any, where: str) -> Distribution:
    """A suite's `{kind: [...]}` as a Distribution; every malformed one is a BenchError naming the key."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise BenchError(f"{where}.{name}: give one of {', '.join(KINDS)}, e.g. {name}: {{log_uniform: [1.0e-5, "
                         "1.0e-3]}")
    (kind, values), = spec.items()
    if not isinstance(values, list) or not values:
        raise BenchError(f"{where}.{name}.{kind}: a list of values, e.g. [1.0e-5, 1.0e-3]")
    if kind == "choice":
        return Distribution(kind, tuple(values))
    if len(values) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise BenchError(f"{where}.{name}.{kind}: two numbers [low, high], got {values}")
    low, high = values
    if not low < high:
        raise BenchError(f"{where}.{name}.{kind}: an empty range [{low}, {high}]; low must be below high")
    if kind == "log_uniform" and low <= 0:
        raise BenchError(f"{where}.{name}.log_uniform: bounds must be above 0 for a log scale, got {low}")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise BenchError(f"{where}.{name}.int: integer bounds, got {values}")
    return Distribution(kind, (low, high))


def method_space(method: str, hyper: type, overrides: dict[str, Any], where: str) -> dict[str, Distribution]:
    """The default space of a method with a suite's overrides, each checked against the method's schema."""
    space = dict(DEFAULT_SPACES.get(method, {**ADAM, **SHAPES}))
    for name, spec in overrides.items():
        space[name] = parse_distribution(name, spec, where)
    space = {k: v for k, v in space.items() if k in hyper.model_fields or k in TRIAL_LEVEL}
    for name in overrides:
        if name not in hyper.model_fields and name not in TRIAL_LEVEL:
            raise BenchError(f"{where}.{name}: unknown hyperparameter for method '{method}'; tunable: "
                             f"{', '.join([*hyper.model_fields, *TRIAL_LEVEL])}")
    for name, dist in space.items():
        check_takes(method, hyper, name, dist, where)
    return space


def check_takes(method: str, hyper: type, name: str, dist: Distribution, where: str) -> None:
    """A distribution a parameter cannot take is refused: floats for an integer, any range for a choice-only
    (Literal) parameter, values its schema rejects."""
    from pydantic import ValidationError

    if name in TRIAL_LEVEL:
        if dist.kind in ("uniform", "log_uniform") or any(not isinstance(v, int) or v < 1 for v in dist.values):
            raise BenchError(f"{where}.{name}: batch_size takes positive integers: use {{choice: [...]}} or "
                             "{int: [low, high]}")
        return
    annotation = str(hyper.model_fields[name].annotation)
    if "Literal" in annotation and dist.kind != "choice":
        raise BenchError(f"{where}.{name}: '{name}' takes one of a fixed set of values; use {{choice: [...]}}")
    if annotation == "<class 'int'>" and dist.kind in ("uniform", "log_uniform"):
        raise BenchError(f"{where}.{name}: '{name}' is an integer; use {{int: [low, high]}} or {{choice: [...]}}")
    for value in dist.values:  # the choices, or both ends of a range
        try:
            hyper(**{name: value})
        except ValidationError as err:
            problem = err.errors()[0]["msg"]
            raise BenchError(f"{where}.{name}: {value!r} is not a value '{name}' of method '{method}' can take "
                             f"({problem})") from None


def describe(space: dict[str, Distribution]) -> str:
    def show(d: Distribution) -> str:
        if d.kind == "choice":
            return "{" + ", ".join(map(str, d.values)) + "}"
        low, high = d.values
        return f"{d.kind}[{low:g}, {high:g}]"

    return ", ".join(f"{name} {show(d)}" for name, d in sorted(space.items()))

