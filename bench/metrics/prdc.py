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


def prdc_replicates(feats_real: np.ndarray, feats_fake: np.ndarray, counts: np.ndarray, pr_k: int = PR_K,
                    dc_k: int = DC_K) -> dict[str, np.ndarray]:
    """precision, density and coverage of each resample of the generated set (resample b holds generated sample i
    counts[b, i] times), from one pass over the real-to-generated distances: the real balls do not move, so
    precision and density are means of per-sample values and coverage asks, per real ball, whether the resample
    kept a sample inside it. Recall is not resampled: it needs the generated set's own k-NN radii, which collapse
    to 0 around an image the resample repeats more than k times."""
    real, fake = float64(feats_real), float64(feats_fake)
    n = fake.shape[0]
    c = torch.as_tensor(counts, dtype=torch.float64).reshape(-1, n)
    real_radii = knn_radii(real, tuple(sorted({pr_k, dc_k})))
    fake_sq = (fake * fake).sum(dim=1)
    in_real_ball = torch.zeros(n, dtype=torch.bool)
    balls_per_fake = torch.zeros(n, dtype=torch.float64)
    covered = torch.zeros(c.shape[0], dtype=torch.float64)  # real balls holding a sample of the resample
    step = block_rows(max(n, c.shape[0]))
    for start in range(0, real.shape[0], step):
        rows = slice(start, start + step)
        d = distances(real[rows], fake, fake_sq)
        in_real_ball |= (d < real_radii[pr_k][rows, None]).any(dim=0)
        inside = d < real_radii[dc_k][rows, None]  # (real block, fake)
        balls_per_fake += inside.sum(dim=0)
        covered += ((inside.double() @ c.T) > 0).sum(dim=0)
    return {"precision": (c @ in_real_ball.double() / n).numpy(),
            "density": (c @ balls_per_fake / n / dc_k).numpy(),
            "coverage": (covered / real.shape[0]).numpy()}
