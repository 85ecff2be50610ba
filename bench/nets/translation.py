"""Networks of image-to-image translation, after Zhu et al. 2017 (CycleGAN) and Isola et al. 2017 (Pix2Pix).

- ResnetGenerator: c7s1-w, d2w, d4w, n residual blocks at 4w, u2w, uw, c7s1-out (Johnson et al. 2016's layout as
  CycleGAN uses it): reflection padding, instance norm, ReLU, tanh. Resolutions divisible by 4.
- UnetGenerator: an encoder-decoder with skip connections between mirrored layers, down to 1x1 (Pix2Pix):
  4x4 stride-2 convolutions, batch norm, LeakyReLU 0.2 down, ReLU up, dropout 0.5 in the three innermost decoder
  layers at training and at test time (the generator's only noise).
- PatchDiscriminator: the PatchGAN, a score per patch: 4x4 convolutions, `layers` of them with stride 2, then two
  with stride 1; with 3 layers each score sees 70x70 pixels. Small images get fewer layers (16 px: 2; 32 px and up:
  3) so the score map stays at least 2x2.
Weights N(0, 0.02) as both papers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def init_normal(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, c_in: int, c_out: int, width: int = 64, blocks: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c_in, width, 7), nn.InstanceNorm2d(width),
                                   nn.ReLU(True)]
        for k in (1, 2):
            layers += [nn.Conv2d(width * 2 ** (k - 1), width * 2**k, 3, 2, 1), nn.InstanceNorm2d(width * 2**k),
                       nn.ReLU(True)]
        layers += [ResidualBlock(width * 4) for _ in range(blocks)]
        for k in (2, 1):
            layers += [nn.ConvTranspose2d(width * 2**k, width * 2 ** (k - 1), 3, 2, 1, output_padding=1),
                       nn.InstanceNorm2d(width * 2 ** (k - 1)), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, c_out, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UnetGenerator(nn.Module):
    def __init__(self, c_in: int, c_out: int, resolution: int, width: int = 64, dropout: float = 0.5):
        super().__init__()
        depth = int(math.log2(resolution))
        if 2**depth != resolution:
            raise ValueError(f"the U-Net halves down to 1x1: resolution must be a power of 2, not {resolution}")
        widths = [width * min(2**i, 8) for i in range(depth)]
        self.dropout = dropout
        self.down = nn.ModuleList()
        for i, w in enumerate(widths):
            norm = nn.BatchNorm2d(w) if 0 < i < depth - 1 else nn.Identity()  # none on the first and innermost
            self.down.append(nn.Sequential(nn.Conv2d(c_in if i == 0 else widths[i - 1], w, 4, 2, 1), norm))
        self.up = nn.ModuleList()
        for i in range(depth - 1, -1, -1):
            c_from = widths[i] if i == depth - 1 else 2 * widths[i]  # skip connections double the input
            c_to = c_out if i == 0 else widths[i - 1]
            tail = nn.Tanh() if i == 0 else nn.BatchNorm2d(c_to)
            self.up.append(nn.Sequential(nn.ConvTranspose2d(c_from, c_to, 4, 2, 1), tail))
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, layer in enumerate(self.down):
            x = layer(x if i == 0 else F.leaky_relu(x, 0.2))
            skips.append(x)
        x = skips.pop()
        for i, layer in enumerate(self.up):
            if i > 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = layer(F.relu(x))
            if 0 < i + 1 < len(self.up) and i < 3 and self.dropout:  # the three innermost decoder layers
                x = F.dropout(x, self.dropout, training=True)  # noise at test time too, as Pix2Pix
        return x


def patch_layers(resolution: int) -> int:
    """Stride-2 layers of the PatchGAN: 3 (70x70 patches) where the image allows, fewer for small images."""
    return max(1, min(3, int(math.log2(resolution / 4))))


class PatchDiscriminator(nn.Module):
    def __init__(self, c_in: int, resolution: int, width: int = 64, layers: int | None = None,
                 norm: str = "instance"):
        super().__init__()
        layers = layers or patch_layers(resolution)
        make_norm = (lambda c: nn.InstanceNorm2d(c)) if norm == "instance" else (lambda c: nn.BatchNorm2d(c))
        blocks: list[nn.Module] = [nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        channels = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks += [nn.Conv2d(channels, out, 4, stride, 1), make_norm(out), nn.LeakyReLU(0.2, True)]
            channels = out
        blocks.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
