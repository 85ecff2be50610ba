"""Generated images + a reference -> every asked-for metric, with its protocol, warnings and what was unavailable."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.errors import BenchError
from bench.metrics.base import RELIABLE_N, EvalResult, ProgressCallback, Reference, Scoring
from bench.metrics.bootstrap import LEVEL, add_intervals, check_resamples
from bench.metrics.features import (
    FeatureExtractor,
    Features,
    check_mode,
    file_batches,
    sampler_batches,
    tensor_batches,
)
from bench.metrics.frechet import covariance_factor, frechet_distance, gaussian_stats
from bench.metrics.inception import load_feature_network
from bench.metrics.inception_score import SPLITS, UNAVAILABLE, InceptionClassifier, inception_score
from bench.metrics.kid import SUBSETS, kernel_inception_distance
from bench.metrics.memorization import pixel_vectors
from bench.metrics.prdc import DC_K, PR_K, prdc
from bench.metrics.reference import describe, folder_files, reference_images, reference_stats, resolution_tag
from bench.metrics.spaces import INCEPTION, FeatureSpace, LoadedSpace, inception_space, load_space
from bench.results import ALSO, METRICS, SELECT, computed, interval_keys


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """The asked-for metrics of the Inception feature space, each once, in the registry's order."""
    known = [m.name for m in computed()]
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise BenchError(f"unknown metric '{unknown[0]}'; use some of: {', '.join(known)}")
    return [m for m in known if m in metrics]


def scorer(name: str) -> Callable[[Scoring], None]:
    """The function bench/results.py names for a metric ("module:function")."""
    module, _, function = METRICS[name].compute.partition(":")
    return getattr(importlib.import_module(module), function)


def evaluate_generator(sample: Callable[[int], torch.Tensor], n_fake: int, reference: Reference,
                       metrics: Sequence[str] = ("fid",), mode: str = "clean", device="cpu", batch_size: int = 50,
                       cache_dir: Path | None = None, inception_weights: Path | None = None,
                       progress: ProgressCallback | None = None, selection: Reference | None = None,
                       memorized: tuple[Reference, Reference] | None = None,
                       features: FeatureSpace = INCEPTION, bootstrap: int = 0,
                       bootstrap_seed: int = 0, also: Sequence[FeatureSpace] = ()) -> EvalResult:
    """Metrics of `n_fake` images from `sample(k)` ((k, C, H, W) in [-1, 1]; the caller seeds it) vs `reference`;
    with `selection`, also `fid_select`: the same images' FID against that other reference (the split that picks a
    trial's best step, eval.select_split); `memorized`: (the training split, the held-out split) of the
    memorisation check; `features`: the space every metric measures in (bench/metrics/spaces.py); `bootstrap`:
    resamples of the generated features for each metric's 95% interval (bench/metrics/bootstrap.py; 0: none);
    `also`: further spaces in which the same images' FD is logged as fd_<kind>, against the same reference
    (bench/results.py ALSO)."""
    if n_fake < 2:
        raise BenchError(f"n_fake={n_fake}: FID needs at least 2 generated images")
    return _evaluate(lambda: sampler_batches(sample, n_fake, batch_size), n_fake, reference, metrics, mode, device,
                     batch_size, cache_dir, inception_weights, progress, selection, memorized, features,
                     bootstrap, bootstrap_seed, also)


def evaluate_images(fake: torch.Tensor | Path, reference: Reference, metrics: Sequence[str] = ("fid",),
                    mode: str = "clean", device="cpu", batch_size: int = 50, cache_dir: Path | None = None,
                    inception_weights: Path | None = None, n_fake: int | None = None,
                    progress: ProgressCallback | None = None, features: FeatureSpace = INCEPTION,
                    bootstrap: int = 0, bootstrap_seed: int = 0, also: Sequence[FeatureSpace] = ()) -> EvalResult:
    """Metrics of a tensor of images in [-1, 1] (or uint8), or of an image folder (its first `n_fake` after a
    seeded shuffle), vs `reference`; `bootstrap` and `also` as in evaluate_generator."""
    if isinstance(fake, str | Path):
        files = folder_files(Path(fake), n_fake)
        batches = lambda: file_batches(files, batch_size)  # noqa: E731
        total = len(files)
    else:
        images = fake[:n_fake] if n_fake is not None else fake
        batches = lambda: tensor_batches(images, batch_size)  # noqa: E731
        total = len(images)
    return _evaluate(batches, total, reference, metrics, mode, device, batch_size, cache_dir, inception_weights,
                     progress, features=features, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed, also=also)


