"""Translation metrics with their protocol (the CUT / CycleGAN protocol, and report 004's baselines).

Per direction (a2b: translations of domain A's test images, against domain B's test images; b2a the other way):
`fid_<dir>` and `kid_<dir>_mean` from the same Inception features as every FID in bench; for aligned pairs also
`l1_<dir>`, `psnr_<dir>`, `ssim_<dir>` against the ground truth (bench/metrics/pixel.py).
Baselines of the data alone (report 004's figure 6), from the cached features of each domain's test images:
`baseline_fid_a_vs_a` and `baseline_fid_b_vs_b`, the FID between two halves of one domain (roughly the best
reachable at that sample size), and `baseline_fid_a_vs_b`, the untranslated source against the target (the score
of doing nothing). A model is useful between those two lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.metrics.base import RELIABLE_N, EvalResult, ProgressCallback, Reference
from bench.metrics.evaluate import add_kid, fid_against
from bench.metrics.features import FeatureExtractor, check_mode, to_uint8
from bench.metrics.frechet import covariance_factor, frechet_distance, gaussian_stats
from bench.metrics.inception import load_feature_network
from bench.metrics.pixel import l1, psnr, ssim
from bench.metrics.reference import describe, reference_stats, subset_indices
from bench.metrics.spaces import INCEPTION, FeatureSpace, inception_space, load_space

HALVES_SEED = 0


def evaluate_translation(translate: Callable[[torch.Tensor, str], torch.Tensor], directions: tuple[str, ...],
                         source: dict[str, torch.Tensor], paired: bool, reference: Reference, n: int | None = None,
                         mode: str = "clean", device="cpu", batch_size: int = 50, cache_dir: Path | None = None,
                         metrics: tuple[str, ...] = ("fid",), progress: ProgressCallback | None = None,
                         features: FeatureSpace = INCEPTION) -> EvalResult:
    """`source` holds the test images of both domains ({"a", "b"}), `reference` names the dataset and split
    (each domain's statistics are cached apart); at most `n` source images are translated per direction;
    `features`: the space FID and KID measure in (bench/metrics/spaces.py)."""

    mode, device = check_mode(mode), torch.device(device)
    space = inception_space(*load_feature_network(device)) if features.kind == "inception" else \
        load_space(features, device)
    net, sha = space.net, space.sha256
    extractor = FeatureExtractor(net, mode, device, space=space if space.preprocess is not None else None)
    refs = {side: reference_stats(replace(reference, domain=side), mode, extractor, sha, batch_size, cache_dir,
                                  need_feats=True, progress=progress)[0] for side in "ab"}
    values: dict[str, float] = {}
    protocol = {"mode": mode, **space.protocol, "reference": describe(reference),
                "resolution": str(reference.resolution)}
    unavailable: dict[str, str] = {}
    for direction in directions:
        src, dst = direction[0], direction[-1]
        images = source[src]
        idx = subset_indices(len(images), n)
        chosen = images if idx is None else images[idx]
        translated = torch.cat([translate(chosen[i:i + batch_size], direction).cpu()
                                for i in range(0, len(chosen), batch_size)])
        fake = extractor(_batches(translated, batch_size), _phase(progress, f"translations {direction}", len(chosen)))
        values[f"fid_{direction}"] = fid_against(refs[dst], fake)
        if "kid" in metrics:
            kid: dict[str, float] = {}
            add_kid(refs[dst].feats, fake, kid, {}, unavailable)
            values.update({f"kid_{direction}_{k.removeprefix('kid_')}": v for k, v in kid.items()})
        if paired:
            truth = source[dst] if idx is None else source[dst][idx]
            values.update({f"l1_{direction}": l1(translated, truth), f"psnr_{direction}": psnr(translated, truth),
                           f"ssim_{direction}": ssim(translated, truth)})
        protocol[f"n_source_{direction}"] = str(len(chosen))
        protocol[f"n_target_{direction}"] = str(refs[dst].meta.get("n"))
    values.update(baselines(refs["a"].feats, refs["b"].feats))
    warnings = []
    if min(len(refs["a"].feats), len(refs["b"].feats)) < RELIABLE_N:
        warnings.append(f"translation FID on {len(refs['a'].feats)} / {len(refs['b'].feats)} test images (< "
                        f"{RELIABLE_N}): biased upward; read it against the baselines of the same n")
    return EvalResult(values, protocol, warnings, unavailable)


def baselines(feats_a: np.ndarray, feats_b: np.ndarray) -> dict[str, float]:
    """FID of two seeded halves of each domain, and of one domain against the other."""

    def fid(x, y):  # the n x n path through y's covariance factor: a 2048 x 2048 eigenproblem costs ~4 s
        return frechet_distance(*gaussian_stats(x), *gaussian_stats(y), factor2=covariance_factor(y))

    def halves(feats):
        order = np.random.default_rng(HALVES_SEED).permutation(len(feats))
        middle = len(feats) // 2
        return feats[order[:middle]], feats[order[middle:]]

    return {"baseline_fid_a_vs_a": fid(*halves(feats_a)), "baseline_fid_b_vs_b": fid(*halves(feats_b)),
            "baseline_fid_a_vs_b": fid(feats_a, feats_b)}


def _batches(images: torch.Tensor, batch_size: int):
    for start in range(0, len(images), batch_size):
        yield to_uint8(images[start:start + batch_size])


def _phase(progress, phase: str, total: int):
    return None if progress is None else (lambda done: progress(phase, done, total))

