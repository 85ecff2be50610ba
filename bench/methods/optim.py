"""The methods' optimisers, on kernels that give the same bits on every x86-64 CPU (bench/numerics.py).

torch's default (and foreach) Adam and RMSprop take a square root with `Tensor.sqrt`, which ATen sends to MKL's
vector math (vsSqrt); under bench's pinned settings that is still the one training op whose bits depend on the CPU:
on AVX-512 machines it is not correctly rounded, and Intel's and AMD's AVX-512 results differ from each other and
from an AVX2 machine's (measured with `bench check --numerics`, README "Reproducibility"). So:

- Adam is torch's fused CPU/GPU kernel (`fused=True`): ATen's own vector code, whose sqrt is the IEEE instruction.
- RMSprop is torch's RMSprop with its step written out for the settings bench uses (no momentum, not centered, no
  weight decay), the root as `bench.numerics.sqrt`: `1 / rsqrt(v)`, ATen's exact IEEE 1/sqrt and an exact
  division. The state (`step`, `square_avg`) and the hyperparameters are torch's, so checkpoints of either load.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from bench import numerics


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float],
         eps: float = 1e-8) -> torch.optim.Adam:
    """torch's Adam, fused: the same update rule with ATen's vector kernels (and faster)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)


class RMSprop(torch.optim.RMSprop):
    """torch.optim.RMSprop (alpha 0.99, eps 1e-8) whose root is `numerics.sqrt(v)` instead of `v.sqrt()`."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float):
        super().__init__(params, lr=lr, foreach=False)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001  (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["momentum"] or group["centered"] or group["weight_decay"] or group["maximize"]:
                raise ValueError("bench's RMSprop has no momentum, centering, weight decay or maximize")
            alpha, eps, lr = group["alpha"], group["eps"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                square_avg = state["square_avg"]
                square_avg.mul_(alpha).addcmul_(p.grad, p.grad, value=1 - alpha)
                p.addcdiv_(p.grad, numerics.sqrt(square_avg).add_(eps), value=-lr)
        return loss


def load_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping this optimizer's kernel: torch takes a group's `fused` and
    `foreach` flags from the saved state, so a checkpoint written before bench fused its Adams would otherwise
    resume on the CPU-dependent default kernel."""
    kept = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, kept, strict=True):
        group.update(flags)
        if group.get("fused"):  # the fused kernel keeps its step counts as float32 beside the parameters
            for p in group["params"]:
                if "step" in optimizer.state.get(p, {}):
                    optimizer.state[p]["step"] = optimizer.state[p]["step"].to(torch.float32).to(p.device)
