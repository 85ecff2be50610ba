"""What a generated set is compared against: a registered dataset, an image folder, or a statistics file.

- a registered dataset (`digits`, `mnist`, a suite's `folder` dataset...): loaded by bench.data at the trial's
  resolution, exactly the images a trial trains on;
- `folder:<path>`: every image file under the path at its own size, read as clean-fid reads a folder;
- `stats:<file.npz>`: precomputed `mu` and `sigma` (and `feats`, if KID/PRDC are wanted), e.g. a file from
  clean-fid or one from bench's own cache.
A subset (`n`) is the first n after a shuffle seeded with 0, so it is the same subset on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from bench.data import load_dataset
from bench.data.folder import IMAGE_SUFFIXES, list_images
from bench.errors import BenchError
from bench.metrics.base import ProgressCallback, Reference
from bench.metrics.cache import ReferenceStats, cached_stats, load_stats, stats_path
from bench.metrics.features import FeatureExtractor, file_batches, tensor_batches
from bench.metrics.frechet import gaussian_stats
from bench.numerics import kernels

SUBSET_SEED = 0


def kind(reference: Reference) -> str:
    if reference.dataset.startswith("folder:"):
        return "folder"
    if reference.dataset.startswith("stats:"):
        return "stats"
    return "dataset"


def describe(reference: Reference) -> str:
    """The `eval.reference` tag: `<dataset>:<split>` (`[class k]` for one class), `folder:<abs path>` or
    `stats:<abs path>`."""
    if kind(reference) == "dataset":
        only = f"[class {reference.label}]" if reference.label is not None else ""
        only += f"[{reference.domain}]" if reference.domain else ""
        return f"{reference.dataset}:{reference.split}{only}"
    prefix, path = reference.dataset.split(":", 1)
    return f"{prefix}:{Path(path).expanduser().resolve()}"


def resolution_tag(reference: Reference) -> str:
    return str(reference.resolution) if kind(reference) == "dataset" else "native"


def subset_indices(total: int, n: int | None) -> torch.Tensor | None:
    """None for all; else the first n of a permutation seeded with SUBSET_SEED."""
    if n is None or n >= total:
        return None
    return torch.randperm(total, generator=torch.Generator().manual_seed(SUBSET_SEED))[:n]


def folder_files(path: Path, n: int | None = None) -> list[Path]:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise BenchError(f"{path}: no such folder; give a folder of images, a dataset name or a .npz")
    files = list_images(path)
    if not files:
        raise BenchError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder or below")
    idx = subset_indices(len(files), n)
    return files if idx is None else [files[i] for i in idx.tolist()]


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        digest.update(f"{f}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_stats_file(reference: Reference, mode: str, weights_sha256: str, need_feats: bool) \
        -> tuple[ReferenceStats, list[str]]:
    """A user's precomputed statistics, checked against the protocol where the file records one."""
    path = Path(reference.dataset.split(":", 1)[1]).expanduser()
    if not path.is_file():
        raise BenchError(f"{path}: statistics file not found; give an .npz with arrays mu and sigma")
    try:
        stats = load_stats(path)
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise BenchError(f"{path}: not a statistics file ({err}); give an .npz with arrays mu and sigma") from None
    if stats.mu.ndim != 1 or stats.sigma.shape != (stats.mu.shape[0], stats.mu.shape[0]):
        raise BenchError(f"{path}: mu {stats.mu.shape} and sigma {stats.sigma.shape} are not a mean and covariance")
    for key, wanted in (("mode", mode), ("weights_sha256", weights_sha256)):
        if key in stats.meta and stats.meta[key] != wanted:
            raise BenchError(f"{path}: statistics computed with {key}={stats.meta[key]}, this evaluation uses "
                             f"{wanted}; recompute them or pass --mode {stats.meta[key]}")
    warnings = []
    if not stats.meta:
        warnings.append(f"{path} records no protocol: assuming mode {mode} and these Inception weights; "
                        "n_real unknown")
    return stats, warnings


