"""LeCam regularisation: Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data", CVPR 2021.

R = E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2], added to the discriminator's loss times `lecam` (the weight),
where a_R and a_F are exponential moving averages of D's mean output on real and on fake images. It keeps D's
outputs on real and fake from drifting apart, which is what a discriminator that memorises a small training set
does. As in the official code (google/lecam-gan, biggan_cifar/third_party/utils.py `ema_losses` and `lecam_reg`) the
term is on from the first step and the averages follow the current means until `lecam_start` (decay 0), then decay
by `lecam_decay`; StudioGAN (src/worker.py, `LeCamEMA`) adds the term only after the start step.

The weight depends on the scale of D's outputs, by orders of magnitude: 0.3 in the official BigGAN-CIFAR code and
StudioGAN's *-LeCam configs, 3e-7 to 1e-6 for the official StyleGAN2 (whose logits are large). Defaults here: decay
0.99 (StudioGAN and the official StyleGAN2 code; the official BigGAN code uses 0.9), start 1,000 steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LeCam:
    """The two moving averages and the penalty; the averages live on the device (no host sync per step)."""

    def __init__(self, decay: float, start: int):
        self.decay, self.start = decay, start
        self.real: torch.Tensor | None = None  # a_R
        self.fake: torch.Tensor | None = None  # a_F

    def update(self, real_scores: torch.Tensor, fake_scores: torch.Tensor, step: int) -> None:
        decay = self.decay if step >= self.start else 0.0
        for name, scores in (("real", real_scores), ("fake", fake_scores)):
            mean = scores.detach().float().mean()
            old = getattr(self, name)
            setattr(self, name, mean if old is None else old * decay + mean * (1 - decay))

    def penalty(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        assert self.real is not None and self.fake is not None, "update() before penalty()"
        return (F.relu(real_scores.float() - self.fake).pow(2).mean()
                + F.relu(self.real - fake_scores.float()).pow(2).mean())

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"real": self.real, "fake": self.fake}

    def load_state_dict(self, state: dict) -> None:
        self.real, self.fake = state["real"], state["fake"]
