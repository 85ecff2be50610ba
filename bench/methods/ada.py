"""ADA, adaptive discriminator augmentation: Karras et al., "Training Generative Adversarial Networks with Limited
Data", NeurIPS 2020 (NVlabs/stylegan2-ada-pytorch, training/augment.py and training/training_loop.py).

Every input of D, real and fake, in the D and the G step, goes through the same pipeline; each of its ops is applied
to each image with probability p. p starts at 0 and follows the overfitting heuristic r_t = E[sign(D(x) - c)] over
D's outputs on (augmented) real images, c the centre of the objective's real and fake targets (0 for bce and hinge
logits, (a + b) / 2 for ls): after every `ada_interval` discriminator batches, p += sign(r_t - `ada_target`) x (real
images seen since) / (`ada_kimg` x 1000), clamped to [0, 1]. The step is counted in real images shown to D, not in
generator steps (StudioGAN's src/worker.py adjusts every `ada_interval` G steps, so with 5 critic steps its p moves
5x faster per image than the paper's): a 5-critic-step method adapts at the same image rate as a 1-step one.
Defaults: the paper's target 0.6, interval 4, 500 kimg, p from 0 (training_loop.py `ada_target`, `ada_interval`,
`ada_kimg`; train.py). A Wasserstein critic's outputs have no fixed centre, so the heuristic means nothing there:
`augment: ada` with `objective: wgan` is refused.

The pipeline is `bgc` (augment.py's `augpipe_specs['bgc']`), with its strengths:
- geometric, composed into one affine map per image and sampled once (bilinear, reflection padding): x-flip,
  90-degree rotations, integer translation (up to 0.125 of the side), isotropic scaling (lognormal, std 0.2 in
  log2), arbitrary rotation (uniform; applied before and after the anisotropic scaling, each with probability
  1 - sqrt(1 - p) as in the official code), anisotropic scaling (0.2), fractional translation (std 0.125);
- colour, composed into one 4x4 matrix on (r, g, b, 1): brightness (std 0.2), contrast (lognormal 0.5), luma flip,
  hue rotation (uniform) and saturation (lognormal 1) about the luma axis; one-channel images take the matrix's
  mean gain and offset, as the official code does.
Unlike the official code the geometric map is sampled without its wavelet low-pass filters (upfirdn2d): at 16-32 px
they are most of its cost, and their absence adds aliasing of the order of one pixel, which both real and fake
inputs share. An image no op was drawn for passes through unchanged, to the bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TARGET, INTERVAL, KIMG = 0.6, 4, 500
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0


def _eye(n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(size, device=like.device, dtype=torch.float32).repeat(n, 1, 1)


def _uniform(n: int, rng, device) -> torch.Tensor:
    return torch.rand(n, generator=rng, device=device)


def _normal(n: int, rng, device) -> torch.Tensor:
    return torch.randn(n, generator=rng, device=device)


def _chosen(p: float, n: int, rng, device) -> torch.Tensor:
    """Per image: is the op applied (probability p)?"""
    return _uniform(n, rng, device) < p


def _affine(a, b, tx, c, d, ty) -> torch.Tensor:
    """(n, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (n,) tensors."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1), torch.stack([zero, zero, one], 1)], 1)


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(theta)
    return _affine(theta.cos(), -theta.sin(), zero, theta.sin(), theta.cos(), zero)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(sx)
    return _affine(sx, zero, zero, zero, sy, zero)


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine(one, zero, tx, zero, one, ty)


def _gate(matrix: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """The op's matrix where it was drawn, the identity elsewhere."""
    return torch.where(chosen[:, None, None], matrix, torch.eye(matrix.shape[-1], device=matrix.device))


def geometric(x: torch.Tensor, p: float, rng: torch.Generator) -> torch.Tensor:
    """The bgc pipeline's geometric ops; coordinates in [-1, 1] (the side is 2), matrices map output to input."""
    n, device = x.shape[0], x.device
    g = _eye(n, 3, x)
    drawn = torch.zeros(n, dtype=torch.bool, device=device)

    def apply(matrix: torch.Tensor, chosen: torch.Tensor) -> None:
        nonlocal g, drawn
        g = g @ _gate(matrix, chosen)
        drawn = drawn | chosen

    flip = torch.floor(_uniform(n, rng, device) * 2)
    apply(_scale(1 - 2 * flip, torch.ones_like(flip)), _chosen(p, n, rng, device) & (flip > 0))
    quarter = torch.floor(_uniform(n, rng, device) * 4)
    apply(_rotation(-math.pi / 2 * quarter), _chosen(p, n, rng, device) & (quarter > 0))
    h, w = x.shape[2], x.shape[3]
    t = (torch.rand(n, 2, generator=rng, device=device) * 2 - 1) * XINT_MAX
    # whole pixels: a pixel is 2 / side in these coordinates
    apply(_translation(torch.round(t[:, 0] * w) * 2 / w, torch.round(t[:, 1] * h) * 2 / h), _chosen(p, n, rng, device))
    s = torch.exp2(_normal(n, rng, device) * SCALE_STD)
    apply(_scale(s, s), _chosen(p, n, rng, device))
    p_rot = 1 - math.sqrt(max(0.0, 1 - p))  # rotated twice, before and after the anisotropic scaling
    theta = (_uniform(n, rng, device) * 2 - 1) * math.pi * ROTATE_MAX
    apply(_rotation(-theta), _chosen(p_rot, n, rng, device))
    s = torch.exp2(_normal(n, rng, device) * ANISO_STD)
    apply(_scale(s, 1 / s), _chosen(p, n, rng, device))
    theta = (_uniform(n, rng, device) * 2 - 1) * math.pi * ROTATE_MAX
    apply(_rotation(-theta), _chosen(p_rot, n, rng, device))
    t = torch.randn(n, 2, generator=rng, device=device) * XFRAC_STD
    apply(_translation(t[:, 0] * 2, t[:, 1] * 2), _chosen(p, n, rng, device))
    if not bool(drawn.any()):
        return x
    grid = F.affine_grid(g[:, :2, :].to(x.dtype), list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return torch.where(drawn[:, None, None, None], warped, x)


LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)


def _translate3(b: torch.Tensor) -> torch.Tensor:
    m = torch.eye(4, device=b.device).repeat(len(b), 1, 1)
    m[:, :3, 3] = b[:, None]
    return m


def _scale3(c: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(torch.stack([c, c, c, torch.ones_like(c)], 1))


def _rotate3(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotation by theta about a unit axis (Rodrigues), as 4x4 matrices."""
    x, y, z = axis[0], axis[1], axis[2]
    c, s = theta.cos(), theta.sin()
    k = 1 - c
    rows = [[c + x * x * k, x * y * k - z * s, x * z * k + y * s],
            [y * x * k + z * s, c + y * y * k, y * z * k - x * s],
            [z * x * k - y * s, z * y * k + x * s, c + z * z * k]]
    m = torch.eye(4, device=theta.device).repeat(len(theta), 1, 1)
    m[:, :3, :3] = torch.stack([torch.stack(r, 1) for r in rows], 1)
    return m


def color(x: torch.Tensor, p: float, rng: torch.Generator) -> torch.Tensor:
    """The bgc pipeline's colour ops as one 4x4 matrix per image."""
    n, device = x.shape[0], x.device
    v = LUMA.to(device)
    outer = torch.outer(v, v)
    eye = torch.eye(4, device=device)
    m = _eye(n, 4, x)
    drawn = torch.zeros(n, dtype=torch.bool, device=device)

    def apply(matrix: torch.Tensor, chosen: torch.Tensor) -> None:
        nonlocal m, drawn
        m = _gate(matrix, chosen) @ m
        drawn = drawn | chosen

    apply(_translate3(_normal(n, rng, device) * BRIGHTNESS_STD), _chosen(p, n, rng, device))
    apply(_scale3(torch.exp2(_normal(n, rng, device) * CONTRAST_STD)), _chosen(p, n, rng, device))
    flip = torch.floor(_uniform(n, rng, device) * 2)
    apply((eye - 2 * outer).expand(n, 4, 4), _chosen(p, n, rng, device) & (flip > 0))
    theta = (_uniform(n, rng, device) * 2 - 1) * math.pi * HUE_MAX
    apply(_rotate3(v, theta), _chosen(p, n, rng, device))
    s = torch.exp2(_normal(n, rng, device) * SATURATION_STD)
    apply(outer + (eye - outer) * s[:, None, None], _chosen(p, n, rng, device))
    if not bool(drawn.any()):
        return x
    m = m.to(x.dtype)
    channels = x.shape[1]
    if channels == 3:
        out = (m[:, :3, :3] @ x.flatten(2) + m[:, :3, 3:]).view_as(x)
    else:  # one channel: the mean gain and offset of the three colour rows
        rows = m[:, :3, :].mean(dim=1)
        out = x * rows[:, :3].sum(dim=1)[:, None, None, None] + rows[:, 3][:, None, None, None]
    return torch.where(drawn[:, None, None, None], out, x)


class AdaptiveAugment:
    """p, the heuristic's running sums, and the pipeline at the current p."""

    def __init__(self, target: float = TARGET, interval: int = INTERVAL, kimg: float = KIMG, centre: float = 0.0):
        self.target, self.interval, self.kimg, self.centre = target, interval, kimg, centre
        self.p = 0.0
        self.rt = float("nan")  # the last r_t
        self.images = 0  # real images shown to D, in all
        self._signs: torch.Tensor | None = None  # sum of sign(D(x) - c) since the last adjustment
        self._seen = 0  # real images since the last adjustment
        self._batches = 0

    def __call__(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        if self.p <= 0:  # nothing to draw: D sees the batch itself, and the generator is not advanced
            return x
        return color(geometric(x, self.p, rng), self.p, rng)

    def observe(self, real_scores: torch.Tensor) -> None:
        """D's outputs on one batch of augmented real images; every `interval` batches, p moves."""
        signs = torch.sign(real_scores.detach().float() - self.centre).sum()
        self._signs = signs if self._signs is None else self._signs + signs
        self._seen += real_scores.shape[0]
        self.images += real_scores.shape[0]
        self._batches += 1
        if self._batches % self.interval == 0:
            self.rt = float(self._signs) / self._seen  # one host sync per `interval` D steps
            step = math.copysign(1.0, self.rt - self.target) if self.rt != self.target else 0.0
            self.p = min(1.0, max(0.0, self.p + step * self._seen / (self.kimg * 1000)))
            self._signs, self._seen = None, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "rt": self.rt, "images": self.images, "signs": self._signs, "seen": self._seen,
                "batches": self._batches}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.rt, self.images = state["p"], state["rt"], state["images"]
        self._signs, self._seen, self._batches = state["signs"], state["seen"], state["batches"]
