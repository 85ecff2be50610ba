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

Conditional (`n_classes` > 0), as the projection cGAN (Miyato & Koyama 2018, the authors' snresnet_32.py and
resnet_32.py; mimicry's cgan_pd_32) and BigGAN (Brock et al. 2019; BigGAN-PyTorch's BigGAN.py, StudioGAN's
big_resnet.py): every BatchNorm of G's up-blocks is conditional, its gain (1 + a) and bias b linear maps of a
condition vector: the label's row of a class embedding shared by all blocks, and with `hierarchical` also a chunk of
z (z is cut into one chunk per block plus the first, which feeds the linear layer); D adds the projection
<embed(y), sum-pooled features> to its score. G's final BatchNorm stays unconditional, as in both codes.
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


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without an affine of its own, then x * (1 + a(c)) + b(c) with a, b linear maps of a condition
    vector c (BigGAN's ccbn, Xavier-initialised as the rest: under G's spectral norm a zero map could not be
    normalised)."""

    def __init__(self, features: int, condition_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(features, affine=False)
        self.gain = _xavier(nn.Linear(condition_dim, features), 1.0)
        self.bias = _xavier(nn.Linear(condition_dim, features), 1.0)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gain(condition))[:, :, None, None] + self.bias(condition)[:, :, None, None]


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, condition_dim: int = 0):
        super().__init__()
        self.conditional = condition_dim > 0
        norm = (lambda c: ConditionalBatchNorm2d(c, condition_dim)) if self.conditional else nn.BatchNorm2d
        self.bn1, self.conv1 = norm(cin), _conv(cin, cout, 3)
        self.bn2, self.conv2 = norm(cout), _conv(cout, cout, 3)
        self.shortcut = _conv(cin, cout, 1, gain=1.0)

    @staticmethod
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def norm(self, bn: nn.Module, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return bn(x, condition) if self.conditional else bn(x)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(self.up(F.relu(self.norm(self.bn1, x, condition))))
        h = self.conv2(F.relu(self.norm(self.bn2, h, condition)))
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
    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int = 128, n_classes: int = 0,
                 embedding_dim: int = 128, hierarchical: bool = False):
        super().__init__()
        base, doublings = split_resolution(resolution)
        self.base, self.features, self.n_classes = base, 2 * width, n_classes
        # hierarchical: z in chunks, the first to the linear layer, one to each block's condition; as near equal as
        # the sizes allow (the first ones one larger), where the reference codes cut z to a multiple instead
        slots = doublings + 1
        self.chunks = [latent_dim // slots + (i < latent_dim % slots) for i in range(slots)] if hierarchical else []
        if hierarchical and min(self.chunks) < 1:
            raise ValueError(f"hierarchical z: latent_dim {latent_dim} is smaller than G's {slots} chunks")
        shared = embedding_dim if n_classes else 0
        self.embed = nn.Embedding(n_classes, embedding_dim) if n_classes else None  # shared by every block
        self.linear = _xavier(nn.Linear(self.chunks[0] if hierarchical else latent_dim, base * base * self.features),
                              1.0)
        self.blocks = nn.ModuleList(UpBlock(self.features, self.features, shared + (self.chunks[i + 1] if hierarchical
                                                                                    else 0)) for i in range(doublings))
        self.bn = nn.BatchNorm2d(self.features)
        self.out = _conv(self.features, channels, 3, gain=1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        chunks = z.split(self.chunks, dim=1) if self.chunks else (z,) * (len(self.blocks) + 1)
        shared = self.embed(labels) if self.embed is not None else None
        h = self.linear(chunks[0]).view(z.shape[0], self.features, self.base, self.base)
        for block, chunk in zip(self.blocks, chunks[1:], strict=True):
            parts = ([shared] if shared is not None else []) + ([chunk] if self.chunks else [])
            h = block(h, torch.cat(parts, dim=1) if parts else None)
        return torch.tanh(self.out(F.relu(self.bn(h))))


class ResNetDiscriminator(nn.Module):
    def __init__(self, channels: int, resolution: int, width: int = 128, n_classes: int = 0):
        super().__init__()
        _, doublings = split_resolution(resolution)
        blocks = [DownBlock(channels, width, downsample=True, optimised=True)]
        blocks += [DownBlock(width, width, downsample=True) for _ in range(max(0, doublings - 2))]
        blocks += [DownBlock(width, width, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = _xavier(nn.Linear(width, 1), 1.0)
        self.embed = nn.Embedding(n_classes, width) if n_classes else None  # the projection
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)
        spectral_norm_all(self)  # the embedding too (the authors' SNEmbedID)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        score = self.linear(h).view(-1)
        return score if self.embed is None else score + (self.embed(labels) * h).sum(dim=1)