def _evaluate(batches: Callable[[], Iterable[torch.Tensor]], total: int, reference: Reference,
              metrics: Sequence[str], mode: str, device, batch_size: int, cache_dir: Path | None,
              inception_weights: Path | None, progress: ProgressCallback | None,
              selection: Reference | None = None,
              memorized: tuple[Reference, Reference] | None = None,
              features: FeatureSpace = INCEPTION, bootstrap: int = 0, bootstrap_seed: int = 0,
              also: Sequence[FeatureSpace] = ()) -> EvalResult:
    metrics, mode, device = check_metrics(metrics), check_mode(mode), torch.device(device)
    check_resamples(bootstrap)
    if batch_size < 1:
        raise BenchError(f"batch size {batch_size}: must be at least 1")
    # the evaluated side first: when it is unusable, say so before the network loads and the reference pass runs
    if total < 2:
        raise BenchError(f"only {total} evaluated image: FID needs at least 2 per side")
    space = feature_space(features, device)
    net, weights_sha = space.net, space.sha256
    classifier = None
    if "is" in metrics and inception_weights is not None and space.preprocess is None:  # IS is Inception's own
        classifier = InceptionClassifier(inception_weights, device)
    need_feats = any(METRICS[m].features for m in metrics)
    need_pixels = any(METRICS[m].pixels for m in metrics)
    fake_pixels: list[np.ndarray] = []
    source = _keeping_pixels(batches(), fake_pixels) if need_pixels else batches()
    extractor = _extractor(space, mode, device)
    others = [feature_space(other, device) for other in also]  # each batch goes through these too, as it passes
    other_extractors = [_extractor(other, mode, device) for other in others]
    other_feats: list[list[np.ndarray]] = [[] for _ in others]
    if others:
        source = _extracting(source, other_extractors, other_feats)
    fake = FeatureExtractor(net, mode, device, classifier, _other(space))(source,
                                                                        _phase(progress, "generated images", total))
    if len(fake) < 2:
        raise BenchError(f"only {len(fake)} evaluated image could be read: FID needs at least 2 per side")
    ref, _, warnings = reference_stats(reference, mode, extractor, weights_sha,
                                       batch_size, cache_dir, need_feats, progress=progress)
    n_real = ref.meta.get("n")
    protocol = {"n_real": str(n_real if n_real is not None else "unknown"), "n_fake": str(len(fake)),
                "reference": describe(reference), "resolution": resolution_tag(reference), "mode": mode,
                **space.protocol}
    scoring = Scoring(ref, fake, classifier, protocol=protocol)
    if need_pixels:
        scoring.fake_pixels = np.concatenate(fake_pixels)
        _memorized_splits(scoring, memorized, mode, extractor, weights_sha, batch_size,
                          cache_dir, progress)
    for name in metrics:
        scorer(name)(scoring)
    if bootstrap:
        add_intervals(scoring, metrics, bootstrap, bootstrap_seed)
    fid_key = METRICS["fid"].keys[0]
    for name, count in (("n_fake", len(fake)), ("n_real", n_real)):
        if count is not None and count < RELIABLE_N and "fid" in metrics:
            low, high = (scoring.values.get(k) for k in interval_keys(fid_key))
            spread = ("" if low is None or name != "n_fake" else
                      f"; its bootstrap {LEVEL}% interval over generated images is [{low:.4g}, {high:.4g}]")
            warnings.append(f"{name}={count} < {RELIABLE_N}: FID is biased upward at this n{spread}; compare FIDs "
                            "only at equal n_real and n_fake, and prefer KID (unbiased at any n)")
    if selection is not None:  # the same generated features against the split that picks the best step
        chosen, _, more = reference_stats(selection, mode, extractor, weights_sha,
                                          batch_size, cache_dir, False, progress=progress)
        scoring.values[SELECT] = fid_against(chosen, fake)
        protocol.update(select_reference=describe(selection), select_n_real=str(chosen.meta.get("n", "unknown")))
        warnings += [w for w in more if w not in warnings]
    for other, other_extractor, feats in zip(others, other_extractors, other_feats, strict=True):
        _score_also(scoring, other, other_extractor, Features(np.concatenate(feats)), reference, metrics, mode,
                    batch_size, cache_dir, progress, bootstrap, bootstrap_seed, warnings)
    return EvalResult(scoring.values, protocol, warnings, scoring.unavailable, scoring.images)


def _extracting(batches: Iterable[torch.Tensor], extractors: list[FeatureExtractor],
                into: list[list[np.ndarray]]) -> Iterator[torch.Tensor]:
    """The batches as they are, each one's features in every further space kept on the way (so the images are
    generated once and never held all at once)."""
    for batch in batches:
        for extractor, feats in zip(extractors, into, strict=True):
            feats.append(extractor([batch]).feats)
        yield batch


