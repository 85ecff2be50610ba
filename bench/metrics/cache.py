"""Reference statistics on disk: one .npz per protocol, written atomically, computed once under a file lock.

A file holds `mu` and `sigma` (float64), `feats` (float32, for KID and precision/recall/density/coverage) and
`meta` (a JSON string: the protocol). It is named after a hash of everything that decides the numbers (dataset,
split, resolution, count, options, mode, weights sha256, preprocessing version), so a changed protocol is a miss,
never a wrong hit. The same file can be handed back to `bench fid` as precomputed statistics.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.files import write_atomic

log = logging.getLogger(__name__)

# Bump when preprocessing changes (quantisation, resize), so old files stop matching.
PREPROCESSING_VERSION = 1


@dataclass
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    feats: np.ndarray | None = None
    meta: dict = field(default_factory=dict)  # n, reference, resolution, mode, weights_sha256


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", "~/.cache/bench")).expanduser()


def stats_path(cache_dir: Path | None, fields: dict, label: str) -> Path:
    """<cache>/fid-stats/<label>-<hash of fields>.npz"""
    blob = json.dumps({"preprocessing": PREPROCESSING_VERSION, **fields}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[:80]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "fid-stats" / f"{slug}-{digest}.npz"


def save_stats(path: Path, stats: ReferenceStats) -> None:
    """Write to a temporary file in the same folder, then rename over the target: readers never see half a file."""
    arrays = {"mu": stats.mu, "sigma": stats.sigma, "meta": np.array(json.dumps(stats.meta))}
    if stats.feats is not None:
        arrays["feats"] = stats.feats.astype(np.float32)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load_stats(path: Path) -> ReferenceStats:
    """Read a statistics .npz (bench's own, or any with `mu` and `sigma`); KeyError/ValueError/OSError if unusable."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        feats = data["feats"] if "feats" in data.files else None
        return ReferenceStats(np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64), feats, meta)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock beside `path`, so parallel trials compute a reference once; no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: two processes may both compute; the atomic rename keeps the file whole
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_load(path: Path, need_feats: bool) -> ReferenceStats | None:
    if not path.exists():
        return None
    try:
        stats = load_stats(path)
    except (KeyError, ValueError, OSError, EOFError) as err:
        log.warning("ignoring unreadable statistics cache %s (%s); recomputing", path, err)
        return None
    return None if need_feats and stats.feats is None else stats


def cached_stats(path: Path, compute: Callable[[], ReferenceStats], need_feats: bool = False,
                 use_cache: bool = True) -> tuple[ReferenceStats, bool]:
    """(statistics, whether they came from the cache). `compute` runs at most once per file, across processes."""
    if not use_cache:
        return compute(), False
    stats = _try_load(path, need_feats)
    if stats is not None:
        return stats, True
    with _locked(path):
        stats = _try_load(path, need_feats)  # another process may have written it while we waited
        if stats is not None:
            return stats, True
        stats = compute()
        try:
            save_stats(path, stats)
        except OSError as err:
            log.warning("could not write the statistics cache %s (%s); continuing without it", path, err)
        return stats, False
