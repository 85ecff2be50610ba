"""Devices: one rule for every command and executor. A device name (auto, cpu, cuda, cuda:N, mps) becomes a
torch.device here; "does this train on CUDA?" is decided here; so is how many CPU threads a slot gets.

torch is imported inside the functions: the CLI checks names with DEVICE_PATTERN while parsing its options, which
needs no torch.
"""

from __future__ import annotations

import os
import re

from bench.errors import BenchError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
ALLOWED = "auto, cpu, cuda, cuda:N, mps"


def check_name(name: str, flag: str = "--device") -> str:
    """A device name as the user wrote it, or one line saying what is allowed."""
    if not DEVICE_PATTERN.match(name):
        raise BenchError(f"{flag} {name}: unknown device; allowed: {ALLOWED}")
    return name


def is_cuda(name: str) -> bool:
    """Whether a name asks for CUDA: `cuda` or `cuda:N` (not `auto`)."""
    return name == "cuda" or name.startswith("cuda:")


def trains_on_cuda(name: str) -> bool:
    """Whether a trial with this device name trains on a GPU: `cuda`, `cuda:N`, or `auto` where one is visible."""
    if is_cuda(name):
        return True
    if name != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def resolve(name: str):
    """The torch.device a name stands for; one line when it is unknown or not on this machine."""
    import torch

    check_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"device '{name}' asked for, but no CUDA GPU is visible; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BenchError(f"device '{name}' asked for, but this machine shows {torch.cuda.device_count()} "
                             f"GPUs (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BenchError(f"device '{name}' asked for, but MPS is not available here; use --device cpu or auto")
    return device


def gpu_indices(name: str) -> list[int]:
    """The GPUs a device name lets trials use: the one of `cuda:N`, else every visible one."""
    import torch

    if name.startswith("cuda:"):
        return [int(name.split(":", 1)[1])]
    return list(range(torch.cuda.device_count()))


def cpu_cores() -> int:
    """Cores this process may run on (its affinity, as a container or taskset limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