def _score_also(s: Scoring, space: LoadedSpace, extractor: FeatureExtractor, fake: Features, reference: Reference,
                metrics: Sequence[str], mode: str, batch_size: int, cache_dir: Path | None, progress,
                bootstrap: int, bootstrap_seed: int, warnings: list[str]) -> None:
    """FD of the generated features in a further space, into `s` under that space's key (bench/results.py ALSO:
    fd_<kind>, with its interval under eval.bootstrap) and its protocol as eval.fd_<kind>.*; a reference that
    cannot be had in that space leaves the metric unavailable, with the reason."""
    kind = space.protocol["features"]
    (fd_key,) = ALSO[kind].keys
    try:
        ref, _, more = reference_stats(reference, mode, extractor, space.sha256, batch_size, cache_dir,
                                       progress=progress)
    except BenchError as err:  # e.g. precomputed statistics (eval.reference_stats) of another space
        s.unavailable[fd_key] = str(err)
        return
    warnings += [w for w in more if w not in warnings]
    there = Scoring(ref, fake)
    score_fid(there)
    if bootstrap:
        add_intervals(there, ["fid"], bootstrap, bootstrap_seed)
    names = {"fid": fd_key, **dict(zip(interval_keys("fid"), interval_keys(fd_key), strict=True))}
    s.values.update({names[k]: v for k, v in there.values.items() if k in names})
    s.protocol.update({f"{fd_key}.{k}": v for k, v in {**space.protocol, "n_real": str(ref.meta.get("n", "unknown")),
                                                        "n_fake": str(len(fake))}.items()})


def feature_space(features: FeatureSpace, device) -> LoadedSpace:
    """The space's network, preprocessing and protocol; Inception through `load_feature_network`, as before."""
    if features.kind == "inception":
        return inception_space(*load_feature_network(device))
    return load_space(features, device)


def _other(space: LoadedSpace) -> LoadedSpace | None:
    return None if space.preprocess is None else space


def _extractor(space: LoadedSpace, mode: str, device) -> FeatureExtractor:
    return FeatureExtractor(space.net, mode, device, space=_other(space))


def _keeping_pixels(batches: Iterable[torch.Tensor], into: list) -> Iterator[torch.Tensor]:
    """The batches as they are, each one's pixel vectors (bench.metrics.memorization) kept on the way."""
    for batch in batches:
        into.append(pixel_vectors(batch))
        yield batch


def _memorized_splits(s: Scoring, splits: tuple[Reference, Reference] | None, mode: str, extractor,
                      weights_sha: str, batch_size: int, cache_dir: Path | None, progress) -> None:
    """The training and held-out splits' statistics (with features, cached) and pixels, into `s`; one that cannot
    be had is left None, with the reason."""
    if splits is None:
        s.why_no_train = s.why_no_heldout = "no training and held-out splits were given"
        return
    for name, split in zip(("train", "heldout"), splits, strict=True):
        try:
            stats = reference_stats(split, mode, extractor, weights_sha, batch_size, cache_dir, True,
                                    progress=progress)[0]
            setattr(s, name, stats)
            setattr(s, f"{name}_pixels", _pixels(split, batch_size))
            s.protocol[f"memorization_{name}"] = describe(split)
        except BenchError as err:  # e.g. a dataset without a test split
            setattr(s, name, None)
            setattr(s, f"why_no_{name}", str(err))


def _pixels(reference: Reference, batch_size: int) -> np.ndarray:
    batches, _ = reference_images(reference, batch_size)
    return np.concatenate([pixel_vectors(b) for b in batches])


