"""Every random stream a trial derives from its seed, in one table.

A trial's numbers are decided by its seed through these streams and no others; changing a value here changes every
recorded number (tests/golden.json holds them). New randomness gets a new, named row, never a draw from a stream
that already exists: draws shared between two purposes make one depend on how often the other is used.

| stream       | seeded with                                   | drives                                                |
|--------------|-----------------------------------------------|-------------------------------------------------------|
| globals      | seed                                          | python `random`, numpy's and torch's global RNGs      |
|              |                                               | (dropout, Pix2Pix's noise; anything a net draws)      |
| training     | seed                                          | the trial's torch.Generator on its device: batch      |
|              |                                               | order, latents, penalties' interpolation, any method  |
|              |                                               | randomness (checkpointed with the trial)              |
| evaluation   | seed + 1,000,003                              | latents (and labels) of the fakes each evaluation     |
|              |                                               | scores: the same at every evaluation step             |
| intra_fid    | seed + 2,000,003                              | per-class latents of intra-FID                        |
| leak         | seed + 3,000,003                              | the latents of the leak check's samples               |
| leak_check   | seed + 4,000,003                              | its orientation classifier: initial weights, batches  |
|              |                                               | and rotations                                         |
| bootstrap    | seed + 5,000,003                              | eval.bootstrap's resamples of the generated images'   |
|              |                                               | features: the same at every evaluation step           |
| grid         | sha256("<suite>/<dataset>")[:8]               | the latents (or test inputs) of sample grids: the     |
|              |                                               | same for every trial of a suite and dataset           |
| grid_noise   | 0                                             | StyleGAN's per-pixel noise in sample grids: one fixed |
|              |                                               | draw, so grids differ only by the trained networks    |
| tpe          | (study seed x 1,000,003 + trial number) mod 2^32 | bench tune's sampler for one proposal              |
"""

from __future__ import annotations

import hashlib
import random

EVALUATION_OFFSET = 1_000_003  # a prime: far from any seed a suite lists, so no trial's streams meet another's
INTRA_FID_OFFSET = 2_000_003
LEAK_OFFSET = 3_000_003
LEAK_CHECK_OFFSET = 4_000_003
BOOTSTRAP_OFFSET = 5_000_003
TPE_STRIDE = 1_000_003


def globals_seed(seed: int) -> int:
    return seed


def training_seed(seed: int) -> int:
    return seed


def evaluation_seed(seed: int) -> int:
    return seed + EVALUATION_OFFSET


def intra_fid_seed(seed: int) -> int:
    return seed + INTRA_FID_OFFSET


def leak_seed(seed: int) -> int:
    return seed + LEAK_OFFSET


def leak_check_seed(seed: int) -> int:
    return seed + LEAK_CHECK_OFFSET


def bootstrap_seed(seed: int) -> int:
    return seed + BOOTSTRAP_OFFSET


def grid_seed(suite: str, dataset: str) -> int:
    return int(hashlib.sha256(f"{suite}/{dataset}".encode()).hexdigest()[:8], 16)


def grid_noise_seed() -> int:
    return 0


def tpe_seed(study_seed: int, trial_number: int) -> int:
    return (study_seed * TPE_STRIDE + trial_number) % 2**32


STREAMS = {"globals": globals_seed, "training": training_seed, "evaluation": evaluation_seed,
           "intra_fid": intra_fid_seed, "leak": leak_seed, "leak_check": leak_check_seed,
           "grid": grid_seed, "grid_noise": grid_noise_seed,
           "tpe": tpe_seed}


def seed_globals(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators from the trial's seed (the `globals` stream)."""
    import numpy as np
    import torch

    value = globals_seed(seed)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def generator(seed: int, device=None):
    """A torch.Generator on `device` (default: the CPU) seeded with `seed` (one of the values above)."""
    import torch

    gen = torch.Generator(device) if device is not None else torch.Generator()
    return gen.manual_seed(seed)
