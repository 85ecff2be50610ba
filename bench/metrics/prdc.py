"""Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020) from k-NN balls.

Each sample gets a ball whose radius is the distance to its k-th nearest neighbour within its own set (itself
excluded). Then, as in Naeem et al.'s reference implementation (the `prdc` package):
- precision: share of generated samples inside at least one real ball (are the fakes realistic?)
- recall:    share of real samples inside at least one generated ball (is the real data covered?)
- density:   mean number of real balls containing a generated sample, / k
- coverage:  share of real samples whose ball contains at least one generated sample
Precision/recall use k = 3 (Kynkäänniemi et al.'s default), density/coverage k = 5 (Naeem et al.'s). Distances
(neighbours.py) are computed in blocks, so memory stays bounded at any n.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.metrics.neighbours import block_rows, distances, float64, knn_radii

PR_K = 3
DC_K = 5


def prdc(feats_real: np.ndarray, feats_fake: np.ndarray, pr_k: int = PR_K, dc_k: int = DC_K) -> dict[str, float]:
    """precision, recall, density, coverage of the generated set against the real set."""
    real, fake = float64(feats_real), float64(feats_fake)
    real_radii = knn_radii(real, tuple(sorted({pr_k, dc_k})))
    fake_radius = knn_radii(fake, (pr_k,))[pr_k]
    fake_sq = (fake * fake).sum(dim=1)
    fake_in_real_ball = torch.zeros(fake.shape[0], dtype=torch.bool)
    real_balls_per_fake = torch.zeros(fake.shape[0], dtype=torch.float64)
    real_in_fake_ball = torch.zeros(real.shape[0], dtype=torch.bool)
    real_ball_has_fake = torch.zeros(real.shape[0], dtype=torch.bool)
    step = block_rows(fake.shape[0])
    for start in range(0, real.shape[0], step):
        rows = slice(start, start + step)
        d = distances(real[rows], fake, fake_sq)  # (real block, fake)
        fake_in_real_ball |= (d < real_radii[pr_k][rows, None]).any(dim=0)
        real_balls_per_fake += (d < real_radii[dc_k][rows, None]).sum(dim=0)
        real_in_fake_ball[rows] = (d < fake_radius[None, :]).any(dim=1)
        real_ball_has_fake[rows] = d.min(dim=1).values < real_radii[dc_k][rows]
    return {
        "precision": float(fake_in_real_ball.double().mean()),
        "recall": float(real_in_fake_ball.double().mean()),
        "density": float(real_balls_per_fake.mean() / dc_k),
        "coverage": float(real_ball_has_fake.double().mean()),
    }
