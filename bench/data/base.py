"""The dataset registry and what every source returns: one in-memory `ImageSet` (or `PairSet`), scaled to [-1, 1].

Adding a dataset is one module with a function decorated by `@register_dataset(name, description)` and one import
line in bench/data/__init__.py. Modules of the package import this base, never the package: imports run one way
(base <- sources <- __init__).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.data.holdout import kept, subset_share
from bench.data.holdout import select as select_held_out
from bench.data.holdout import shares as parse_shares
from bench.errors import BenchError


@dataclass
class ImageSet:
    """A whole dataset as one tensor: images (N, C, H, W) float32 in [-1, 1], labels (N,) int64 or None."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    classes: list[str] = field(default_factory=list)
    ids: list[str] | None = None  # each image's identity (a folder's relative paths); None: its index

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> ImageSet:
        labels = None if self.labels is None else self.labels.to(device)
        return ImageSet(self.images.to(device), labels, self.classes, self.ids)

    def subset(self, index: torch.Tensor) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        ids = None if self.ids is None else [self.ids[i] for i in index.tolist()]
        return ImageSet(self.images[index], labels, self.classes, ids)


@dataclass
class PairSet:
    """Two image domains for translation, each (N, C, H, W) float32 in [-1, 1]: `a` and `b`. Paired when a[i] and
    b[i] are one example (Pix2Pix's data); unpaired domains may hold different counts (CycleGAN's)."""

    a: torch.Tensor
    b: torch.Tensor
    paired: bool
    labels = None  # no classes: the interface of ImageSet where translation code meets generation code
    classes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return self.a.shape[1]

    @property
    def resolution(self) -> int:
        return self.a.shape[-1]

    @property
    def n_classes(self) -> int:
        return 0

    def __len__(self) -> int:
        """An epoch of translation is one pass over the larger domain (Zhu et al. 2017's data loader)."""
        return max(self.a.shape[0], self.b.shape[0])

    def domain(self, name: str) -> torch.Tensor:
        return self.a if name == "a" else self.b

    def to(self, device: torch.device | str) -> PairSet:
        return PairSet(self.a.to(device), self.b.to(device), self.paired)


# (data_root, split, resolution, **options) -> ImageSet (or PairSet) at `resolution`, in [-1, 1], on the CPU.
Loader = Callable[..., ImageSet | PairSet]


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    description: str
    load: Loader
    splits: tuple[str, ...] = ("train", "test")


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, description: str, splits: tuple[str, ...] = ("train", "test")):
    """Add a source to the registry; a second source under one name is a mistake, not an override."""

    def decorate(fn: Loader) -> Loader:
        if name in DATASETS and DATASETS[name].load is not fn:
            raise ValueError(f"dataset name '{name}' is registered twice ({DATASETS[name].load.__module__} and "
                             f"{fn.__module__}); give one of them another name")
        DATASETS[name] = DatasetEntry(name, description, fn, splits)
        return fn

    return decorate


def default_data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA", "./data"))


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Square-resize a (N, C, H, W) batch in [-1, 1]: bilinear with antialiasing down, bilinear up."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True,
                        align_corners=False)
    return out.clamp_(-1.0, 1.0)


def load_dataset(name: str, resolution: int, split: str = "train", data_root: Path | None = None,
                 **options) -> ImageSet | PairSet:
    """Load a registered dataset at `resolution` (square), images in [-1, 1], on the CPU.

    `options` are the dataset's own settings from the suite (e.g. `path` for `folder`), `holdout`, the shares
    of the training split held out as `validation` / `test`, and `subset`, the share of the training split kept
    (bench/data/holdout.py: both by a hash of each image's identity).
    """
    if name not in DATASETS:
        raise BenchError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    entry = DATASETS[name]
    holdout = options.pop("holdout", None)
    subset = subset_share(options.pop("subset", None), name)
    root = Path(data_root) if data_root is not None else default_data_root()
    carved = None
    if holdout is not None:
        carved = holdout_shares(holdout, name, entry, root, options)
    allowed = available_splits(name, {**options, "holdout": holdout} if holdout is not None else options, root)
    if split not in allowed:
        raise BenchError(f"dataset '{name}' has no split '{split}'; it has: {', '.join(allowed)}"
                         + ("" if holdout is not None else " (holdout: {validation: 0.1} carves one from train)"))
    from_train = carved is not None and (split == "train" or split in carved)
    data = entry.load(root, "train" if from_train else split, resolution, **options)
    if isinstance(data, PairSet):
        if carved is not None:
            raise BenchError(f"dataset '{name}' holds pairs of domains; holdout is for image datasets")
        return PairSet(resize(data.a, resolution), resize(data.b, resolution), data.paired)
    ids = data.ids if data.ids is not None or subset is None else [str(i) for i in range(len(data))]
    data = ImageSet(resize(data.images, resolution), data.labels, data.classes, ids)  # identities kept for subset
    if from_train:
        ids = data.ids if data.ids is not None else [str(i) for i in range(len(data))]
        data = data.subset(select_held_out(ids, carved, split))
        if len(data) == 0:
            raise BenchError(f"dataset '{name}': the {split} split holds no image at these shares; raise holdout."
                             f"{split} or add images")
    if subset is not None and split == "train":
        ids = data.ids if data.ids is not None else [str(i) for i in range(len(data))]
        data = data.subset(kept(ids, subset))
        if len(data) == 0:
            raise BenchError(f"dataset '{name}': subset {subset:g} keeps no training image; raise it")
    return data


def own_test_split(name: str, root: Path, options: dict) -> bool:
    """Whether a dataset has a test split of its own (a folder: a test/ subfolder)."""
    if name == "folder":
        path = Path(options.get("path", ""))
        folder = path if path.is_absolute() or path.exists() else root / path
        return (folder / "test").is_dir()
    return "test" in DATASETS[name].splits


def holdout_shares(value, name: str, entry: DatasetEntry, root: Path, options: dict) -> dict[str, float]:
    return parse_shares(value, name, own_test_split(name, root, options))


def available_splits(name: str, options: dict, data_root: Path | None = None) -> tuple[str, ...]:
    """The splits a dataset entry offers with its options: its own, and those its holdout carves."""
    root = Path(data_root) if data_root is not None else default_data_root()
    plain = {k: v for k, v in options.items() if k not in ("holdout", "subset")}
    own = DATASETS[name].splits
    if name == "folder" and not own_test_split(name, root, plain):  # a folder's test split is its test/ subfolder
        own = tuple(s for s in own if s != "test")
    if options.get("holdout") is None:
        return own
    carved = holdout_shares(options["holdout"], name, DATASETS[name], root, plain)
    return tuple(dict.fromkeys([*own, *carved]))


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)

