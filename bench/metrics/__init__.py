"""Metrics with their protocol: FID, KID, precision/recall, density/coverage (and IS with user weights).

One path serves training-time evaluation, `bench fid` and reports:

    images (in [-1, 1]) -> uint8 -> resize to 299 (clean-fid's `clean` or `legacy_tensorflow`) -> Inception pool3
    -> features -> FID (frechet.py), KID (kid.py), precision/recall/density/coverage (prdc.py)

Reference statistics are cached on disk per protocol (cache.py). Every result carries its protocol (n_real, n_fake,
reference, resolution, mode, weights sha256, feature dim), the warnings that qualify it (small n) and the metrics that
could not be computed, with the reason. This module imports nothing heavy: clean-fid, scipy and the network load
only when a metric is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

METRICS = ("fid", "kid", "prdc", "is")
RELIABLE_N = 2048  # below this many samples per side FID is unstable and biased upward


@dataclass
class Reference:
    """What generated images are compared against."""

    dataset: str  # registry name, e.g. "digits"; or "folder:<path>" / "stats:<path.npz>"
    split: str = "train"
    resolution: int = 32  # images are loaded at the trial's resolution, then resized by Inception's preprocessing
    n: int | None = None  # None = the whole split; else the first n after a fixed seeded shuffle
    options: dict = field(default_factory=dict)  # dataset options, e.g. {"path": ...} for the folder source
    data_root: Path | None = None
    label: int | None = None  # only the images of this class (intra-FID)
    domain: str | None = None  # "a" or "b": one domain of a translation dataset


@dataclass
class EvalResult:
    values: dict[str, float]  # present keys only: fid, kid_mean, kid_std, precision, recall, density, coverage, is_*
    protocol: dict[str, str]  # n_real, n_fake, reference, resolution, mode, weights_sha256, feature_dim, ...
    warnings: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> reason


# (phase, images done, images in all) -> None: "reference statistics" or "generated images"
ProgressCallback = Callable[[str, int, int], None]


def evaluate_generator(sample: Callable[[int], torch.Tensor], n_fake: int, reference: Reference,
                       metrics: Sequence[str] = ("fid",), mode: str = "clean", device: str | torch.device = "cpu",
                       batch_size: int = 50, cache_dir: Path | None = None,
                       inception_weights: Path | None = None, progress: ProgressCallback | None = None) -> EvalResult:
    """Metrics of `n_fake` images from `sample(k)` ((k, C, H, W) in [-1, 1]; the caller seeds it) vs `reference`."""
    from bench.metrics.evaluate import evaluate_generator as run

    return run(sample, n_fake, reference, metrics, mode, device, batch_size, cache_dir, inception_weights, progress)


def evaluate_per_class(sample: Callable[[int, int], torch.Tensor], n_per_class: int, reference: Reference,
                       classes: Sequence[str], mode: str = "clean", device: str | torch.device = "cpu",
                       batch_size: int = 50, cache_dir: Path | None = None,
                       progress: ProgressCallback | None = None) -> EvalResult:
    """Intra-FID (Miyato & Koyama 2018; StudioGAN's "intra-class FID"): for each class c, the FID of
    `n_per_class` images from `sample(c, k)` against the reference's images of class c; `intra_fid` is their mean,
    `intra_fid/<class>` each one."""
    from bench.metrics.evaluate import evaluate_per_class as run

    return run(sample, n_per_class, reference, classes, mode, device, batch_size, cache_dir, progress)


def evaluate_images(fake: torch.Tensor | Path, reference: Reference, metrics: Sequence[str] = ("fid",),
                    mode: str = "clean", device: str | torch.device = "cpu", batch_size: int = 50,
                    cache_dir: Path | None = None, inception_weights: Path | None = None,
                    n_fake: int | None = None, progress: ProgressCallback | None = None) -> EvalResult:
    """Metrics of a tensor of images in [-1, 1] (or uint8), or of an image folder (its first `n_fake` after a
    seeded shuffle), vs `reference`."""
    from bench.metrics.evaluate import evaluate_images as run

    return run(fake, reference, metrics, mode, device, batch_size, cache_dir, inception_weights, n_fake, progress)
