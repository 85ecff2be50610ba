"""DCGAN-style convolutional generator and discriminator that adapt to channels and resolution.

Radford et al. 2016 (arXiv:1511.06434): transposed convolutions with BatchNorm + ReLU and a tanh output in the
generator; strided convolutions with LeakyReLU(0.2) in the discriminator, no norm on its first layer; weights
from N(0, 0.02). Channel widths follow the PyTorch DCGAN example (64 px: 512-256-128-64), capped at 8 x width.

A resolution is base * 2**k with base 4 (16, 32, 64, 128) or 7 (28): the generator starts at base x base and
doubles k times; the discriminator mirrors it and ends with a base x base convolution to one score per image.

Discriminators take a `norm`: `batch` (DCGAN), `layer` (per sample, for gradient penalties), `none`, or `spectral`:
no normalisation layer, and spectral normalisation (Miyato et al. 2018, "Spectral Normalization for GANs") on every
convolution, linear layer and embedding of D, the class embedding of a projection discriminator included (Miyato &
Koyama 2018; mimicry's SNConv2d / SNLinear / SNEmbedding): each weight is divided by its largest singular value,
estimated by one power iteration per forward pass in training. The iteration's vectors u, v are buffers, so they are
in the network's state_dict and a resumed trial continues them exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from bench.errors import BenchError


def split_resolution(resolution: int) -> tuple[int, int]:
    """resolution -> (base, number of doublings)."""
    for base in (4, 7):
        k, size = 0, base
        while size < resolution:
            size, k = size * 2, k + 1
        if size == resolution and k >= 1:
            return base, k
    raise BenchError(f"resolution {resolution} is not supported by convolutional nets; use 16, 28, 32, 64 or 128")


def _width_at(width: int, level: int) -> int:
    return width * min(2**level, 8)


def init_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions and linear layers, N(1, 0.02) for norm scales, zero biases (Radford et al.).
    A spectrally normalised layer's raw weight is drawn (its power-iteration vectors are then random with respect
    to it, as Miyato et al.'s own start)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            nn.init.normal_(raw_weight(m), 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def raw_weight(m: nn.Module) -> torch.Tensor:
    """The trained weight tensor: under spectral norm, the one before normalisation."""
    return m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight


def spectral_norm_all(module: nn.Module, embeddings: bool = True) -> nn.Module:
    """Spectral normalisation on every convolution, linear layer and (unless told not to) embedding of `module` not
    normalised yet."""
    kinds = (nn.Conv2d, nn.Linear, nn.Embedding) if embeddings else (nn.Conv2d, nn.Linear)
    for m in list(module.modules()):
        if isinstance(m, kinds) and not parametrize.is_parametrized(m, "weight"):
            spectral_norm(m)
    return module


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # per-sample, so it keeps the gradient penalty well defined (Gulrajani et al. 2017)
        return nn.GroupNorm(1, channels)
    if kind not in ("none", "spectral"):  # spectral: no layer; the weights are normalised (spectral_norm_all)
        raise ValueError(f"unknown discriminator norm '{kind}'")
    return nn.Identity()


class ConvGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int = 64, extra_input: int = 0):
        super().__init__()
        base, k = split_resolution(resolution)
        top = _width_at(width, k - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim + extra_input, top, base, 1, 0, bias=False),
            nn.BatchNorm2d(top), nn.ReLU(True)]
        for level in range(k - 1, 0, -1):
            c_in, c_out = _width_at(width, level), _width_at(width, level - 1)
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class ConvDiscriminator(nn.Module):
    """Outputs one raw score (logit / critic value) per image; losses add any sigmoid."""

    def __init__(self, channels: int, resolution: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        base, k = split_resolution(resolution)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for level in range(1, k):
            c_in, c_out = _width_at(width, level - 1), _width_at(width, level)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), _norm(norm, c_out), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(_width_at(width, k - 1), 1, base, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        if norm == "spectral":
            spectral_norm_all(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


# Conditioning (StudioGAN treats it as an axis of every loss): how the label enters G and D. -------------------
# Label paths keep PyTorch's default initialisation (embeddings N(0, 1)): DCGAN's N(0, 0.02) on an embedding makes
# the label ~50x weaker than z or the image, and a conditional GAN then learns to follow its labels only late.

class ConditionalGenerator(nn.Module):
    """G(z, y): a learned label embedding concatenated to z (Mirza & Osindero 2014; Odena et al. 2017)."""

    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int, n_classes: int,
                 embedding_dim: int, extra_input: int = 0):
        super().__init__()
        self.net = ConvGenerator(latent_dim, channels, resolution, width, extra_input=embedding_dim + extra_input)
        init_dcgan_weights(self.net)
        self.embed = nn.Embedding(n_classes, embedding_dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z.view(z.shape[0], -1), self.embed(labels)], dim=1))


class ConcatDiscriminator(nn.Module):
    """D(x, y): the label as an extra input channel, an embedding mapped to the image size by a linear layer
    (seed 000, section 4.4)."""

    def __init__(self, channels: int, resolution: int, width: int, n_classes: int, embedding_dim: int,
                 norm: str = "batch"):
        super().__init__()
        self.resolution = resolution
        self.net = ConvDiscriminator(channels + 1, resolution, width, norm=norm)
        init_dcgan_weights(self.net)
        self.embed = nn.Sequential(nn.Embedding(n_classes, embedding_dim),
                                   nn.Linear(embedding_dim, resolution * resolution))
        if norm == "spectral":
            spectral_norm_all(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        plane = self.embed(labels).view(-1, 1, self.resolution, self.resolution)
        return self.net(torch.cat([x, plane], dim=1))


class HeadedDiscriminator(nn.Module):
    """The DCGAN discriminator's body with its score head, plus an extra head on the same features: a class head
    (auxiliary classifier, Odena et al. 2017), InfoGAN's Q head (Chen et al. 2016) or a projection embedding
    (Miyato & Koyama 2018). `forward(x)` returns (scores, extra head's output, body features)."""

    def __init__(self, channels: int, resolution: int, width: int, norm: str, extra: nn.Module):
        super().__init__()
        self.net = ConvDiscriminator(channels, resolution, width, norm=norm)
        init_dcgan_weights(self.net)
        self.extra = extra
        if norm == "spectral":
            spectral_norm_all(self)

    @staticmethod
    def top_channels(resolution: int, width: int) -> int:
        return _width_at(width, split_resolution(resolution)[1] - 1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.net[:-1](x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.net.net[-1](features).view(-1), self.extra(features), features


def class_head(resolution: int, width: int, n_classes: int) -> nn.Module:
    """Class logits from the body's last features: a base x base convolution like the score head."""
    base, _ = split_resolution(resolution)
    head = nn.Sequential(nn.Conv2d(HeadedDiscriminator.top_channels(resolution, width), n_classes, base), nn.Flatten())
    init_dcgan_weights(head)
    return head


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <embed(y), sum-pooled phi(x)> (Miyato & Koyama 2018, "cGANs with Projection
    Discriminator"): the label enters as an inner product with the body's features, not as an input."""

    def __init__(self, channels: int, resolution: int, width: int, n_classes: int, norm: str):
        super().__init__()
        self.net = ConvDiscriminator(channels, resolution, width, norm=norm)
        init_dcgan_weights(self.net)
        self.embed = nn.Embedding(n_classes, HeadedDiscriminator.top_channels(resolution, width))
        nn.init.xavier_uniform_(self.embed.weight)  # as the authors' code (sngan_projection)
        if norm == "spectral":
            spectral_norm_all(self)  # the embedding too, as the authors' code (SNEmbedID)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.net.net[:-1](x)
        projection = (self.embed(labels) * features.sum(dim=(2, 3))).sum(dim=1)
        return self.net.net[-1](features).view(-1) + projection
