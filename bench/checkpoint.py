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
from bench.methods import DataShape, get_method

CHECKPOINT_NAME = "checkpoint.pt"
# 2: named networks, optimizers and schedulers and the method's own state, a loss window per name.
# 1 (unnumbered): generator, discriminator, opt_g, opt_d and a window of (loss_d, loss_g); read through `upgrade`.
FORMAT = 2


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


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint in the current layout; those written before named networks are mapped onto it, so trials
    interrupted under an earlier version resume (their numbers are the same: the six first methods did not
    change)."""
    if state.get("format", 1) >= FORMAT:
        return state
    state = dict(state)
    state["networks"] = {"generator": state.pop("generator"), "discriminator": state.pop("discriminator")}
    state["optimizers"] = {"generator": state.pop("opt_g"), "discriminator": state.pop("opt_d")}
    state.setdefault("schedulers", {})
    state.setdefault("method_state", {})
    window, steps = state["window"], state["window_steps"]
    state["window"] = {"loss_d": window[0].clone(), "loss_g": window[1].clone()}
    state["counts"] = {"loss_d": steps, "loss_g": steps}
    state["format"] = FORMAT
    return state


def find_trial_dir(key: str, runs_root: Path | None = None) -> Path:
    """runs/<suite>/<key>/ for a trial key (or a unique prefix of one)."""
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    matches = sorted(p for p in root.glob("*/*") if p.is_dir() and p.name.startswith(key))
    if not matches:
        raise BenchError(f"no trial '{key}' under {root}; `bench run SUITE --dry-run` lists the keys")
    if len({p.name for p in matches}) > 1:
        raise BenchError(f"trial key '{key}' is ambiguous under {root}: {', '.join(p.name for p in matches)}")
    return matches[0]


def load_method(key: str, runs_root: Path | None = None, device: str | torch.device = "cpu"):
    """(method with its trained networks, in eval mode, trial config dict) from a trial's latest checkpoint."""
    path = find_trial_dir(key, runs_root) / CHECKPOINT_NAME
    if not path.exists():
        raise BenchError(f"trial '{key}' has no checkpoint yet; run its suite first")
    return method_from_checkpoint(load(path, device), device)


def method_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu"):
    ckpt = upgrade(ckpt)
    trial = ckpt["trial"]
    cls = get_method(trial["method"])
    recorded = ckpt["data_shape"]
    shape = DataShape(recorded["channels"], recorded["resolution"], recorded.get("n_classes", 0),
                      ckpt.get("class_weights"), tuple(recorded.get("classes", ())), recorded.get("pairs"))
    method = cls(cls.Hyper(**trial["params"]), shape)
    method.nets = method.build()
    for name, net in method.nets.items():
        net.load_state_dict(ckpt["networks"][name])
        net.to(device).eval()
    method.device = torch.device(device)
    method.load_extra_state(ckpt.get("method_state", {}))
    return method, trial


def load_sampler(key: str, runs_root: Path | None = None, device: str | torch.device = "cpu"):
    """(sample(n, rng) -> n images in [-1, 1], trial config dict) from a trial's latest checkpoint."""
    method, trial = load_method(key, runs_root, device)

    def sample(n: int, rng: torch.Generator) -> torch.Tensor:
        return method.sample(n, rng)

    return sample, trial
