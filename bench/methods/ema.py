"""An exponential moving average of a network's weights (Karras et al. 2018, 2019: samples and metrics come from
the averaged generator, which is smoother than the one being trained)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(net: nn.Module) -> nn.Module:
    """A frozen copy to average into."""
    shadow = copy.deepcopy(net)
    shadow.requires_grad_(False)
    return shadow


@torch.no_grad()
def ema_update(shadow: nn.Module, net: nn.Module, beta: float) -> None:
    """shadow = beta * shadow + (1 - beta) * net, for parameters; buffers are copied."""
    for s, p in zip(shadow.parameters(), net.parameters(), strict=True):
        s.lerp_(p, 1 - beta)
    for s, b in zip(shadow.buffers(), net.buffers(), strict=True):
        s.copy_(b)


def ema_beta(batch_size: int, half_life_images: float) -> float:
    """The decay per step that halves an old weight's share every `half_life_images` images (StyleGAN2's
    ema_kimg): beta = 0.5 ** (batch / half_life)."""
    return 0.5 ** (batch_size / half_life_images)
