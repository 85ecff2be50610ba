"""Consistency regularisation of the discriminator: Zhao et al., "Improved Consistency Regularization for GANs",
AAAI 2021 (bCR and zCR; CR itself: Zhang et al., ICLR 2020).

- bCR (balanced): `bcr` x (||D(x) - D(T(x))||^2 + ||D(G(z)) - D(T(G(z)))||^2), on real AND fake images (CR on reals
  alone leaks T's artefacts into G, the reason bCR exists: the paper's Sec. 4.1). T is StudioGAN's
  (src/utils/cr.py): a random horizontal flip and an integer translation of up to 1/8 of each side (zero fill).
  Published weight 10 for both terms (StudioGAN's BigGAN-CR/ICR configs, the paper).
- zCR (latent): D term `zcr_d` x ||D(G(z)) - D(G(z + dz))||^2 and G term -`zcr_g` x ||G(z) - G(z + dz)||^2 with
  dz ~ N(0, `zcr_sigma`^2): D should not care about a small move in z, G should. StudioGAN's ICR config: d 20,
  g 0.5, sigma 0.05 (the paper: d 5, g 0.5, sigma 0.03).
The squared norms are means over the batch of the squared difference of D's raw outputs (of G's pixels for zCR's G
term, averaged over pixels as StudioGAN does).
"""

from __future__ import annotations

import torch

from bench.methods.diffaugment import translation


def flip_translate(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """bCR's T: each image flipped left-right with probability 1/2, then translated by up to 1/8 of each side."""
    flip = torch.rand(x.shape[0], 1, 1, 1, generator=rng, device=x.device) < 0.5
    x = torch.where(flip, x.flip(3), x)
    return translation(x, rng)


def squared_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).mean()
