"""The Fréchet distance between two Gaussians, always finite and real.

    d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)        (Heusel et al. 2017, FID)

tr((S1 S2)^½) is the sum of the square roots of the eigenvalues of S1 S2. Those are the eigenvalues of a symmetric
positive semi-definite matrix with the same spectrum (L' S1 L for S2 = L L', or Y S1 Y' for S2 = Y'Y), so they
come from `eigvalsh`, and tiny negative round-off is clipped to zero: no scipy `sqrtm`, hence none of its NaNs or
imaginary parts on near-singular covariances (clean-fid#53, torch-fidelity#54). When one side has fewer samples
than feature dimensions (n < 2048, the usual case on a CPU), Y is its centred features / sqrt(n - 1) and the
eigenproblem is n x n instead of 2048 x 2048.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# The linear algebra runs in torch (float64, CPU): one thread pool with the network's, instead of numpy's OpenBLAS
# pool fighting torch's for two cores (measured 3x slower eigvalsh, 8x slower small products when they compete).


def _float64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features in float64, as clean-fid computes them (np.cov: divided by N - 1)."""
    x = _float64(feats)
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {x.shape[0]}")
    mu = x.mean(dim=0)
    centred = x - mu
    return mu.numpy(), (centred.T @ centred / (x.shape[0] - 1)).numpy()


def covariance_factor(feats: np.ndarray) -> np.ndarray:
    """Y with Y'Y = np.cov(feats): the centred features / sqrt(N - 1), shape (N, D)."""
    x = _float64(feats)
    return ((x - x.mean(dim=0)) / np.sqrt(x.shape[0] - 1)).numpy()


def _symmetric(m: torch.Tensor) -> torch.Tensor:
    return (m + m.T) / 2


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, factor2: np.ndarray | None = None) -> float:
    """tr((sigma1 sigma2)^½); `factor2` (Y with Y'Y = sigma2) makes it an n x n problem when n < D."""
    sigma1 = _symmetric(_float64(sigma1))
    if factor2 is not None and factor2.shape[0] < sigma1.shape[0]:
        y = _float64(factor2)
        inner = y @ sigma1 @ y.T
    else:
        sigma2 = _symmetric(_float64(sigma2))
        lower, info = torch.linalg.cholesky_ex(sigma2)
        if info.item() != 0:  # singular: a PSD square root instead of a Cholesky factor
            w, v = torch.linalg.eigh(sigma2)
            lower = v * w.clamp(min=0).sqrt()
        inner = lower.T @ sigma1 @ lower
    eigenvalues = torch.linalg.eigvalsh(_symmetric(inner))
    return float(eigenvalues.clamp(min=0).sqrt().sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     factor2: np.ndarray | None = None) -> float:
    """FID between N(mu1, sigma1) and N(mu2, sigma2); finite, real and >= 0 for any PSD covariances."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimensions: {mu1.shape} vs {mu2.shape}")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(sigma1).all()
            and np.isfinite(sigma2).all()):
        raise ValueError("statistics contain NaN or inf (the features were not finite)")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, factor2)
    return float(max(value, 0.0))  # >= 0 in exact arithmetic; round-off on identical sets can dip below


def _factor(sigma: torch.Tensor) -> torch.Tensor:
    """F with F'F = sigma: the transposed Cholesky factor, or for a singular sigma a PSD square root."""
    lower, info = torch.linalg.cholesky_ex(sigma)
    if info.item() != 0:
        w, v = torch.linalg.eigh(sigma)
        lower = v * w.clamp(min=0).sqrt()
    return lower.T


def _roots(m: torch.Tensor) -> torch.Tensor:
    """The sum of the square roots of a symmetric PSD matrix's eigenvalues (round-off below 0 clipped)."""
    return torch.linalg.eigvalsh(_symmetric(m)).clamp(min=0).sqrt().sum()


def fid_replicates(mu_ref: np.ndarray, sigma_ref: np.ndarray, feats: np.ndarray, counts: np.ndarray,
                   ref_factor: np.ndarray | None = None) -> np.ndarray:
    """The FID against fixed reference statistics of each resample of `feats` (n, D), resample b holding feature i
    counts[b, i] times (each row sums to n): the reference side is factored once (F with F'F = sigma_ref: its
    Cholesky factor, or `ref_factor` such as covariance_factor(reference feats) when that has fewer rows), so
    that tr((S_ref S_b)^½) is the sum of the square roots of the eigenvalues of Z_b'Z_b / (n - 1) with Z_b = X_b F'
    (X_b the resample, centred): a min(n, k)-sized eigenproblem per resample (k: the factor's rows; n x n shrinks to
    the images a resample drew, ~63% of them).
    `counts` = ones gives frechet_distance(mu_ref, sigma_ref, *gaussian_stats(feats)) up to round-off."""
    x = _float64(feats)
    n = x.shape[0]
    c = _float64(counts).reshape(-1, n)
    mu_ref_t, sigma_ref_t = _float64(mu_ref), _float64(sigma_ref)
    factor = _float64(ref_factor) if ref_factor is not None else _factor(_symmetric(sigma_ref_t))
    m0 = x.mean(dim=0)
    x0 = x - m0
    z0 = x0 @ factor.T  # (n, k)
    shift = m0 - mu_ref_t
    g0 = x0 @ x0.T
    mean_term = torch.einsum("bi,ij,bj->b", c, g0, c) / n**2 + 2 * (c @ (x0 @ shift)) / n + shift @ shift
    trace_b = (c @ g0.diagonal() - torch.einsum("bi,ij,bj->b", c, g0, c) / n) / (n - 1)
    roots = torch.empty(c.shape[0], dtype=torch.float64)
    with _one_thread():
        _resampled_roots(z0, c, roots)
    values = mean_term + torch.trace(sigma_ref_t) + trace_b - 2 * roots
    return values.clamp(min=0).numpy()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Many small eigenproblems on one thread: on 2 busy cores, 2 threads measured 40x slower (1000 of 81 x 81:
    45 s against 0.5 s), as portable.py's small products do; and the values do not depend on a trial's threads."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _resampled_roots(z0: torch.Tensor, c: torch.Tensor, roots: torch.Tensor) -> None:
    n = z0.shape[0]
    if n <= z0.shape[1]:  # n x n: P W Gz W P with W = diag(sqrt(c)), P = I - w w'/n, on the images drawn
        gz = z0 @ z0.T
        for b, row in enumerate(c):
            drawn = row.nonzero().squeeze(1)  # the others' rows and columns are 0: only zero eigenvalues
            w = row[drawn].sqrt()
            a = w[:, None] * gz[drawn][:, drawn] * w[None, :]
            aw = a @ w
            inner = a - (aw[:, None] * w[None, :] + w[:, None] * aw[None, :]) / n + (w @ aw) * torch.outer(w, w) / n**2
            roots[b] = _roots(inner / (n - 1))
    else:  # k x k: Z0' diag(c) Z0 - (Z0'c)(c'Z0)/n
        for b, row in enumerate(c):
            zc = row @ z0
            roots[b] = _roots(((z0 * row[:, None]).T @ z0 - torch.outer(zc, zc) / n) / (n - 1))
