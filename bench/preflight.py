"""Checks made for every trial before the first one trains, so a suite never stops half-way on a mistake.

`bench run --dry-run` makes the trial checks too. Each problem is one BenchError naming the trial:
- the data: the dataset (and the evaluation's reference split) loads, and holds at least one batch;
- the method: it accepts the data (a conditional method needs labels) and its networks build and fit together
  at the suite's resolution and channels, checked on PyTorch's "meta" device (shapes only, no memory, no time);
- the evaluation: the reference split exists, a statistics file, Inception weights or a feature space's weights
  named by the suite exist (DINOv2's: official, or declared the user's own);
- the device exists, and this process can compute with the trial's numerics (bench/numerics.py);
and for a real run: the runs folder is writable with room for the checkpoints.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import devices, numerics
from bench.batches import DataCache, data_shape
from bench.data import ImageSet, PairSet, available_splits
from bench.errors import BenchError
from bench.methods import get_method
from bench.metrics.spaces import checked_file, eval_spaces
from bench.suite import Trial

_MARGIN_BYTES = 64 << 20  # sample grids, status files, MLflow's copy of a small final checkpoint


@dataclass(frozen=True)
class NetworkCheck:
    checkpoint_bytes: int  # networks and optimizer moments, what one checkpoint of the trial takes on disk


def check_trials(trials: list[Trial], data: DataCache, device_override: str | None = None) -> int:
    """Check every trial (see the module docstring); returns the largest checkpoint size in bytes."""
    checked: dict[str, NetworkCheck] = {}
    largest = 0
    for trial in trials:
        where = f"trial {trial.key} ({trial.label} on {trial.dataset.name}, seed {trial.seed})"
        try:
            numerics.check(trial.numerics.portable, devices.resolve(device_override or trial.device))
            images = data.get(trial)
            smallest = min(images.a.shape[0], images.b.shape[0]) if isinstance(images, PairSet) else len(images)
            if smallest < trial.batch_size:
                raise BenchError(f"the dataset has {smallest} images, fewer than batch_size {trial.batch_size}; "
                                 f"lower batch_size to at most {smallest}")
            shape = (trial.method, json.dumps(trial.params, sort_keys=True, default=str), images.channels,
                     trial.resolution, images.n_classes, isinstance(images, PairSet))
            key = repr(shape)
            if key not in checked:
                checked[key] = check_networks(trial, images)
            largest = max(largest, checked[key].checkpoint_bytes)
            check_evaluation(trial, data)
            if trial.log.heldout_scores:
                heldout_split(trial, data.data_root)
                if not hasattr(get_method(trial.method), "real_scores"):
                    raise BenchError(f"log.heldout_scores: method '{trial.method}' has no discriminator scores to "
                                     "log (the DCGAN family has); remove the setting for it")
        except BenchError as err:
            message = str(err)
            raise BenchError(message if message.startswith("dataset") else f"{where}: {message}") from None
    return largest


def check_networks(trial: Trial, data: ImageSet) -> NetworkCheck:
    """Build the method's networks on the meta device and draw a batch of two from its generator."""
    shape = data_shape(data, trial.resolution)
    method = get_method(trial.method)(trial.hyper(), shape)  # raises for a conditional method on unlabelled data
    try:
        with torch.device("meta"):
            method.nets = method.build()
            if method.task == "translation":
                fake, scores = method.check_shapes(torch.zeros(2, data.channels, trial.resolution, trial.resolution))
                scores = None  # a PatchGAN scores patches, not images
            else:
                rng = torch.Generator()  # latents are drawn on the CPU, then moved to the meta device
                latents = {k: v.to("meta") for k, v in method.sample_latents(2, rng).items()}
                fake, scores = method.probe(latents)
    except BenchError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise BenchError(f"method '{trial.method}' cannot be built for {data.channels}-channel images at "
                         f"{trial.resolution} px ({str(err).splitlines()[0][:160]})") from None
    expected = (2, data.channels, trial.resolution, trial.resolution)
    if tuple(fake.shape) != expected:
        raise BenchError(f"method '{trial.method}' makes images of shape {tuple(fake.shape)[1:]} at "
                         f"{trial.resolution} px; expected {expected[1:]}")
    if scores is not None and scores.numel() != 2:
        raise BenchError(f"method '{trial.method}': its discriminator gives {scores.numel()} scores for 2 images")
    params = sum(p.numel() * p.element_size() for net in method.nets.values() for p in net.parameters())
    return NetworkCheck(checkpoint_bytes=3 * params)  # weights + two optimizer moments (Adam's), an upper bound


