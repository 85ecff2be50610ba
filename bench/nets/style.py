"""A small StyleGAN generator and discriminator (Karras, Laine & Aila, "A Style-Based Generator Architecture for
GANs", CVPR 2019), written for bench: equalised learning rate everywhere, a mapping network, a learned 4x4 constant,
AdaIN and per-layer noise, one fixed resolution.

Generator: z -> (pixel norm) -> mapping MLP -> w; synthesis starts from a learned 4x4 constant and runs two layers
per resolution (4, 8, ..., R), each conv3x3 -> + noise x learned per-channel scale -> LeakyReLU(0.2) -> AdaIN(w_i);
resolutions double by bilinear upsampling; a 1x1 conv makes the image (linear, as StyleGAN). Each layer takes its own
w_i, which is what lets style mixing feed one w to the coarse layers and another to the fine ones.
Discriminator: the progressive GAN's mirror at one resolution: 1x1 from-RGB, per resolution conv3x3, conv3x3,
2x average-pool down, then minibatch standard deviation, conv3x3, a dense layer and the score.
Channels: `width` at full resolution, doubling per halving, at most 8 x width (as bench's DCGAN nets).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench import numerics
from bench.nets.conv import split_resolution


def _channels(width: int, level: int) -> int:
    return width * min(2**level, 8)


class EqualizedLinear(nn.Module):
    """Weights stored N(0, 1 / lr_mult) and scaled at run time by lr_mult / sqrt(fan_in) (Karras et al. 2018):
    every layer learns at the same speed under Adam; lr_mult < 1 slows a layer down (the mapping network: 0.01)."""

    def __init__(self, fan_in: int, fan_out: int, lr_mult: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mult)
        self.bias = nn.Parameter(torch.full((fan_out,), float(bias_init)) / lr_mult)
        self.weight_gain, self.bias_gain = lr_mult / math.sqrt(fan_in), lr_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)


class EqualizedConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.gain, self.padding = 1 / math.sqrt(c_in * kernel * kernel), kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)


class MappingNetwork(nn.Module):
    """z -> w through `layers` equalised dense layers at learning-rate multiplier `lr_mult`; tracks the mean w
    (for truncation) as a buffer, updated while training."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mult: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*(nn.Sequential(EqualizedLinear(a, b, lr_mult), nn.LeakyReLU(0.2))
                                   for a, b in zip(dims[:-1], dims[1:], strict=True)))
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, track: bool = False) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # pixel norm of the input
        w = self.net(z)
        if track:
            self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return w


class StyleLayer(nn.Module):
    """conv3x3 (optionally after 2x upsampling) -> + noise x per-channel scale -> LeakyReLU -> AdaIN(w)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, upsample: bool, conv: bool = True):
        super().__init__()
        self.upsample = upsample
        self.conv = EqualizedConv2d(c_in, c_out, 3) if conv else None
        self.noise_strength = nn.Parameter(torch.zeros(c_out))  # starts at 0: noise is learned in, not forced
        self.style = EqualizedLinear(w_dim, 2 * c_out)
        with torch.no_grad():  # AdaIN's scale starts at 1, its bias at 0
            self.style.bias[:c_out] = 1.0

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if self.conv is not None:
            x = self.conv(x)
        x = x + noise * self.noise_strength.view(1, -1, 1, 1)
        x = F.leaky_relu(x, 0.2)
        scale, bias = self.style(w).chunk(2, dim=1)
        x = F.instance_norm(x)
        return x * scale[:, :, None, None] + bias[:, :, None, None]


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, channels: int, resolution: int, width: int):
        super().__init__()
        base, k = split_resolution(resolution)
        if base != 4:
            raise ValueError(f"the StyleGAN generator starts at 4x4 and doubles: use 16, 32, 64 or 128 px, "
                             f"not {resolution}")
        self.sizes = [4 * 2**i for i in range(k + 1)]
        top = _channels(width, k)
        self.const = nn.Parameter(torch.ones(1, top, 4, 4))
        layers: list[StyleLayer] = [StyleLayer(top, top, w_dim, upsample=False, conv=False),
                                    StyleLayer(top, top, w_dim, upsample=False)]
        for level in range(k - 1, -1, -1):
            c_in, c_out = _channels(width, level + 1), _channels(width, level)
            layers += [StyleLayer(c_in, c_out, w_dim, upsample=True), StyleLayer(c_out, c_out, w_dim, upsample=False)]
        self.layers = nn.ModuleList(layers)
        self.to_rgb = EqualizedConv2d(_channels(width, 0), channels, 1)

    @property
    def num_ws(self) -> int:
        return len(self.layers)

    def noise_size(self) -> int:
        """Noise values per image: one H x W map per layer."""
        return sum(size * size for size in self.sizes for _ in range(2))

    def forward(self, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """ws: (N, num_ws, w_dim), one w per layer; noise: (N, noise_size()) standard normal."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        offset = 0
        for i, layer in enumerate(self.layers):
            size = self.sizes[i // 2]
            layer_noise = noise[:, offset:offset + size * size].view(-1, 1, size, size)
            offset += size * size
            x = layer(x, ws[:, i], layer_noise)
        return self.to_rgb(x)


class StyleGenerator(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, mapping_layers: int, mapping_lr_mult: float, channels: int,
                 resolution: int, width: int):
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mult)
        self.synthesis = SynthesisNetwork(w_dim, channels, resolution, width)

    def forward(self, z: torch.Tensor, noise: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        w = self.mapping(z)
        if truncation != 1.0:
            w = self.mapping.w_avg.lerp(w, truncation)  # w_avg + psi (w - w_avg)
        return self.synthesis(w.unsqueeze(1).expand(-1, self.synthesis.num_ws, -1), noise)


class StyleDiscriminator(nn.Module):
    def __init__(self, channels: int, resolution: int, width: int, mbstd_group: int = 4):
        super().__init__()
        base, k = split_resolution(resolution)
        self.mbstd_group = mbstd_group
        self.from_rgb = EqualizedConv2d(channels, _channels(width, 0), 1)
        blocks = []
        for level in range(k):
            c_in, c_out = _channels(width, level), _channels(width, level + 1)
            blocks.append(nn.Sequential(EqualizedConv2d(c_in, c_in, 3), nn.LeakyReLU(0.2),
                                        EqualizedConv2d(c_in, c_out, 3), nn.LeakyReLU(0.2), nn.AvgPool2d(2)))
        self.blocks = nn.Sequential(*blocks)
        top = _channels(width, k)
        self.conv = EqualizedConv2d(top + 1, top, 3)
        self.dense = EqualizedLinear(top * base * base, top)
        self.out = EqualizedLinear(top, 1)

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """One extra channel: the std over groups of samples, averaged (Karras et al. 2018), against collapse."""
        n, c, h, w = x.shape
        group = min(self.mbstd_group, n)
        if n % group:
            group = 1 if n % 2 else 2
        y = x.view(group, -1, c, h, w)
        y = numerics.sqrt((y - y.mean(dim=0)).pow(2).mean(dim=0).add(1e-8))  # not Tensor.sqrt: MKL's, per CPU
        y = y.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.from_rgb(x), 0.2)
        x = self.blocks(x)
        x = F.leaky_relu(self.conv(self.minibatch_stddev(x)), 0.2)
        x = F.leaky_relu(self.dense(x.flatten(1)), 0.2)
        return self.out(x).view(-1)
