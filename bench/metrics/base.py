"""The types every metric module shares: what generated images are compared against (Reference), what an
evaluation gives back (EvalResult, with its protocol, warnings and what could not be computed) and the progress
callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
