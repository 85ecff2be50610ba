"""The interface every GAN implements and the registry of methods (bench.methods re-exports both).

A method declares its named networks (`build`), its named optimizers and schedulers, and owns its training step:
`step(ctx) -> {loss name: tensor}`, where `ctx` gives the batch source, the step's random generator and the step
number. It also owns its latents: `sample_latents` and `generate` (through the network it names for evaluation),
so training, evaluation, sample grids and `bench sample` draw images through one path. The one training loop
(bench.train) does everything else, generically over those dicts: budget, batch order, checkpoints, NaN detection
and logging of every loss name, evaluation, grids.

Adding a GAN is one module with a class decorated by `@register_method` and one import line in bench/methods/
__init__.py. Modules of the package import this base, never the package: imports run one way (base <- modules <-
__init__). Shared parts live beside it: objectives.py (losses), penalties.py (gradient penalty, R1, clipping), ema.py,
and adversarial.py, the DCGAN family's step with conditioning as an axis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from bench.errors import BenchError

# Marks a hyperparameter added after trials were recorded: left out of a trial's identity while it has its
# default, so the keys (and the records and checkpoints behind them) of existing trials stay valid.
ADDED = {"added": True}


def added(default: Any, **kwargs) -> Any:
    """A Field for a hyperparameter added to an existing method (see ADDED)."""
    return Field(default, json_schema_extra=ADDED, **kwargs)


def identity_dump(model: BaseModel, exclude: set[str] | None = None) -> dict[str, Any]:
    """A config as it enters a trial's identity: fields marked ADDED are left out while at their default."""
    data = model.model_dump(exclude=exclude)
    for name, field in type(model).model_fields.items():
        if name in data and field.json_schema_extra == ADDED and data[name] == field.default:
            del data[name]
    return data


class Hyper(BaseModel):
    """Hyperparameters every method has; methods subclass it, add their own and change the defaults.

    Schedule knobs are not here: `critic_steps` belongs to the Hyper of the methods whose step reads it (the
    adversarial family's), so a suite giving it to another method is an unknown hyperparameter, and
    `Method.real_batches_per_step` counts what the step draws.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Hyperparameters this method's trials once recorded and it no longer takes, with the one value they were
    # recorded at (one its step never read, e.g. stylegan's critic_steps: 1). `identity_params` puts them back
    # into a trial's key, so recorded trials keep their keys, records and checkpoints; a recorded config that
    # holds one at that value loads (it is dropped here); a suite cannot give one (it is not a field).
    retired: ClassVar[dict[str, Any]] = {}

    latent_dim: int = Field(100, gt=0)
    width: int = Field(64, gt=0, description="channels of the first discriminator / last generator layer")
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def drop_retired(cls, data: Any) -> Any:
        """A recorded config's retired hyperparameters, at their recorded value, are dropped; any other value
        was never honoured by this method's step, and a trial recorded with it cannot be reproduced."""
        if not isinstance(data, dict) or not cls.retired.keys() & data.keys():
            return data
        for name, value in cls.retired.items():
            if name in data and data[name] != value:
                raise BenchError(f"hyperparameter '{name}: {data[name]!r}' is retired for this method: its step "
                                 f"never read it (only {name}: {value!r} loads, for trials recorded with it); "
                                 "remove it and retrain")
        return {k: v for k, v in data.items() if k not in cls.retired}

    def as_params(self) -> dict[str, Any]:
        """The resolved hyperparameters as a trial records them (its identity); see ADDED."""
        return identity_dump(self)


@dataclass(frozen=True)
class DataShape:
    """What a method needs to know of its data to build its networks and draw its latents."""

    channels: int
    resolution: int
    n_classes: int = 0
    class_weights: torch.Tensor | None = None  # class frequencies of the training data (labels for sampling)
    classes: tuple[str, ...] = ()  # class names, for `bench sample --label NAME` and file names
    pairs: str | None = None  # "paired" or "unpaired" for two-domain (translation) data, None for images


@dataclass
class StepContext:
    """What the loop hands a method's step."""

    batches: Any  # bench.train.BatchSource: next() -> {"images": (B, C, H, W), "labels": (B,) or None}
    rng: torch.Generator  # the trial's generator on the training device: latents, penalties, any randomness
    step: int  # generator steps done before this one
    autocast: Callable[[], AbstractContextManager]  # bf16 autocast when the trial asks for it, else a no-op


Latents = dict[str, torch.Tensor]  # "z", and "labels" / "codes" where the method takes them


