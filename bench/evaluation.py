"""The evaluation callback the training loop calls (metrics at a step, logged with their protocol) and the summary
of a finished trial's evaluations (final and best FID, and the like) in its MLflow run."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from bench.metrics import Reference, evaluate_generator, evaluate_per_class
from bench.metrics.spaces import eval_spaces
from bench.metrics.translation import evaluate_translation
from bench.progress import Console, StepProgress
from bench.results import ALSO, BEST_STEP, METRICS, summaries
from bench.runs import RunOptions
from bench.streams import bootstrap_seed, evaluation_seed, generator, intra_fid_seed, leak_check_seed, leak_seed
from bench.suite import Trial

log = logging.getLogger(__name__)
_warned: set[str] = set()  # evaluation warnings are the same for every trial of a suite: say each once


def make_evaluator(trial: Trial, tracker, device: torch.device, options: RunOptions, console: Console | None = None,
                   name: str = "", held_out=None):
    """The closure the loop calls at each evaluation step: metrics from bench.metrics, logged with protocol."""
    spec = trial.eval
    if spec.reference_stats:
        reference = Reference(dataset=f"stats:{spec.reference_stats}", resolution=trial.resolution)
    else:
        reference = Reference(dataset=trial.dataset.name, split=spec.reference_split, resolution=trial.resolution,
                              n=spec.n_real, options=dict(trial.dataset.options), data_root=options.data_root)
    weights = Path(spec.inception_weights) if spec.inception_weights else None
    # every metric's feature space, and the further ones of FD
    features, also = eval_spaces(spec.features, spec.also_features, spec.features_own_weights)
    memorized = None  # the memorisation check's splits: all the training images, and real ones never seen
    if "memorization" in spec.metrics:
        memorized = tuple(Reference(dataset=trial.dataset.name, split=split, resolution=trial.resolution,
                                    options=dict(trial.dataset.options), data_root=options.data_root)
                          for split in (trial.dataset.split, "test"))
    selection = None
    if spec.select_split is not None:
        selection = Reference(dataset=trial.dataset.name, split=spec.select_split, resolution=trial.resolution,
                              n=spec.n_real, options=dict(trial.dataset.options), data_root=options.data_root)

    leak_check: dict = {}  # the orientation classifier, trained at the first evaluation that asks for it

    def evaluate(method, step: int) -> dict[str, float]:
        bars: dict[str, StepProgress] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if console is not None:
                bar = bars.setdefault(phase, StepProgress(console, f"{name} step {step}, {phase}", total, "images"))
                bar.update(done)

        values: dict[str, float] = {}
        metrics = [m for m in spec.metrics if METRICS[m].compute]  # one feature space: intra-FID has its own path
        if method.task == "translation":
            result = evaluate_translation(method.translate, method.directions, {"a": held_out.a, "b": held_out.b},
                                          held_out.paired, reference, n=spec.n_fake, mode=spec.mode, device=device,
                                          cache_dir=options.cache_dir, metrics=tuple(metrics), progress=progress,
                                          features=features)
            result.unavailable.update({ALSO[s.kind].name: "further feature spaces (eval.also_features) are not "
                                       "computed for translation" for s in also})
            values.update(_record(result, tracker, step))
            metrics = []
        if metrics:
            rng = generator(evaluation_seed(trial.seed), device)  # the same latents at every evaluation
            result = evaluate_generator(lambda n: method.sample(n, rng), spec.n_fake, reference, metrics=metrics,
                                        mode=spec.mode, device=device, cache_dir=options.cache_dir,
                                        inception_weights=weights, progress=progress, selection=selection,
                                        memorized=memorized, features=features, bootstrap=spec.bootstrap or 0,
                                        bootstrap_seed=bootstrap_seed(trial.seed), also=also)
            values.update(_record(result, tracker, step))
        if "intra_fid" in spec.metrics:
            values.update(_intra_fid(method, trial, reference, tracker, step, device, options, progress, features))
        if "leak" in spec.metrics:
            values.update(_leak(method, trial, reference, leak_check, tracker, step, device))
        if options.on_evaluation is not None:
            options.on_evaluation(step, values)
        return values

    return evaluate


def _record(result, tracker, step: int) -> dict[str, float]:
    """Log an evaluation's values with its protocol, warnings (each said once) and what was unavailable."""
    for message in result.warnings:
        if message not in _warned:
            log.warning("%s", message)
            _warned.add(message)
    if tracker is not None:
        tracker.log_metrics(result.values, step=step)
        # Inception's space is the one a record without eval.features means (as records made before spaces were)
        tracker.set_tags({f"eval.{k}": v for k, v in result.protocol.items()
                          if not (k == "features" and v == "inception")})
        if result.unavailable:
            tracker.set_tags({f"eval.unavailable.{k}": v for k, v in result.unavailable.items()})
        if result.warnings:
            tracker.set_tags({"eval.warnings": " | ".join(result.warnings)})
        for path, images in getattr(result, "images", {}).items():  # the memorisation check's closest pairs
            tracker.log_png(images, path)
    return dict(result.values)


LEAK_SAMPLES = 512  # generated images the leak check reads per evaluation (at most eval.n_fake)


def _leak(method, trial: Trial, reference, cache: dict, tracker, step: int, device) -> dict[str, float]:
    """The augmentation-leak figures (bench/metrics/leak.py) of this step's samples against the reference split."""
    from bench.data import load_dataset  # the reference images: only for the leak check
    from bench.metrics.leak import LeakCheck

    if reference.dataset.startswith("stats:") or method.task != "generation":
        if tracker is not None:
            tracker.set_tags({"eval.unavailable.leak": "the leak check needs the reference images and a generator"})
        return {}
    if "check" not in cache:
        real = load_dataset(reference.dataset, reference.resolution, reference.split, reference.data_root,
                            **reference.options)
        cache["check"] = LeakCheck(real.images, generator(leak_check_seed(trial.seed)))
    rng = generator(leak_seed(trial.seed), device)  # the same samples at every evaluation
    values = cache["check"](method.sample(min(LEAK_SAMPLES, trial.eval.n_fake), rng))
    if tracker is not None:
        tracker.log_metrics(values, step=step)
    return values


def _intra_fid(method, trial: Trial, reference, tracker, step: int, device, options: RunOptions,
               progress, features) -> dict[str, float]:
    """Per-class FID of a conditional method; for others it is recorded as unavailable, with the reason."""
    if not getattr(method, "conditional", False) or reference.dataset.startswith("stats:"):
        why = ("the method is not conditional" if not getattr(method, "conditional", False) else
               "eval.reference_stats holds no per-class statistics")
        if tracker is not None:
            tracker.set_tags({"eval.unavailable.intra_fid": why})
        return {}
    rng = generator(intra_fid_seed(trial.seed), device)  # the same latents at every evaluation

    def sample(label: int, n: int) -> torch.Tensor:
        return method.sample(n, rng, labels=torch.full((n,), label, dtype=torch.long))

    classes = list(method.shape.classes) or [str(c) for c in range(method.shape.n_classes)]
    result = evaluate_per_class(sample, trial.eval.n_per_class, reference, classes, mode=trial.eval.mode,
                                device=device, cache_dir=options.cache_dir, progress=progress, features=features)
    return _record(result, tracker, step)


def log_summary(tracker, evaluations: list[dict]) -> None:
    summary = summaries(evaluations)
    if not summary:
        return
    final = evaluations[-1]
    if BEST_STEP in summary:
        tracker.set_tags({"eval.best_step": summary[BEST_STEP], "eval.final_step": final["step"]})
    tracker.log_metrics(summary, step=final["step"])