def evaluate_per_class(sample: Callable[[int, int], torch.Tensor], n_per_class: int, reference: Reference,
                       classes: Sequence[str], mode: str = "clean", device="cpu", batch_size: int = 50,
                       cache_dir: Path | None = None, progress: ProgressCallback | None = None,
                       features: FeatureSpace = INCEPTION) -> EvalResult:
    """Intra-FID (Miyato & Koyama 2018; StudioGAN's "intra-class FID"): for each class c, the FID of
    `n_per_class` images from `sample(c, k)` against the reference's images of class c; `intra_fid` is their mean,
    `intra_fid/<class>` each one."""
    mode, device = check_mode(mode), torch.device(device)
    if n_per_class < 2:
        raise BenchError(f"n_per_class={n_per_class}: FID needs at least 2 images per class")
    space = feature_space(features, device)
    extractor, weights_sha = _extractor(space, mode, device), space.sha256
    values: dict[str, float] = {}
    warnings, unavailable, n_real = [], {}, {}
    for label, name in enumerate(classes):
        class_reference = replace(reference, label=label)
        try:
            ref, _, _ = reference_stats(class_reference, mode, extractor, weights_sha, batch_size, cache_dir,
                                        progress=progress)
        except BenchError as err:  # e.g. a class with fewer than 2 reference images
            unavailable[f"intra_fid/{name}"] = str(err)
            continue
        fake = extractor(sampler_batches(lambda k, c=label: sample(c, k), n_per_class, batch_size),
                         _phase(progress, f"class {name}", n_per_class))
        values[f"intra_fid/{name}"] = fid_against(ref, fake)
        n_real[name] = ref.meta.get("n")
    per_class = list(values.values())
    if per_class and not unavailable:
        values["intra_fid"] = float(np.mean(per_class))
    elif per_class:
        unavailable["intra_fid"] = f"{len(unavailable)} of {len(classes)} classes could not be scored"
    smallest = min((n for n in n_real.values() if n is not None), default=None)
    protocol = {"intra_fid_n_per_class": str(n_per_class), "intra_fid_classes": str(len(classes)),
                "intra_fid_min_n_real": str(smallest), "intra_fid_reference": describe(reference),
                **space.protocol}
    if n_per_class < RELIABLE_N:
        warnings.append(f"intra-FID with n_per_class={n_per_class} < {RELIABLE_N}: biased upward at this n; "
                        "compare it only at equal n")
    return EvalResult(values, protocol, warnings, unavailable)


def _phase(progress: ProgressCallback | None, phase: str, total: int) -> Callable[[int], None] | None:
    return None if progress is None else (lambda done: progress(phase, done, total))


def fid_against(ref, fake: Features) -> float:
    """FID through the cheaper eigenproblem: the covariance factor of whichever side has fewer samples."""
    mu, sigma = gaussian_stats(fake.feats)
    n_ref = ref.feats.shape[0] if ref.feats is not None else None
    if n_ref is not None and n_ref < len(fake):
        return frechet_distance(mu, sigma, ref.mu, ref.sigma, factor2=covariance_factor(ref.feats))
    return frechet_distance(ref.mu, ref.sigma, mu, sigma, factor2=covariance_factor(fake.feats))


def score_fid(s: Scoring) -> None:
    s.values["fid"] = fid_against(s.ref, s.fake)


def score_kid(s: Scoring) -> None:
    add_kid(s.ref.feats, s.fake, s.values, s.protocol, s.unavailable)


def add_kid(real: np.ndarray | None, fake: Features, values, protocol, unavailable) -> None:
    if real is None:
        unavailable["kid"] = "the reference statistics file has no features (feats); KID needs them"
    elif min(len(real), len(fake)) < 2:
        unavailable["kid"] = "KID needs at least 2 images per side"
    else:
        mean, std, m = kernel_inception_distance(real, fake.feats)
        values["kid_mean"] = mean
        smaller = min(len(real), len(fake))
        if m >= smaller:  # every subset of the smaller side is that whole side: the spread is not uncertainty
            unavailable["kid_std"] = (f"every KID subset holds all {smaller} images of the smaller side (subset size "
                                      f"{m}), so the spread over subsets does not measure the estimate's "
                                      "uncertainty; compare KID across seeds instead")
        else:
            values["kid_std"] = std
        protocol.update(kid_subsets=str(SUBSETS), kid_subset_size=str(m))


def score_prdc(s: Scoring) -> None:
    real, fake, values, protocol, unavailable = s.ref.feats, s.fake, s.values, s.protocol, s.unavailable
    if real is None:
        unavailable["prdc"] = "the reference statistics file has no features (feats); PRDC needs them"
    elif min(len(real), len(fake)) <= max(PR_K, DC_K):
        unavailable["prdc"] = f"precision/recall/density/coverage need more than {max(PR_K, DC_K)} images per side"
    else:
        values.update(prdc(real, fake.feats))
        protocol.update(pr_k=str(PR_K), dc_k=str(DC_K))


def score_inception(s: Scoring) -> None:
    fake, classifier, values, protocol, unavailable = s.fake, s.classifier, s.values, s.protocol, s.unavailable
    if classifier is None:
        unavailable["is"] = UNAVAILABLE
    elif len(fake) < SPLITS:
        unavailable["is"] = f"Inception Score needs at least {SPLITS} images ({SPLITS} splits)"
    else:
        values["is_mean"], values["is_std"] = inception_score(fake.probs, SPLITS)
        protocol.update(is_splits=str(SPLITS), is_weights_sha256=classifier.sha256)
