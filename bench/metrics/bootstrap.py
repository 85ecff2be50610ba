"""How much one evaluation's numbers would move with another draw of generated images: `eval.bootstrap: B` (and
`bench fid --bootstrap B`) resamples the generated images' features with replacement B times, seeded, and logs for
each metric that declares `intervals` in bench/results.py the interval `<key>_ci_low`, `<key>_ci_high`.

Only the generated side is resampled: the reference's statistics are fixed (they are cached, often as a mean and a
covariance only), so the interval says nothing about the choice of reference images. Each resample keeps the
generated set's size n, and the metrics are computed from quantities derived once (no image goes through the
network again):
- FID: the reference covariance is factored once; each resample costs a min(n, k)-sized eigenproblem (frechet.py
  `fid_replicates`; k: the factor's rows, the reference's image count when its features are at hand and fewer than
  the feature dimensions, else those dimensions).
- KID: the full-sample unbiased MMD² of each resample against all reference features (kernel values computed once),
  pairs of two copies of one image left out; the logged KID (a mean over random subsets) moved by each resample's
  change of it (kid.py `kid_replicate_shifts`).
- precision, density, coverage: the reference's k-NN balls are fixed, so one pass over the distances gives every
  resample's value (prdc.py `prdc_replicates`). Recall is not resampled: it needs the generated set's own k-NN radii,
  which collapse around an image a resample repeats.
- AuthPct: the mean of per-image verdicts.
- C_T (ct, ct_pixel): the k-means cells and every distance are fixed; each generated image's share of its cell's
  Mann-Whitney U is weighed by how often the resample draws it, and a cell counts where the resample draws
  MIN_PER_CELL images into it (memorization.py `CopyingCells`). A resample with no such cell gives no value; the
  interval is taken over the others.
The Inception Score, nn_ratio, fid_select and intra-FID get no interval.

The interval is the 2.5th and 97.5th percentiles of the B values, each shifted by the bootstrap's estimate of its
bias (the values' mean minus the point estimate). Unshifted, FID's percentiles sit above the point estimate at small
n: a resample holds only ~63% distinct images, and FID's small-n bias grows as the distinct count shrinks (on
Gaussian features, d=256, n=64: point 23.0, resamples 28.2 to 31.3). The spread is kept as it is, and it is
conservative there: the same case's resamples spread 3x more than FIDs of independent draws (sd 0.85 against
0.27; tests/test_bootstrap.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from bench.errors import BenchError
from bench.metrics.authenticity import authentic
from bench.metrics.base import Scoring
from bench.metrics.frechet import covariance_factor, fid_replicates
from bench.metrics.kid import kid_replicate_shifts
from bench.metrics.prdc import prdc_replicates
from bench.results import METRICS, interval_keys

LEVEL = 95  # the interval's coverage in percent: the 2.5th and 97.5th percentiles


def check_resamples(b: int, what: str = "eval.bootstrap") -> int:
    if isinstance(b, bool) or not isinstance(b, int) or b < 0:
        raise BenchError(f"{what} {b}: give a whole number of resamples, 0 (off) or more (e.g. 1000)")
    return b


def resample_counts(n: int, b: int, seed: int) -> np.ndarray:
    """(b, n): how often each of n generated images is drawn by each of b resamples with replacement (numpy's
    Generator seeded with `seed`; each row sums to n)."""
    picks = np.random.default_rng(seed).integers(0, n, size=(b, n))
    counts = np.zeros((b, n))
    np.add.at(counts, (np.arange(b)[:, None], picks), 1)
    return counts


def interval(point: float, values: np.ndarray) -> tuple[float, float]:
    """The bias-shifted percentile interval: the 2.5th and 97.5th percentiles of `values` minus their mean's
    distance from `point`."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]  # e.g. C_T of a resample that left every cell too few images
    bias = float(values.mean()) - point
    low, high = np.percentile(values, [(100 - LEVEL) / 2, (100 + LEVEL) / 2])
    return float(low) - bias, float(high) - bias


def add_intervals(s: Scoring, metrics: list[str], b: int, seed: int) -> None:
    """Each asked-for metric's interval over `b` resamples of the generated features, into s.values; the number
    of resamples and the seed into s.protocol (eval.bootstrap, eval.bootstrap_seed)."""
    counts = resample_counts(len(s.fake), b, seed)
    for name in metrics:
        metric = METRICS[name]
        if not metric.intervals or not any(k in s.values for k in metric.intervals):
            continue
        for key, values in _function(metric.bootstrap)(s, counts).items():
            if key in s.values and np.isfinite(values).any():
                s.values.update(zip(interval_keys(key), interval(s.values[key], values), strict=True))
    s.protocol.update(bootstrap=str(b), bootstrap_seed=str(seed))


def _function(path: str) -> Callable[[Scoring, np.ndarray], dict[str, np.ndarray]]:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


# each metric's values over the resamples (bench/results.py names these as its `bootstrap`) ---------------------

def fid(s: Scoring, counts: np.ndarray) -> dict[str, np.ndarray]:
    ref = s.ref
    factor = None
    if ref.feats is not None and len(ref.feats) < np.shape(ref.sigma)[0]:  # fewer reference images than dimensions
        factor = covariance_factor(ref.feats)
    return {METRICS["fid"].intervals[0]: fid_replicates(ref.mu, ref.sigma, s.fake.feats, counts, ref_factor=factor)}


def kid(s: Scoring, counts: np.ndarray) -> dict[str, np.ndarray]:
    key = METRICS["kid"].intervals[0]
    return {key: s.values[key] + kid_replicate_shifts(s.ref.feats, s.fake.feats, counts)}


def prdc(s: Scoring, counts: np.ndarray) -> dict[str, np.ndarray]:
    return prdc_replicates(s.ref.feats, s.fake.feats, counts)


def authpct(s: Scoring, counts: np.ndarray) -> dict[str, np.ndarray]:
    return {METRICS["authpct"].intervals[0]: counts @ authentic(s.ref.feats, s.fake.feats) / counts.shape[1] * 100}


def memorization(s: Scoring, counts: np.ndarray) -> dict[str, np.ndarray]:
    return {key: cells.ct(counts) for key, cells in s.copying.items() if cells is not None}
