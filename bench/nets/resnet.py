"""ResNet generator and discriminator of the 32 px SNGAN baseline (Miyato et al. 2018, appendix; the networks of
mimicry's `sngan_32` and StudioGAN's CIFAR-10 ResNets, torch_mimicry/nets/sngan/sngan_32.py and modules/resblocks.py).

Generator: z -> linear to base x base x 2w -> one up-block per doubling (BN, ReLU, 2x bilinear upsampling, 3x3
conv, BN, ReLU, 3x3 conv; shortcut: upsampling and a 1x1 conv) -> BN, ReLU, 3x3 conv, tanh. At 32 px: 4x4 and three
up-blocks of 256 channels for width 128 (mimicry's ngf 256, ndf 128).
Discriminator, spectral norm on every layer: an optimised first block (3x3 conv, ReLU, 3x3 conv, 2x2 average pool;
shortcut: pool, 1x1 conv), down-blocks (ReLU, 3x3 conv, ReLU, 3x3 conv, pool; shortcut 1x1 conv and pool) until 8x8,
two blocks without downsampling, ReLU, global sum pooling and a linear layer to one score. At 32 px: the optimised
block and three blocks of w channels, mimicry's layout. Resolutions: 16, 28, 32, 64, 128 (bench.nets.conv's bases).
Initialisation as mimicry's: Xavier uniform, gain sqrt(2) in the residual branches, 1 in shortcuts and linear layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.nets.conv import spectral_norm_all, split_resolution


def _xavier(module: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(module.weight, gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def _conv(cin: int, cout: int, kernel: int, gain: float = math.sqrt(2)) -> nn.Conv2d:
    return _xavier(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), gain)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv(cin, cout, 3)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), _conv(cout, cout, 3)
        self.shortcut = _conv(cin, cout, 1, gain=1.0)

    @staticmethod
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.up(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(self.up(x))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, optimised: bool = False):
        super().__init__()
        self.conv1, self.conv2 = _conv(cin, cout, 3), _conv(cout, cout, 3)
        self.downsample, self.optimised = downsample, optimised
        self.shortcut = _conv(cin, cout, 1, gain=1.0) if (downsample or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.optimised else F.relu(x))  # the first block sees the image, not its ReLU
        h = self.conv2(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.optimised:  # pool first, then the 1x1 conv (mimicry's DBlockOptimized)
            return h + self.shortcut(F.avg_pool2d(x, 2))
        shortcut = self.shortcut(x)
        return h + (F.avg_pool2d(shortcut, 2) if self.downsample else shortcut)


class ResNetGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int = 128):
        super().__init__()
        base, doublings = split_resolution(resolution)
        self.base, self.features = base, 2 * width
        self.linear = _xavier(nn.Linear(latent_dim, base * base * self.features), 1.0)
        self.blocks = nn.Sequential(*(UpBlock(self.features, self.features) for _ in range(doublings)))
        self.bn = nn.BatchNorm2d(self.features)
        self.out = _conv(self.features, channels, 3, gain=1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], self.features, self.base, self.base)
        return torch.tanh(self.out(F.relu(self.bn(self.blocks(h)))))


class ResNetDiscriminator(nn.Module):
    def __init__(self, channels: int, resolution: int, width: int = 128):
        super().__init__()
        _, doublings = split_resolution(resolution)
        blocks = [DownBlock(channels, width, downsample=True, optimised=True)]
        blocks += [DownBlock(width, width, downsample=True) for _ in range(max(0, doublings - 2))]
        blocks += [DownBlock(width, width, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = _xavier(nn.Linear(width, 1), 1.0)
        spectral_norm_all(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.linear(h).view(-1)
