"""DiffAugment: Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020.

The same differentiable transform T is applied to every input of the discriminator, real and fake, in the
discriminator step and in the generator step (the generator's gradient flows through T), so D never sees an
unaugmented image and G is not pushed to produce augmented ones. Each image of a batch draws its own parameters.

The policy is a comma-separated list of the official ops (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py;
StudioGAN src/utils/diffaug.py uses the same ops and default policy), on images in [-1, 1]:
- `color`: brightness + U(-0.5, 0.5), then saturation x U(0, 2) about the per-pixel channel mean, then contrast
  x U(0.5, 1.5) about the image mean;
- `translation`: an integer shift of up to 1/8 of each side in each direction, the uncovered pixels 0;
- `cutout`: a square of half each side (its centre anywhere in the image, clipped at the border) set to 0.
Default `color,translation,cutout`, the authors' advice for a few hundred to a few thousand images (their
BigGAN-CIFAR scripts use `translation,cutout` on larger sets). The draws come from the step's generator, so a trial
with DiffAugment is as reproducible and resumable as one without.
"""

from __future__ import annotations

import torch

OPS = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); an unknown op is a ValueError naming the known ones."""
    ops = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in ops if p not in OPS]
    if unknown or not ops:
        raise ValueError(f"diffaugment policy '{text}': unknown op '{unknown[0] if unknown else ''}'; use a "
                         f"comma-separated subset of {','.join(OPS)}")
    return ops


def _uniform(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One U(0, 1) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=rng, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    x = x + (_uniform(x, rng) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, rng) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, rng) + 0.5) + mean


def _shift_matrices(n: int, size: int, limit: int, rng: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    """(n, 1, size, size) 0/1 matrices M with (M @ v)[i] = v[i - shift], 0 where i - shift falls outside."""
    shift = torch.randint(-limit, limit + 1, (n, 1, 1, 1), generator=rng, device=x.device)
    i = torch.arange(size, device=x.device)
    return (i.view(1, 1, size, 1) - shift == i.view(1, 1, 1, size)).to(x.dtype)


def translation(x: torch.Tensor, rng: torch.Generator, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """A product with 0/1 shift matrices: every output pixel is one input pixel times 1 plus zeros, so forward and
    backward are exact whatever the matrix kernel (the same bits on every CPU and GPU, no scatter in the backward)."""
    n, _, h, w = x.shape
    rows = _shift_matrices(n, h, int(h * ratio + 0.5), rng, x)
    cols = _shift_matrices(n, w, int(w * ratio + 0.5), rng, x)
    return rows @ x @ cols.transpose(2, 3)


def cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the official draw: a centre in [0, side + (1 - size % 2)), the square [centre - size // 2, + size) clipped
    cy = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=rng, device=x.device)
    cx = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=rng, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - size_h // 2, cx - size_w // 2
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~hole).unsqueeze(1).to(x.dtype)


FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def diffaugment(x: torch.Tensor, ops: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    """T(x): the policy's ops in order, each with fresh per-image parameters drawn from `rng`."""
    for op in ops:
        x = FUNCTIONS[op](x, rng)
    return x.contiguous()

