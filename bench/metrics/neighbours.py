"""Nearest neighbours in a feature space, in float64 and in blocks (memory stays bounded at any n): the k-NN radii of
precision/recall/density/coverage and the nearest reference image of each generated one (AuthPct)."""

from __future__ import annotations

import numpy as np
import torch

_BLOCK_ENTRIES = 1 << 23  # distances per block (64 MiB in float64)


def block_rows(n_columns: int) -> int:
    return max(1, _BLOCK_ENTRIES // max(1, n_columns))


def float64(a) -> torch.Tensor:  # torch, not numpy: one BLAS thread pool with the network's (see frechet.py)
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def distances(x: torch.Tensor, y: torch.Tensor, y_sq: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(dim=1)[:, None] + y_sq[None, :] - 2 * x @ y.T
    return sq.clamp(min=0).sqrt()


def knn_radii(feats: np.ndarray, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Distance of every sample to its k-th nearest other sample, for each k in `ks`."""
    x = float64(feats)
    n = x.shape[0]
    if n <= max(ks):
        raise ValueError(f"k-NN radii with k={max(ks)} need more than {max(ks)} samples, got {n}")
    sq = (x * x).sum(dim=1)
    radii = {k: torch.empty(n, dtype=torch.float64) for k in ks}
    step = block_rows(n)
    for start in range(0, n, step):
        d = distances(x[start:start + step], x, sq)
        nearest = d.topk(max(ks) + 1, dim=1, largest=False).values  # column 0 is the sample itself (distance 0)
        for k in ks:
            radii[k][start:start + step] = nearest[:, k]
    return radii


def nearest(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row of `x`: the distance to its nearest row of `y`, and that row's index."""
    x, y = float64(x), float64(y)
    y_sq = (y * y).sum(dim=1)
    dist = torch.empty(x.shape[0], dtype=torch.float64)
    index = torch.empty(x.shape[0], dtype=torch.long)
    step = block_rows(y.shape[0])
    for start in range(0, x.shape[0], step):
        d = distances(x[start:start + step], y, y_sq).min(dim=1)
        dist[start:start + step], index[start:start + step] = d.values, d.indices
    return dist, index
