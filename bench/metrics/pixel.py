"""Metrics of paired translation against the ground truth, on images scaled to [0, 1]:
- L1: the mean absolute difference;
- PSNR: 10 log10(1 / MSE) per image, averaged over images (an identical image is +inf: left out and counted);
- SSIM: Wang et al. 2004 with the usual 11x11 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, per channel,
  averaged over the valid window positions, channels and images (skimage's `gaussian_weights=True` setting).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor) -> torch.Tensor:
    return (x.double() + 1) / 2  # [-1, 1] -> [0, 1]


def l1(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((_unit(x) - _unit(y)).abs().mean())


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = (_unit(x) - _unit(y)).pow(2).flatten(1).mean(dim=1)
    finite = mse[mse > 0]
    return float((10 * torch.log10(1 / finite)).mean()) if len(finite) else math.inf


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM of two (N, C, H, W) batches in [-1, 1]; the window shrinks to the image for images below 11 px."""
    x, y = _unit(x), _unit(y)
    n, c, h, w = x.shape
    size = min(11, h, w)
    size -= 1 - size % 2  # an odd window, centred
    window = _window(size).to(x.device).expand(c, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())
