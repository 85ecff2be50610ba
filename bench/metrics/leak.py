"""Augmentation leaking into samples: does the generator reproduce what the discriminator's augmentation does to its
inputs? (data-efficient-gans#84: cutout squares in CIFAR-10 samples; Karras et al. 2020, Sec. 2: an augmentation
that is not invertible in distribution leaks, and with ADA's p near 1 even invertible ones do.)

Two checks, each on generated images and, as its baseline, on real images of the reference split, so a figure is
read against what real data scores:
- `leak_cutout`: the share of images with a square of a quarter of each side (DiffAugment's cutout is half) whose
  pixels are all within 0.05 of 0 in every channel, the value cutout fills with; `leak_cutout_real` the same share
  of real images.
- `leak_rotation`: a small classifier is trained (seeded, the `leak` stream) to tell a real image's rotation by 0,
  90, 180 or 270 degrees; `leak_rotation` is the share of generated images it reads as rotated, `leak_rotation_real`
  the share of held-out real images it reads so (its own error, and the data's symmetries: a 6 is a rotated 9). A
  generator that leaks ADA's 90-degree rotations scores well above the real share.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CUTOUT_SIDE = 0.25  # of each side
FILL_TOLERANCE = 0.05
CLASSIFIER_STEPS = 300
CLASSIFIER_BATCH = 64


def cutout_share(images: torch.Tensor) -> float:
    """The share of images (N, C, H, W in [-1, 1]) holding a filled square of CUTOUT_SIDE of each side."""
    side = max(2, round(images.shape[-1] * CUTOUT_SIDE))
    filled = (images.abs() <= FILL_TOLERANCE).all(dim=1, keepdim=True).float()
    whole = F.avg_pool2d(filled, side, stride=1) >= 1 - 1e-6
    return float(whole.flatten(1).any(dim=1).float().mean())


class OrientationNet(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(16, 32, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def rotate(images: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Each image turned by its own number of quarter turns."""
    out = images.clone()
    for k in range(1, 4):
        chosen = quarters == k
        if chosen.any():
            out[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return out


def orientation_classifier(real: torch.Tensor, rng: torch.Generator) -> OrientationNet:
    """Trained on real images, each turned by a random number of quarter turns, to predict that number."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))
        net = OrientationNet(real.shape[1])  # its initial weights: one draw of the leak stream
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    for _ in range(CLASSIFIER_STEPS):
        index = torch.randint(0, len(real), (CLASSIFIER_BATCH,), generator=rng)
        quarters = torch.randint(0, 4, (CLASSIFIER_BATCH,), generator=rng)
        loss = F.cross_entropy(net(rotate(real[index], quarters)), quarters)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def rotated_share(net: OrientationNet, images: torch.Tensor) -> float:
    return float((net(images).argmax(dim=1) != 0).float().mean())


class LeakCheck:
    """The four figures of the module docstring. The real images are split in halves: the first trains the
    classifier (once, here), the second is its baseline."""

    def __init__(self, real: torch.Tensor, rng: torch.Generator):
        real = real.float().cpu()
        half = len(real) // 2
        self.net = orientation_classifier(real[:half], rng)
        self.real = {"leak_cutout_real": cutout_share(real), "leak_rotation_real": rotated_share(self.net, real[half:])}

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        fake = fake.float().cpu()
        return {"leak_cutout": cutout_share(fake), "leak_rotation": rotated_share(self.net, fake), **self.real}


def leak(fake: torch.Tensor, real: torch.Tensor, rng: torch.Generator) -> dict[str, float]:
    return LeakCheck(real, rng)(fake)
