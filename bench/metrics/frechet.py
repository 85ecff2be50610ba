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
