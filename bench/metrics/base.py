"""The types every metric module shares: what generated images are compared against (Reference), what one metric
reads and writes (Scoring), what an evaluation gives back (EvalResult, with its protocol, warnings and what could not
be computed) and the progress callback. The metrics themselves are declared in bench/results.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    values: dict[str, float]  # present keys only (bench/results.py: each metric's keys)
    protocol: dict[str, str]  # n_real, n_fake, reference, resolution, mode, weights_sha256, feature_dim, ...
    warnings: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> reason
    images: dict[str, Any] = field(default_factory=dict)  # artifact path -> (N, C, H, W) in [-1, 1], a PNG grid


@dataclass
class Scoring:
    """One evaluation as a metric's function (bench.results.Metric.compute) sees it: the reference's statistics
    (mu, sigma; feats when a metric asked for them), the generated set's features (and class probabilities with a
    classifier), and the dicts it writes its values, protocol entries and reasons for being unavailable into."""

    ref: Any  # bench.metrics.cache.ReferenceStats
    fake: Any  # bench.metrics.features.Features
    classifier: Any = None  # InceptionClassifier, when Inception Score weights were given
    values: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    # for the memorisation check: the generated images as pixel vectors (bench.metrics.memorization.pixel_vectors),
    # and the training split's and a held-out split's statistics (with features) and pixels; None where not loaded
    fake_pixels: Any = None
    train: Any = None
    train_pixels: Any = None
    heldout: Any = None
    heldout_pixels: Any = None
    why_no_train: str = ""
    why_no_heldout: str = ""
    copying: dict[str, Any] = field(default_factory=dict)  # C_T's per-image scores per space (memorization.py)
    images: dict[str, Any] = field(default_factory=dict)  # artifact path -> images, as EvalResult.images


# (phase, images done, images in all) -> None: "reference statistics" or "generated images"
ProgressCallback = Callable[[str, int, int], None]
