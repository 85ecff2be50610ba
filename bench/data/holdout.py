"""Held-out splits carved from a dataset's training split by a recorded, deterministic rule (`holdout:` in a suite's
dataset entry): `{name: folder, path: photos, holdout: {validation: 0.1, test: 0.1}}`.

Each image of the training split is placed by a hash of its identity, never by its position or a random draw: the
path of its file relative to the folder for folder datasets (so adding, removing or re-ordering other files moves no
image between splits, and renaming one moves only that one), its index in the package's array for shipped datasets
(whose order is fixed). u = the first 8 bytes of sha256(identity) / 2^64; u < validation -> `validation`,
validation <= u < validation + test -> `test`, the rest -> `train`. The shares are part of the dataset's options, so
of every trial's key and of the reference statistics' cache key; the splits' sizes are in each evaluation's
protocol (n_real). A dataset with a test split of its own (digits, mnist, a folder with test/) holds out a
validation share only: its own test split stays the test split.

`subset: 0.1` keeps that share of the training split (after any holdout, which it leaves alone: a study of 10% of
the data is evaluated on the same held-out images as one of all of it), by the same kind of hash of each identity,
salted so that it is independent of the holdout's placement; nested shares nest (0.1 keeps a subset of 0.5's).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from bench.errors import BenchError

HELD_OUT = ("validation", "test")


def shares(holdout: Any, name: str, has_test: bool) -> dict[str, float]:
    """The validated {split: share} of a `holdout:` setting."""
    if not isinstance(holdout, dict) or not holdout or set(holdout) - set(HELD_OUT):
        raise BenchError(f"dataset '{name}': holdout is a mapping of validation and/or test to shares, e.g. "
                         "holdout: {validation: 0.1, test: 0.1}")
    out = {}
    for split, share in holdout.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
            raise BenchError(f"dataset '{name}': holdout.{split} is {share!r}; give a share between 0 and 1, "
                             "e.g. 0.1")
        out[split] = float(share)
    if sum(out.values()) >= 1:
        raise BenchError(f"dataset '{name}': the holdout shares add up to {sum(out.values()):g}; leave some "
                         "images for training (e.g. validation 0.1, test 0.1)")
    if has_test and "test" in out:
        raise BenchError(f"dataset '{name}' has a test split of its own; hold out a validation share only "
                         "(holdout: {validation: 0.1})")
    return out


def position(identity: str) -> float:
    """Where an image falls in [0, 1): the first 8 bytes of sha256 of its identity."""
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big") / 2**64


def assign(identities: list[str], split_shares: dict[str, float]) -> list[str]:
    """The split of each image: validation, test or train."""
    v, t = split_shares.get("validation", 0.0), split_shares.get("test", 0.0)
    out = []
    for identity in identities:
        u = position(identity)
        out.append("validation" if u < v else "test" if u < v + t else "train")
    return out


def select(identities: list[str], split_shares: dict[str, float], split: str) -> torch.Tensor:
    """Indices of the images of `split`."""
    return torch.tensor([i for i, s in enumerate(assign(identities, split_shares)) if s == split], dtype=torch.long)


def subset_share(value: Any, name: str) -> float | None:
    """The validated share of a `subset:` setting (None: the whole training split)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise BenchError(f"dataset '{name}': subset is {value!r}; give the share of the training split to keep, "
                         "between 0 and 1, e.g. subset: 0.1")
    return float(value)


def kept(identities: list[str], share: float) -> torch.Tensor:
    """Indices of the images a `subset: share` keeps: those whose identity hashes (salted, so the choice is
    independent of which images a holdout carved out) below the share."""
    return torch.tensor([i for i, identity in enumerate(identities) if position(f"subset:{identity}") < share],
                        dtype=torch.long)
