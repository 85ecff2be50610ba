"""AuthPct (Alaa et al. 2022, "How Faithful is your Synthetic Data?", arXiv 2102.08921), as dgm-eval and fls compute
it (Stein et al. 2023, `metrics/authpct.py`): a generated sample g is authentic when it lies farther from its nearest
reference sample r than r lies from its own nearest other reference sample. AuthPct is the percentage of
authentic samples: a generator that returns (lightly perturbed) training images sits closer to them than they sit
to each other and scores near 0; a generator of new images scores high. It reads the reference's features (the
training split unless `eval.reference_split` says otherwise) in the evaluation's feature space.

Stein et al. also found memorisation on CIFAR-10 that AuthPct did not detect: it is one signal, not a verdict.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import Scoring
from bench.metrics.neighbours import knn_radii, nearest


def authentic(feats_real: np.ndarray, feats_fake: np.ndarray) -> np.ndarray:
    """Per generated sample: 1.0 where it is authentic with respect to the real ones, else 0.0."""
    own = knn_radii(feats_real, (1,))[1]  # each real sample's distance to its nearest other real sample
    dist, index = nearest(feats_fake, feats_real)
    return (own[index] < dist).double().numpy()


def authpct(feats_real: np.ndarray, feats_fake: np.ndarray) -> float:
    """The percentage (0-100) of generated samples that are authentic with respect to the real ones."""
    return float(authentic(feats_real, feats_fake).mean() * 100)


def score_authpct(s: Scoring) -> None:
    if s.ref.feats is None:
        s.unavailable["authpct"] = "the reference statistics file has no features (feats); AuthPct needs them"
    elif len(s.ref.feats) < 2 or len(s.fake) < 1:
        s.unavailable["authpct"] = "AuthPct needs at least 2 reference images and 1 generated image"
    else:
        s.values["authpct"] = authpct(s.ref.feats, s.fake.feats)
