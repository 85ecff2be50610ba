"""Statistics over seeds: bootstrap confidence intervals, two-sample tests, Holm's correction, effect sizes.

Every function takes plain sequences of numbers and returns plain numbers, so each can be checked by hand.
Randomness (the bootstrap) uses a fixed seed: the same records always give the same report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
TESTS = ("mannwhitney", "welch")


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1), bootstrap CI of the mean; std and CI are NaN for n < 2."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarize(values: Sequence[float]) -> Summary:
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    low, high = bootstrap_ci(x)
    return Summary(n, mean, float(x.std(ddof=1)), low, high)


def bootstrap_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap, 9,999 resamples, seed 0).

    The percentile method is used rather than BCa because BCa's acceleration is unstable for the 3-5 seeds
    a GAN study usually has. With n = 3 the bootstrap distribution puts 1/27 > 2.5% on each extreme, so the
    95% interval is the range of the data: a CI from three seeds says little, and the report shows that.
    """
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    result = bootstrap((x,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
                       method="percentile", vectorized=True, rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class Comparison:
    """A two-sided test of `x` (a method) against `y` (the best method) with an effect size.

    A positive effect means x has the larger values (for FID: x is worse).
    """

    test: str
    statistic: float
    p: float
    effect_name: str
    effect: float


def compare(x: Sequence[float], y: Sequence[float], test: str) -> Comparison:
    if test == "mannwhitney":
        return mann_whitney(x, y)
    if test == "welch":
        return welch(x, y)
    raise ValueError(f"unknown test {test!r}; known: {', '.join(TESTS)}")


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> Comparison:
    """Mann-Whitney U (two-sided; scipy's exact distribution for small samples without ties), Cliff's delta.

    U is the statistic of x: the number of pairs with x > y, ties counting one half.
    """
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(np.asarray(x, float), np.asarray(y, float), alternative="two-sided", method="auto")
    return Comparison("mannwhitney", float(result.statistic), float(result.pvalue), "cliffs_delta",
                      cliffs_delta(x, y))


def welch(x: Sequence[float], y: Sequence[float]) -> Comparison:
    """Welch's unequal-variance t test (two-sided) with Hedges' g."""
    from scipy.stats import ttest_ind

    result = ttest_ind(np.asarray(x, float), np.asarray(y, float), equal_var=False, alternative="two-sided")
    return Comparison("welch", float(result.statistic), float(result.pvalue), "hedges_g", hedges_g(x, y))


def cliffs_delta(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) - P(X < Y) over all pairs; equals the rank-biserial correlation 2U/(n_x n_y) - 1."""
    a = np.asarray(x, float)[:, None]
    b = np.asarray(y, float)[None, :]
    return float(((a > b).sum() - (a < b).sum()) / (a.size * b.size))


def hedges_g(x: Sequence[float], y: Sequence[float]) -> float:
    """Cohen's d (pooled standard deviation) times Hedges' small-sample correction 1 - 3/(4(nx+ny)-9)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    nx, ny = len(a), len(b)
    pooled = math.sqrt(((nx - 1) * a.var(ddof=1) + (ny - 1) * b.var(ddof=1)) / (nx + ny - 2))
    if pooled == 0:
        return math.nan
    d = (a.mean() - b.mean()) / pooled
    return float(d * (1 - 3 / (4 * (nx + ny) - 9)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order; NaN entries are not part of the family.

    Sorted ascending, the i-th smallest (0-based) of m is multiplied by (m - i); a running maximum keeps the
    adjusted values monotone, and they are capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    m = len(tested)
    running = 0.0
    for i, index in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - i) * p[index]))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def holm_rank(pvalues: Sequence[float]) -> list[float]:
    """1-based position of each p-value in Holm's step-down order (NaN for untested)."""
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    rank = np.full(len(p), math.nan)
    for i, index in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        rank[index] = i + 1
    return [float(v) for v in rank]


def min_attainable_p(nx: int, ny: int) -> float:
    """The smallest two-sided p an exact Mann-Whitney test can give: 2 / C(nx + ny, nx).

    With 3 seeds against 3 it is 0.1, so no difference can reach 0.05: more seeds are needed, not a better
    test.
    """
    return min(1.0, 2 / math.comb(nx + ny, nx))


def significance_marker(p_adjusted: float) -> str:
    if math.isnan(p_adjusted):
        return ""
    if p_adjusted < 0.001:
        return "***"
    if p_adjusted < 0.01:
        return "**"
    if p_adjusted < 0.05:
        return "*"
    return ""


def min_of_k_quantiles(values: Sequence[float], k: int, quantiles: Sequence[float]) -> list[float]:
    """Quantiles of the minimum of k draws (with replacement) from `values`: the exact bootstrap distribution.

    Lucic et al. (2018) estimate "minimum FID as a function of budget" by bootstrap resampling of the
    trials; the distribution of the minimum of k resampled values is known in closed form, so no random
    resampling is needed: with the values sorted v_1 <= ... <= v_N, P(min <= v_i) = 1 - ((N - i) / N)^k.
    Failed trials enter as +inf (they spend budget and find nothing).
    """
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n == 0:
        return [math.nan for _ in quantiles]
    cdf = 1 - ((n - np.arange(1, n + 1)) / n) ** k
    out = []
    for q in quantiles:
        i = int(np.searchsorted(cdf, q - 1e-12, side="left"))  # the first v_i with P(min <= v_i) >= q
        out.append(float(v[min(i, n - 1)]))
    return out
