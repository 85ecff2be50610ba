"""`synthetic`: seeded uniform noise images, for speed measurements (`bench perf suite`) where no dataset is at
hand (a GPU box with torch alone). Nothing to learn from: never a benchmark of quality."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.data.base import ImageSet, register_dataset

SIZE = {"train": 2048, "test": 512}


@register_dataset("synthetic", "seeded uniform noise, 3 channels, 2,048 train / 512 test images: for speed "
                  "measurements only (torch alone, no download)")
def load_synthetic(data_root: Path, split: str, resolution: int) -> ImageSet:
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    return ImageSet(torch.rand(SIZE[split], 3, resolution, resolution, generator=gen) * 2 - 1)
