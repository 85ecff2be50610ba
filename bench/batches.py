"""How a trial's data reaches its method: the batch order (epoch-wise permutations from the trial's generator),
batch sources for images and for pairs of domains, the shape a method builds its networks for, and the fixed
inputs of sample grids (the `grid` stream of bench.streams); and the cache that loads each dataset once per run."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.data import ImageSet, PairSet, load_dataset
from bench.errors import BenchError
from bench.methods import DataShape
from bench.streams import generator, grid_seed
from bench.suite import Trial


def data_shape(data: ImageSet | PairSet, resolution: int) -> DataShape:
    if isinstance(data, PairSet):
        return DataShape(data.channels, resolution, pairs="paired" if data.paired else "unpaired")
    weights = None
    if data.labels is not None and data.n_classes:
        weights = torch.bincount(data.labels.cpu(), minlength=data.n_classes).double()
    return DataShape(data.channels, resolution, data.n_classes, weights, tuple(data.classes))


class BatchOrder:
    """Epoch-wise random permutations of the dataset indices, drawn from the trial's generator."""

    def __init__(self, n: int, batch_size: int, rng: torch.Generator):
        if n < batch_size:
            raise BenchError(f"the dataset has {n} images, fewer than batch_size {batch_size}; lower batch_size")
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.perm: torch.Tensor | None = None
        self.pos = n  # forces a new permutation on first use

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:  # drop the incomplete last batch, as DataLoader(drop_last=True)
            self.perm = torch.randperm(self.n, generator=self.rng, device=self.rng.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self):
        return {"perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state):
        self.perm, self.pos = state["perm"], state["pos"]


class BatchSource:
    """Batches as dicts (images, labels) in the trial's batch order; what a method's step draws from."""

    def __init__(self, data: ImageSet, batch_size: int, rng: torch.Generator):
        self.data, self.order = data, BatchOrder(len(data), batch_size, rng)

    def next(self) -> dict[str, torch.Tensor | None]:
        idx = self.order.next()
        labels = None if self.data.labels is None else self.data.labels[idx]
        return {"images": self.data.images[idx], "labels": labels}

    def state_dict(self):
        return self.order.state_dict()

    def load_state_dict(self, state):
        self.order.load_state_dict(state)


class PairBatches:
    """Batches of two domains: {"a", "b"}. Aligned pairs share one order; unpaired domains are shuffled apart
    (each example of A meets a random B, as Zhu et al.'s unaligned loader)."""

    def __init__(self, data: PairSet, batch_size: int, rng: torch.Generator):
        self.data = data
        self.order_a = BatchOrder(data.a.shape[0], batch_size, rng)
        self.order_b = None if data.paired else BatchOrder(data.b.shape[0], batch_size, rng)

    def next(self) -> dict[str, torch.Tensor]:
        idx_a = self.order_a.next()
        idx_b = idx_a if self.order_b is None else self.order_b.next()
        return {"a": self.data.a[idx_a], "b": self.data.b[idx_b]}

    def state_dict(self):
        return {"a": self.order_a.state_dict(), "b": None if self.order_b is None else self.order_b.state_dict()}

    def load_state_dict(self, state):
        self.order_a.load_state_dict(state["a"])
        if self.order_b is not None:
            self.order_b.load_state_dict(state["b"])


def fixed_latents(suite: str, dataset: str, latent_dim: int, n: int = 64) -> torch.Tensor:
    """The same latent batch for every trial of a (suite, dataset), so sample grids compare by eye."""
    return torch.randn(n, latent_dim, generator=generator(grid_seed(suite, dataset)))


def fixed_pairs(data: PairSet, suite: str, dataset: str, n: int = 8) -> dict[str, torch.Tensor]:
    """The same inputs for every trial of a (suite, dataset): the first n of each domain after a seeded shuffle."""
    gen = generator(grid_seed(suite, dataset))
    pick = {side: torch.randperm(data.domain(side).shape[0], generator=gen)[:n] for side in "ab"}
    if data.paired:
        pick["b"] = pick["a"]
    return {side: data.domain(side)[pick[side].to(data.a.device)] for side in "ab"}


class DataCache:
    """Each (dataset, split, resolution, options) is loaded once per suite run and shared by its trials."""

    def __init__(self, data_root: Path | None):
        self.data_root, self.sets = data_root, {}

    def get(self, trial: Trial, split: str | None = None) -> ImageSet | PairSet:
        d = trial.dataset
        split = split or d.split
        key = (d.name, split, trial.resolution, repr(sorted(d.options.items())))
        if key not in self.sets:
            self.sets[key] = load_dataset(d.name, trial.resolution, split, self.data_root, **d.options)
        return self.sets[key]
