"""Atomic, complete checkpoints: G, D, both optimizers, step, every RNG state, the batch order, the loss window.

A checkpoint carries the trial it belongs to, so a resume with a different config is refused, and so a trained
generator can be loaded back by its trial key (`bench fid ... runs:<key>`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.files import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"


def default_runs_root() -> Path:
    return Path(os.environ.get("BENCH_RUNS", "./runs"))


def save_atomic(obj: Any, path: Path) -> None:
    """A checkpoint is never torn: a kill mid-write leaves the previous one in place."""
    write_atomic(path, lambda f: torch.save(obj, f))


def global_rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # a torn or foreign file: say which, and how to start over
        raise BenchError(f"{path}: unreadable checkpoint ({type(err).__name__}); delete it to retrain the trial") \
            from None


def find_trial_dir(key: str, runs_root: Path | None = None) -> Path:
    """runs/<suite>/<key>/ for a trial key (or a unique prefix of one)."""
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    matches = sorted(p for p in root.glob("*/*") if p.is_dir() and p.name.startswith(key))
    if not matches:
        raise BenchError(f"no trial '{key}' under {root}; `bench run SUITE --dry-run` lists the keys")
    if len({p.name for p in matches}) > 1:
        raise BenchError(f"trial key '{key}' is ambiguous under {root}: {', '.join(p.name for p in matches)}")
    return matches[0]


def load_sampler(key: str, runs_root: Path | None = None, device: str | torch.device = "cpu"):
    """(sample(n, rng) -> n images in [-1, 1], trial config dict) from a trial's latest checkpoint."""
    from bench.methods import get_method

    path = find_trial_dir(key, runs_root) / CHECKPOINT_NAME
    if not path.exists():
        raise BenchError(f"trial '{key}' has no checkpoint yet; run its suite first")
    ckpt = load(path, device)
    trial = ckpt["trial"]
    shape = ckpt["data_shape"]
    method = get_method(trial["method"])(get_method(trial["method"]).Hyper(**trial["params"]), **shape)
    generator = method.build_generator().to(device)
    generator.load_state_dict(ckpt["generator"])
    generator.eval()
    class_weights = ckpt.get("class_weights")

    def sample(n: int, rng: torch.Generator) -> torch.Tensor:
        return method.sample(generator, n, rng, class_weights, device)

    return sample, trial