class Method:
    """A GAN: named networks and optimizers, a training step, and a sampler. See the module docstring."""

    name: ClassVar[str]
    description: ClassVar[str]
    Hyper: ClassVar[type[Hyper]] = Hyper
    needs_labels: ClassVar[bool] = False  # a conditional method refuses unlabelled data
    task: ClassVar[str] = "generation"  # or "translation" (bench/methods/translation.py)
    eval_network: ClassVar[str] = "generator"  # the network samples and metrics come from (e.g. an EMA copy)

    def __init__(self, hp: Hyper, shape: DataShape):
        self.hp, self.shape = hp, shape
        if self.task == "generation" and shape.pairs is not None:
            raise BenchError(f"method '{self.name}' generates images from noise; the dataset holds pairs of domains "
                             "(for cyclegan or pix2pix): give it a dataset of images")
        if self.uses_labels() and shape.n_classes < 2:
            raise BenchError(f"method '{self.name}' is conditional and needs a labelled dataset (class subfolders)")
        self.device = torch.device("cpu")
        self.nets: dict[str, nn.Module] = {}
        self.step_nets: dict[str, nn.Module] = {}  # what `step` calls: the nets, or compiled wrappers of them
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}

    # what a method defines ---------------------------------------------------------------------------------------
    def uses_labels(self) -> bool:
        """Whether this configuration takes labels (a conditional one refuses unlabelled data)."""
        return self.needs_labels

    def build(self) -> dict[str, nn.Module]:
        """The named networks, initialised (on the current default device)."""
        raise NotImplementedError

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def make_schedulers(self, total_steps: int) -> dict[str, Any]:
        """Learning-rate schedulers by name (stepped by the method); none by default."""
        return {}

    def step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One generator step with whatever discriminator steps precede it; returns the losses by name."""
        raise NotImplementedError

    def sample_latents(self, n: int, rng: torch.Generator, labels: torch.Tensor | None = None,
                       codes: torch.Tensor | None = None) -> Latents:
        """n latents drawn from `rng` alone (on its device); labels by class frequency when conditional."""
        z = torch.randn(n, self.hp.latent_dim, generator=rng, device=rng.device)
        return {"z": z}

    def generate(self, latents: Latents, network: str | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents, through `network` (default: the one samples come from)."""
        return self.nets[network or self.eval_network](latents["z"])

    @classmethod
    def real_batches_per_step(cls, hp: Hyper) -> int:
        """Real batches one step draws (an epoch budget and images/s are counted in them): one, unless the method
        takes a schedule knob that draws more (the adversarial family's critic_steps)."""
        return 1

    def extra_state(self) -> dict[str, Any]:
        """State of the method's own beyond networks and optimizers (an image pool, a running mean)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def grid_latents(self, z: torch.Tensor) -> Latents:
        """The latents of a sample grid (8 per row) from a fixed batch of z; conditional methods: a row per class."""
        return {"z": z}

    def codes(self) -> list[str]:
        """Latent codes a traversal grid can vary (InfoGAN's); none by default."""
        return []

    def traversal(self, code: str, z: torch.Tensor, steps: int = 8) -> Latents:
        """Latents of a grid varying `code` along each row, one row per z."""
        raise BenchError(f"method '{self.name}' has no codes to traverse")

    def probe(self, latents: Latents) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G's images and D's scores for `latents`; preflight runs it on the meta device to check shapes."""
        return self.generate(latents, network="generator"), None

    # provided -----------------------------------------------------------------------------------------------------
    def setup(self, device: torch.device, channels_last: bool = False, compile: bool = False,
              total_steps: int = 1) -> None:
        """Build the networks on `device` with their optimizers and schedulers."""
        self.device = device
        self.nets = self.build()
        for net in self.nets.values():
            net.to(device)
            if channels_last:
                net.to(memory_format=torch.channels_last)
        self.step_nets = {name: torch.compile(net) if compile else net for name, net in self.nets.items()}
        self.optimizers = self.make_optimizers()
        self.schedulers = self.make_schedulers(total_steps)

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator, labels: torch.Tensor | None = None,
               codes: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [-1, 1] from latents drawn off `rng` alone, through the evaluation network in eval mode."""
        latents = {k: v.to(self.device) for k, v in self.sample_latents(n, rng, labels, codes).items()}
        with self.eval_mode():
            return self.generate(latents).float()

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Every network in eval mode (batch norm uses its running statistics), restored afterwards."""
        modes = {name: net.training for name, net in self.nets.items()}
        for net in self.nets.values():
            net.eval()
        try:
            yield
        finally:
            for name, net in self.nets.items():
                net.train(modes[name])

    def draw_labels(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """Labels by the training data's class frequencies."""
        weights = self.shape.class_weights
        if weights is None:
            weights = torch.ones(self.shape.n_classes, dtype=torch.float64)
        return torch.multinomial(weights.to(rng.device), n, replacement=True, generator=rng)

    def class_grid(self, z: torch.Tensor) -> Latents:
        """A row of 8 per class, the same 8 z in every row, so a row differs from the next only by its label."""
        rows = self.shape.n_classes
        return {"z": z[:8].repeat(rows, 1), "labels": torch.arange(rows).repeat_interleave(8)}


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Add a method to the registry; a second method under one name is a mistake, not an override."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name '{cls.name}' is registered twice ({METHODS[cls.name].__module__} and "
                         f"{cls.__module__}); give one of them another name")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise BenchError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def identity_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's params as its key hashes them (bench.suite.Trial.identity): the method's retired hyperparameters
    put back at the value they were recorded at (see Hyper.retired), so a trial keeps the key it had before they
    were retired, and with it its records and checkpoints."""
    return {**get_method(method).Hyper.retired, **params}

