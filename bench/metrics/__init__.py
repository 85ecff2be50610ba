"""Metrics with their protocol: FID, KID, precision/recall, density/coverage, AuthPct (and IS with user weights);
each is declared in bench/results.py.

One path serves training-time evaluation, `bench fid` and reports:

    images (in [-1, 1]) -> uint8 -> resize to 299 (clean-fid's `clean` or `legacy_tensorflow`) -> Inception pool3
    -> features -> FID (frechet.py), KID (kid.py), precision/recall/density/coverage (prdc.py), AuthPct
    (authenticity.py)

Reference statistics are cached on disk per protocol (cache.py). Every result carries its protocol (n_real, n_fake,
reference, resolution, mode, weights sha256, feature dim), the warnings that qualify it (small n) and the metrics that
could not be computed, with the reason. Nothing heavy loads on import: clean-fid, scipy and the network load only when a
metric is computed.
"""

from bench.metrics.base import RELIABLE_N, EvalResult, ProgressCallback, Reference
from bench.metrics.evaluate import evaluate_generator, evaluate_images, evaluate_per_class

__all__ = ["RELIABLE_N", "EvalResult", "ProgressCallback", "Reference", "evaluate_generator",
           "evaluate_images", "evaluate_per_class"]