def reference_stats(reference: Reference, mode: str, extractor: FeatureExtractor, weights_sha256: str,
                    batch_size: int = 50, cache_dir: Path | None = None, need_feats: bool = False,
                    use_cache: bool = True, progress: ProgressCallback | None = None) \
        -> tuple[ReferenceStats, bool, list[str]]:
    """(statistics, cache hit, warnings) for a reference, computed once and cached per protocol."""
    if kind(reference) == "stats":
        stats, warnings = load_stats_file(reference, mode, weights_sha256, need_feats)
        return stats, True, warnings
    meta = {"reference": describe(reference), "resolution": resolution_tag(reference), "mode": mode,
            "weights_sha256": weights_sha256}
    if extractor.cache_fields:  # a space other than Inception (spaces.py); Inception's keys stay as they were
        meta["features"] = extractor.cache_fields["features"]
    options = dict(reference.options)
    if "path" in options:  # a relative path names another folder from another directory or data root
        options["path"] = str(Path(options["path"]).expanduser().resolve())
        options["data_root"] = str(Path(reference.data_root).resolve()) if reference.data_root else None
    # features computed with other kernels are other bits: statistics are cached per kernels too (bench/numerics.py)
    fields = {**meta, **extractor.cache_fields, "n": reference.n, "options": options, "kernels": kernels()}
    if reference.label is not None:
        fields["label"] = reference.label
    if reference.domain is not None:
        fields["domain"] = reference.domain
    if kind(reference) == "folder":
        folder = Path(reference.dataset.split(":", 1)[1])
        fields["fingerprint"] = _fingerprint(folder_files(folder, reference.n))  # edited folders are a miss
        label = f"folder_{folder.resolve().name}-{reference.n or 'all'}-{mode}"
    else:
        label = f"{reference.dataset}-{reference.split}-{reference.resolution}px-{reference.n or 'all'}-{mode}"
        if reference.label is not None:
            label += f"-class{reference.label}"
        if reference.domain is not None:
            label += f"-{reference.domain}"

    if extractor.cache_fields:
        label += f"-{extractor.cache_fields['features']}"

    def compute() -> ReferenceStats:
        batches, total = reference_images(reference, batch_size)
        return _stats(extractor(batches, _phase(progress, total)), meta)

    path = stats_path(cache_dir, fields, label)
    stats, hit = cached_stats(path, compute, need_feats, use_cache)
    warnings = []
    if reference.n is not None and stats.meta.get("n", reference.n) < reference.n:
        warnings.append(f"n_real={reference.n} asked, but {describe(reference)} has {stats.meta['n']} images: "
                        "using all of them")
    return stats, hit, warnings


def reference_images(reference: Reference, batch_size: int = 50) -> tuple[Iterator[torch.Tensor], int]:
    """(uint8 batches, how many) of a dataset or folder reference: the images its statistics are made of."""
    if kind(reference) == "folder":
        files = folder_files(Path(reference.dataset.split(":", 1)[1]), reference.n)
        return file_batches(files, batch_size), len(files)
    data = load_dataset(reference.dataset, reference.resolution, reference.split, reference.data_root,
                        **reference.options)
    images = data.domain(reference.domain or "b") if hasattr(data, "domain") else data.images
    if reference.label is not None:
        if data.labels is None:
            raise BenchError(f"{describe(reference)}: the dataset has no labels")
        images = images[data.labels == reference.label]
    idx = subset_indices(len(images), reference.n)
    chosen = images if idx is None else images[idx]
    return tensor_batches(chosen, batch_size), len(chosen)


def _phase(progress: ProgressCallback | None, total: int):
    return None if progress is None else (lambda done: progress("reference statistics", done, total))


def _stats(features, meta: dict) -> ReferenceStats:
    if len(features) < 2:
        raise BenchError(f"reference {meta['reference']}: only {len(features)} readable image; FID needs at least 2")
    mu, sigma = gaussian_stats(features.feats)
    return ReferenceStats(mu, sigma, np.asarray(features.feats, np.float32), {**meta, "n": len(features)})