def check_evaluation(trial: Trial, data: DataCache) -> None:
    spec = trial.eval
    if not spec.metrics:
        return
    if spec.n_fake < 2:
        raise BenchError(f"eval.n_fake={spec.n_fake}: FID needs at least 2 generated images")
    if spec.inception_weights and not Path(spec.inception_weights).expanduser().is_file():
        raise BenchError(f"eval.inception_weights: {spec.inception_weights} is not a file")
    if spec.features is not None or spec.also_features:  # each file exists, is official DINOv2 or declared own
        try:
            primary, also = eval_spaces(spec.features, spec.also_features, spec.features_own_weights)
            for space in (primary, *also):
                if space.path is not None:
                    checked_file(space)
        except BenchError as err:
            raise BenchError(f"eval.features: {err}") from None
    if spec.reference_stats:
        if not Path(spec.reference_stats).expanduser().is_file():
            raise BenchError(f"eval.reference_stats: {spec.reference_stats} is not a file; give an .npz with mu "
                             "and sigma")
        return
    splits = available_splits(trial.dataset.name, trial.dataset.options, data.data_root)
    if spec.reference_split not in splits:
        raise BenchError(f"eval.reference_split: dataset '{trial.dataset.name}' has no split "
                         f"'{spec.reference_split}'; it has: {', '.join(splits)}")
    reference = data.get(trial, spec.reference_split)
    if len(reference) < 2:
        raise BenchError(f"the reference split '{spec.reference_split}' has {len(reference)} image; FID needs 2")
    if "memorization" in spec.metrics and ("test" not in splits or trial.dataset.split == "test"):
        held = "none" if "test" not in splits else "it as the training split"
        raise BenchError(f"eval.metrics: memorization holds out the test split of dataset '{trial.dataset.name}', "
                         f"which has {held}; give the dataset holdout: {{test: 0.1}} (or a test/ folder) and train "
                         "on another split")
    if spec.select_split is not None:
        if spec.select_split not in splits:
            raise BenchError(f"eval.select_split: dataset '{trial.dataset.name}' has no split "
                             f"'{spec.select_split}'; it has: {', '.join(splits)} (holdout: {{validation: 0.1}} "
                             "carves one from train)")
        if spec.select_split == spec.reference_split:
            raise BenchError(f"eval.select_split: {spec.select_split} is also the reference split: the step would be "
                             "chosen on the images it is scored on; use another split (e.g. validation)")
        if "fid" not in spec.metrics:
            raise BenchError("eval.select_split picks the step of fid_best: add fid to eval.metrics")
        if len(data.get(trial, spec.select_split)) < 2:
            raise BenchError(f"the selection split '{spec.select_split}' has fewer than 2 images; FID needs 2")


def heldout_split(trial: Trial, data_root) -> str:
    """The split log.heldout_scores compares D's outputs on: validation when the dataset holds one out, else test."""
    splits = available_splits(trial.dataset.name, trial.dataset.options, data_root)
    for split in ("validation", "test"):
        if split in splits:
            return split
    raise BenchError(f"log.heldout_scores: dataset '{trial.dataset.name}' has no held-out split; give it "
                     "holdout: {validation: 0.1}")


def check_runs_folder(runs_root: Path, suite: str, checkpoint_bytes: int) -> None:
    """The runs folder must take files, with room for two copies of the largest checkpoint (an atomic write
    holds the old and the new one at once) and a margin; else one line, before any training."""
    folder = runs_root / suite
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise BenchError(f"runs folder {folder} cannot be written ({err.strerror or err}); pass a writable "
                         "--runs-dir (env BENCH_RUNS)") from None
    need = 2 * checkpoint_bytes + _MARGIN_BYTES
    free = shutil.disk_usage(folder).free
    if free < need:
        raise BenchError(f"runs folder {folder}: {_mib(free)} free, the trials need about {_mib(need)} "
                         "(two copies of the largest checkpoint and sample grids); free some space or pass "
                         "another --runs-dir")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"
