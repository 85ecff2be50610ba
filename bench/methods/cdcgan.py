"""Conditional DCGAN: Mirza & Osindero 2014 ("Conditional GANs") on DCGAN networks, as in the LEGO study (seed 000).

The label enters the generator as a learned embedding concatenated to z, and the discriminator as an extra input
channel: an embedding scaled by a linear layer to the image size (seed 000 section 4.4's "best practice").
Loss and optimizers are DCGAN's.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from bench.methods import Hyper, register_method
from bench.methods.dcgan import DCGAN
from bench.nets.conv import ConvDiscriminator, ConvGenerator, init_dcgan_weights


class CDCGANHyper(Hyper):
    label_embedding_dim: int = Field(50, gt=0)


class ConditionalGenerator(nn.Module):
    def __init__(self, latent_dim, channels, resolution, width, n_classes, embedding_dim):
        super().__init__()
        self.embed = nn.Embedding(n_classes, embedding_dim)
        self.net = ConvGenerator(latent_dim, channels, resolution, width, extra_input=embedding_dim)

    def forward(self, z, labels):
        return self.net(torch.cat([z.view(z.shape[0], -1), self.embed(labels)], dim=1))


class ConditionalDiscriminator(nn.Module):
    def __init__(self, channels, resolution, width, n_classes, embedding_dim):
        super().__init__()
        self.resolution = resolution
        self.embed = nn.Sequential(nn.Embedding(n_classes, embedding_dim),
                                   nn.Linear(embedding_dim, resolution * resolution))
        self.net = ConvDiscriminator(channels + 1, resolution, width, norm="batch")

    def forward(self, x, labels):
        label_plane = self.embed(labels).view(-1, 1, self.resolution, self.resolution)
        return self.net(torch.cat([x, label_plane], dim=1))


@register_method
class CDCGAN(DCGAN):
    name = "cdcgan"
    description = "Mirza & Osindero 2014 on DCGAN nets: label embedding into G's input and D's extra channel"
    Hyper = CDCGANHyper
    conditional = True

    def build_generator(self):
        g = ConditionalGenerator(self.hp.latent_dim, self.channels, self.resolution, self.hp.width,
                                 self.n_classes, self.hp.label_embedding_dim)
        init_dcgan_weights(g)
        return g

    def build_discriminator(self):
        d = ConditionalDiscriminator(self.channels, self.resolution, self.hp.width, self.n_classes,
                                     self.hp.label_embedding_dim)
        init_dcgan_weights(d)
        return d

    def generate(self, generator, z, labels):
        return generator(z, labels)

    def discriminate(self, discriminator, x, labels):
        return discriminator(x, labels)
