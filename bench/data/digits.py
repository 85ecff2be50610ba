"""scikit-learn's 8x8 handwritten digits (1,797 images, labels 0-9): shipped with the package, the embedded default."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.data.base import ImageSet, register_dataset

# The 1,797 digits have no official split; a fixed, seeded 80/20 split keeps 'test' held out from training.
_TEST_FRACTION = 0.2


@register_dataset("digits", "scikit-learn's 8x8 handwritten digits, 1,797 images, labels 0-9 (shipped, no download)")
def load_digits(data_root: Path, split: str, resolution: int) -> ImageSet:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1)  # values 0..16
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = int(len(images) * _TEST_FRACTION)
    idx = order[:n_test] if split == "test" else order[n_test:]
    idx = idx.sort().values
    return ImageSet(images[idx] / 8.0 - 1.0, labels[idx], [str(d) for d in range(10)])
