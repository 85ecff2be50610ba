"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel.

The estimator is clean-fid's `kernel_distance`: `subsets` random subsets of m = min(n_real, n_fake, max_subset_size)
samples from each side, k(x, y) = (x·y / d + 1)³, the unbiased MMD² per subset, averaged. The only difference is the
randomness: subsets are drawn from a seeded numpy Generator, not the global RNG, so the same features always give
the same KID. The standard deviation over subsets is reported with the mean.

KID is unbiased at any n, which makes it the metric to trust (and compare across n) at the small sample counts a CPU
affords; FID's bias grows as n shrinks. Measured on real digits (16 px, test split vs train split, clean mode): FID
43 / 33 / 23 / 19 at n_fake = 64 / 128 / 256 / 359 against 512 real images, where the true value is near 0, while
KID stays at 0 within its spread (-0.0005 ± 0.0018, 0.0002 ± 0.0010, 0.0006 ± 0.0005, 0.0004 ± 0.0003).
The std is over subsets: it shrinks as m grows and is 0 when m equals both set sizes (every subset is the whole set).
"""

from __future__ import annotations

import numpy as np
import torch

SUBSETS = 100
MAX_SUBSET_SIZE = 1000
_GRAM_ENTRIES = 1 << 25  # up to here (256 MiB of float64) all kernel values are computed once, not per subset


def _kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def kid_subset_values(feats_real: np.ndarray, feats_fake: np.ndarray, subsets: int = SUBSETS,
                      max_subset_size: int = MAX_SUBSET_SIZE, seed: int = 0) -> np.ndarray:
    """The unbiased MMD² of each of `subsets` random subset pairs."""
    # float64 torch on the CPU: numpy's own BLAS pool would compete with torch's for the cores (see frechet.py)
    real = torch.as_tensor(np.asarray(feats_real), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(feats_fake), dtype=torch.float64)
    n_real, n_fake = real.shape[0], fake.shape[0]
    m = min(n_real, n_fake, max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per side, got {n_real} and {n_fake}")
    rng = np.random.default_rng(seed)
    picks = [(rng.choice(n_fake, m, replace=False), rng.choice(n_real, m, replace=False)) for _ in range(subsets)]
    if n_real * n_real + n_fake * n_fake + n_real * n_fake <= _GRAM_ENTRIES:
        return _from_gram(real, fake, picks, m)
    values = np.empty(subsets)
    for i, (fake_idx, real_idx) in enumerate(picks):
        x, y = fake[torch.from_numpy(fake_idx)], real[torch.from_numpy(real_idx)]
        within = _kernel(x, x) + _kernel(y, y)
        values[i] = float(((within.sum() - within.trace()) / (m - 1) - _kernel(x, y).sum() * 2 / m) / m)
    return values


def _from_gram(real: torch.Tensor, fake: torch.Tensor, picks, m: int) -> np.ndarray:
    """Every subset's kernel sums as w'Kw with 0/1 membership vectors w: one kernel evaluation per pair of samples
    instead of one per subset (100x fewer products at the sample counts a CPU affords)."""
    columns = torch.arange(len(picks)).repeat_interleave(m)
    w_fake = torch.zeros(fake.shape[0], len(picks), dtype=torch.float64)
    w_real = torch.zeros(real.shape[0], len(picks), dtype=torch.float64)
    w_fake[torch.from_numpy(np.concatenate([f for f, _ in picks])), columns] = 1
    w_real[torch.from_numpy(np.concatenate([r for _, r in picks])), columns] = 1
    values = torch.zeros(len(picks), dtype=torch.float64)
    for k, w in ((_kernel(fake, fake), w_fake), (_kernel(real, real), w_real)):
        values += ((k @ w) * w).sum(dim=0) - k.diagonal() @ w
    between = ((_kernel(real, fake) @ w_fake) * w_real).sum(dim=0)
    return ((values / (m - 1) - between * 2 / m) / m).numpy()


def kernel_inception_distance(feats_real: np.ndarray, feats_fake: np.ndarray, subsets: int = SUBSETS,
                              max_subset_size: int = MAX_SUBSET_SIZE, seed: int = 0) -> tuple[float, float, int]:
    """(mean, std over subsets, subset size m)."""
    values = kid_subset_values(feats_real, feats_fake, subsets, max_subset_size, seed)
    m = min(len(feats_real), len(feats_fake), max_subset_size)
    return float(values.mean()), float(values.std()), m


def kid_replicate_shifts(feats_real: np.ndarray, feats_fake: np.ndarray, counts: np.ndarray,
                         block: int = 4096) -> np.ndarray:
    """For each resample of the generated features (resample b holds feature i counts[b, i] times): how much the
    full-sample unbiased MMD² (the same kernel as KID, every generated image against every reference image) moves
    from the original set's. Pairs of two copies of one image are left out of the generated side's within-set term
    (they are not two draws), so the shifts centre near 0; the reference side's term is fixed and cancels."""
    real = torch.as_tensor(np.asarray(feats_real), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(feats_fake), dtype=torch.float64)
    n = fake.shape[0]
    c = torch.as_tensor(counts, dtype=torch.float64).reshape(-1, n)
    within = _kernel(fake, fake)
    between = torch.zeros(n, dtype=torch.float64)  # each generated feature's mean kernel value with the reference
    for start in range(0, real.shape[0], block):
        between += _kernel(fake, real[start:start + block]).sum(dim=1)
    between /= real.shape[0]
    diag = within.diagonal()

    def term(w: torch.Tensor) -> torch.Tensor:  # (within-set pairs of distinct images) - 2 (between sets)
        pairs = ((w @ within) * w).sum(dim=1) - (w * w) @ diag
        return pairs / (n * n - (w * w).sum(dim=1)) - 2 * (w @ between) / n

    return (term(c) - term(torch.ones(1, n, dtype=torch.float64))).numpy()
