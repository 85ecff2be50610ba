"""Inception Score (Salimans et al. 2016), only with full Inception weights that a user supplies.

default_1.pt stops at pool3 (no classifier head), so IS cannot come from it; rather than fake a number, IS is
reported as unavailable unless the user points to NVIDIA's full TorchScript Inception (`inception-2015-12-05.pt`,
the file StyleGAN2-ADA and clean-fid download), whose `forward(img, return_features=False, use_fp16=False,
no_output_bias=False)` returns class probabilities. As in StyleGAN2-ADA's `compute_is` (which matches the original
TF code), the softmax is taken without the output bias and the score is exp(E KL(p(y|x) || p(y))) over 10 splits.
The network receives the same 299x299 images (0..255) as the feature network, so its own resize is an identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.metrics.inception import file_sha256

SPLITS = 10
UNAVAILABLE = ("needs full Inception weights with the classifier head (default_1.pt has none); pass NVIDIA's "
               "inception-2015-12-05.pt TorchScript with --inception-weights")


class InceptionClassifier:
    """A callable: (B, 3, 299, 299) float 0..255 -> (B, classes) probabilities as numpy."""

    def __init__(self, path: Path, device="cpu"):
        import warnings

        import torch


        path = Path(path)
        if not path.is_file():
            raise BenchError(f"--inception-weights {path}: no such file; give the path of NVIDIA's "
                             "inception-2015-12-05.pt")
        self.path, self.sha256 = path, file_sha256(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(str(path), map_location=str(device)).eval()
        except (RuntimeError, ValueError) as err:
            raise BenchError(f"--inception-weights {path}: not a TorchScript file ({str(err).splitlines()[0]}); "
                             "give NVIDIA's inception-2015-12-05.pt") from None

    def __call__(self, images) -> np.ndarray:
        try:
            probs = self.net(images, return_features=False, no_output_bias=True)
        except RuntimeError as err:
            raise BenchError(f"--inception-weights {self.path}: its forward does not take (img, return_features, "
                             f"no_output_bias) as NVIDIA's inception-2015-12-05.pt does ({str(err).splitlines()[0]})") \
                from None
        probs = probs.double().cpu().numpy()
        if probs.ndim != 2 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
            raise BenchError(f"--inception-weights {self.path}: the network does not return class probabilities "
                             f"(shape {tuple(probs.shape)}); give NVIDIA's inception-2015-12-05.pt")
        return probs


def inception_score(probs: np.ndarray, splits: int = SPLITS) -> tuple[float, float]:
    """(mean, std) over `splits` consecutive parts of exp(mean KL(p(y|x) || p(y)))."""
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} images, got {n}")
    scores = []
    for i in range(splits):
        part = probs[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 * log 0 counts as 0
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
