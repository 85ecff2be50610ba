"""`bench fid REFERENCE EVALUATED`: FID (and KID, PRDC, AuthPct, IS: bench/results.py) between two image sources,
with the protocol; `bench memorization GENERATED TRAIN [--test TEST]`: did the generator copy its training set
(bench/metrics/memorization.py)?

Each side is an image folder, a registered dataset (`digits`, `mnist:test`), a `.npz` of statistics (reference
side only) or `runs:<trial-key>` (evaluated side only: samples from the trial's latest checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from bench.devices import resolve
from bench.errors import BenchError
from bench.results import ALSO, bootstrapped, computed, interval_keys


@dataclass
class Side:
    kind: str  # folder | dataset | stats | run
    value: str  # path, dataset name, or trial key
    split: str | None = None


def parse_side(text: str) -> Side:
    """A registered name (no slash) is a dataset; `./name` forces a folder of that name."""
    # loaded when FID is computed, not for every `bench` command
    from bench.data import DATASETS

    if text.startswith("runs:"):
        return Side("run", text.removeprefix("runs:"))
    if text.endswith(".npz"):
        return Side("stats", text)
    name, _, split = text.partition(":")
    if "/" not in text and name in DATASETS:
        return Side("dataset", name, split or None)
    path = Path(text).expanduser()
    if path.is_dir():
        return Side("folder", str(path))
    if path.exists():
        raise BenchError(f"'{text}' is a file; give a folder of images, a dataset name, a .npz or runs:<trial-key>")
    raise BenchError(f"'{text}' is not a folder, a .npz, runs:<trial-key> or a dataset "
                     f"(known: {', '.join(sorted(DATASETS))})")


FEATURES_HELP = ("the feature space every metric measures in: inception, encoder:PATH (from `bench encoder train`) "
                 "or dinov2:PATH (DINOv2 weights, a local file)")
OWN_WEIGHTS_HELP = "dinov2:PATH holds weights that are not an official DINOv2 checkpoint (recorded as own)"
ALSO_FEATURES_HELP = ("further feature spaces, comma-separated, one of each kind (e.g. encoder:digits): the same "
                      "images' FD in each, as fd_<kind>")


def _space(text: str, own_weights: bool, also: str = ""):
    """The parsed --features (and --also-features), each file checked before any image is read."""
    from bench.metrics.spaces import checked_file, eval_spaces  # with the command, not for every `bench` command

    space, further = eval_spaces(text, [t.strip() for t in also.split(",") if t.strip()], own_weights)
    for each in (space, *further):
        if each.kind != "inception":
            checked_file(each)
    return space, further


def _folder_resolution(folder: str) -> int:
    """The smaller side of the folder's first readable image (unreadable ones are skipped when features are read)."""
    # loaded when FID is computed, not for every `bench` command
    from bench.data.images import image_size
    from bench.metrics.reference import folder_files

    for path in folder_files(Path(folder)):
        size = image_size(path)
        if size is not None:
            return min(size)
    raise BenchError(f"{folder}: none of its images can be read")


def _progress():
    """Images through Inception, as a live line on a terminal (stderr); nothing in logs and pipes."""
    import sys

    # loaded when FID is computed, not for every `bench` command
    from bench.progress import Console, StepProgress

    console = Console(sys.stderr)
    if not console.live:
        return None
    bars: dict[str, StepProgress] = {}

    def show(phase: str, done: int, total: int) -> None:
        bars.setdefault(phase, StepProgress(console, phase, total, "images")).update(done)
        if done >= total:
            console.done()

    return show


def _format(result) -> dict[str, Any]:
    """Each computed metric's values in the registry's order: a `<name>_mean` key with its `_std` as one
    {"mean", "std"} entry (kid, is), the others as they are."""
    v = result.values
    out: dict[str, Any] = {}
    further = list(ALSO.values())  # --also-features: FD in further spaces
    for metric in [*computed(), *further]:
        for key in metric.keys:
            stem = key.removesuffix("_mean")
            if key not in v or (key.endswith("_std") and f"{key.removesuffix('_std')}_mean" in metric.keys):
                continue
            out[stem] = {"mean": v[key], "std": v.get(f"{stem}_std")} if stem != key else v[key]
    intervals = {key: [v[low], v[high]] for metric in [*bootstrapped(), *further]
                 for key in (metric.intervals or metric.keys) for low, high in [interval_keys(key)] if low in v}
    if intervals:  # only with --bootstrap: each value's 95% interval over resampled generated images
        out["intervals"] = intervals
    out["protocol"] = {k: int(s) if s.isdigit() else s for k, s in result.protocol.items()}
    out["warnings"] = result.warnings
    out["unavailable"] = result.unavailable
    return out


def fid_command(
    a: str = typer.Argument(..., help="reference: folder, dataset[:split], stats .npz (mu, sigma[, feats])"),
    b: str = typer.Argument(..., help="evaluated: folder, dataset[:split] or runs:<trial-key>"),
    mode: str = typer.Option("clean", help="resize protocol: clean or legacy_tensorflow"),
    kid: bool = typer.Option(False, help="also KID (mean and std over 100 subsets)"),
    prdc: bool = typer.Option(False, help="also precision, recall, density, coverage"),
    also: str = typer.Option("", "--metrics", help="also these, comma-separated: "
                                                   f"{', '.join(m.name for m in computed() if m.name != 'fid')}"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    n: int | None = typer.Option(None, help="images per side (default: all; for runs: the trial's eval.n_fake)"),
    batch_size: int = typer.Option(50, help="images per Inception batch (does not change the result)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N"),
    data_root: Path | None = typer.Option(None, help="root of on-disk datasets (default: $BENCH_DATA or ./data)"),
    seed: int = typer.Option(0, help="seed of the latents for runs:<key> (and of --bootstrap's resamples)"),
    inception_weights: Path | None = typer.Option(
        None, help="full Inception (NVIDIA's inception-2015-12-05.pt) for the Inception Score; implies --is"),
    resolution: int | None = typer.Option(
        None, help="resolution datasets are loaded at (default: the trial's with runs:, a folder's, else 32)"),
    inception_score: bool = typer.Option(False, "--is", help="also the Inception Score (needs --inception-weights)"),
    features: str = typer.Option("inception", help=FEATURES_HELP),
    also_features: str = typer.Option("", help=ALSO_FEATURES_HELP),
    own_weights: bool = typer.Option(False, "--own-weights", help=OWN_WEIGHTS_HELP),
    bootstrap: int = typer.Option(0, help="resample the evaluated images' features this many times (e.g. 1000) and "
                                          "print each metric's 95% interval over them; the reference is fixed"),
) -> None:
    """FID between a reference and an evaluated set of images, printed with its protocol."""
    import torch

    # loaded when FID is computed, not for every `bench` command
    from bench.metrics.base import Reference
    from bench.metrics.bootstrap import check_resamples
    from bench.metrics.evaluate import evaluate_generator, evaluate_images
    from bench.streams import bootstrap_seed

    check_resamples(bootstrap, "--bootstrap")
    space, further = _space(features, own_weights, also_features)
    ref, fake = parse_side(a), parse_side(b)
    if ref.kind == "run":
        raise BenchError(f"'{a}': runs:<trial-key> is the evaluated side; use `bench fid REFERENCE {a}`")
    if fake.kind == "stats":
        raise BenchError(f"'{b}': statistics files can only be the reference (first argument)")
    if n is not None and n < 2:
        raise BenchError(f"--n {n}: FID needs at least 2 images per side")
    metrics = ["fid"] + ["kid"] * kid + ["prdc"] * prdc + ["is"] * (inception_score or inception_weights is not None)
    metrics += [m.strip() for m in also.split(",") if m.strip()]
    known = [m.name for m in computed()]
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise BenchError(f"--metrics {also}: unknown metric '{unknown[0]}'; use some of: {', '.join(known)}")
    dev = resolve(device)
    trial: dict = {}
    if fake.kind == "run":
        # loaded when FID is computed, not for every `bench` command
        from bench.checkpoint import load_sampler

        sample, trial = load_sampler(fake.value, device=dev)
    trial_eval = trial.get("eval", {})
    res = resolution or trial.get("resolution") or 32
    if resolution is None and not trial and "dataset" in (ref.kind, fake.kind):  # a dataset against a folder
        res = next((_folder_resolution(s.value) for s in (fake, ref) if s.kind == "folder"), res)
    if ref.kind == "dataset":
        split = ref.split or trial_eval.get("reference_split", "train")
        options = trial.get("dataset", {}).get("options", {}) if trial.get("dataset", {}).get("name") == ref.value \
            else {}
        reference = Reference(ref.value, split, res, n if n is not None else trial_eval.get("n_real"), options,
                              data_root)
    else:
        reference = Reference(f"{ref.kind}:{ref.value}", n=n)
    common = dict(metrics=metrics, mode=mode, device=dev, batch_size=batch_size, inception_weights=inception_weights,
                  progress=_progress(), features=space, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed(seed),
                  also=further)
    if fake.kind == "run":
        rng = torch.Generator().manual_seed(seed)
        result = evaluate_generator(lambda k: sample(k, rng), n or trial_eval.get("n_fake", 2048), reference,
                                    **common)
    elif fake.kind == "folder":
        result = evaluate_images(Path(fake.value), reference, n_fake=n, **common)
    else:
        # loaded when FID is computed, not for every `bench` command
        from bench.data import load_dataset
        from bench.metrics.reference import subset_indices

        images = load_dataset(fake.value, res, fake.split or "train", data_root).images
        idx = subset_indices(len(images), n)
        result = evaluate_images(images if idx is None else images[idx], reference, **common)
    _print(result, json_out)


def _print(result, json_out: bool) -> None:
    out = _format(result)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        typer.echo(json.dumps(out, indent=2))
        return
    intervals = out.get("intervals", {})
    for name, value in out.items():
        if name in ("protocol", "warnings", "unavailable", "intervals"):
            continue
        if isinstance(value, dict):
            shown = f"{value['mean']:.6g}" + (f" ± {value['std']:.2g}" if value["std"] is not None else "")
        else:
            shown = f"{value:.6g}"
        spread = intervals.get(name) or intervals.get(f"{name}_mean")
        if spread:
            shown += f"  95% interval over resampled generated images [{spread[0]:.6g}, {spread[1]:.6g}]"
        typer.echo(f"{name:<10} {shown}")
    for name, reason in result.unavailable.items():
        typer.echo(f"{name:<10} unavailable: {reason}")
    typer.echo("protocol   " + " ".join(f"{k}={v}" for k, v in result.protocol.items()))


def _images(side: Side, n: int | None, resolution: int, data_root: Path | None, sample=None,
            seed: int = 0) -> tuple[Iterator, int]:
    """(uint8 image batches, how many) of one side: a folder's files (unreadable ones skipped and logged), a
    dataset's split, or `n` samples of a trial."""
    # loaded when images are compared, not for every `bench` command
    from bench.data import load_dataset
    from bench.metrics.features import file_batches, sampler_batches, tensor_batches
    from bench.metrics.reference import folder_files, subset_indices

    if side.kind == "folder":
        files = folder_files(Path(side.value), n)
        return file_batches(files, 50), len(files)
    if side.kind == "run":
        import torch

        rng = torch.Generator().manual_seed(seed)
        return sampler_batches(lambda k: sample(k, rng), n, 50), n
    images = load_dataset(side.value, resolution, side.split or "train", data_root).images
    idx = subset_indices(len(images), n)
    chosen = images if idx is None else images[idx]
    return tensor_batches(chosen, 50), len(chosen)


def memorization_command(
    generated: str = typer.Argument(..., help="generated images: folder, dataset[:split] or runs:<trial-key>"),
    train: str = typer.Argument(..., help="the training images: folder or dataset[:split]"),
    test: str | None = typer.Option(None, help="held-out real images of the same kind (folder or dataset:split); "
                                               "default for a dataset: its test split"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    pairs: Path | None = typer.Option(None, help="write the closest generated/training pairs as a PNG grid"),
    n: int | None = typer.Option(None, help="generated images (default: all; for runs: the trial's eval.n_fake)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N"),
    data_root: Path | None = typer.Option(None, help="root of on-disk datasets (default: $BENCH_DATA or ./data)"),
    resolution: int | None = typer.Option(None, help="resolution datasets are loaded at (default: the trial's, a "
                                                     "folder's, else 32)"),
    seed: int = typer.Option(0, help="seed of the latents for runs:<key>"),
    features: str = typer.Option("inception", help=FEATURES_HELP),
    own_weights: bool = typer.Option(False, "--own-weights", help=OWN_WEIGHTS_HELP),
) -> None:
    """Did a generator copy its training set? Distances to the nearest training image in Inception and pixel space
    against held-out images', the C_T data-copying test, AuthPct, and a verdict: copies, novel or uncertain."""
    import numpy as np

    # loaded when images are compared, not for every `bench` command
    from bench.metrics import memorization as mem
    from bench.metrics.evaluate import feature_space
    from bench.metrics.features import FeatureExtractor

    space, _ = _space(features, own_weights)
    gen, ref = parse_side(generated), parse_side(train)
    if ref.kind in ("run", "stats"):
        raise BenchError(f"'{train}': the training images are a folder or a dataset[:split]")
    if gen.kind == "stats":
        raise BenchError(f"'{generated}': statistics files hold no images; give a folder, a dataset or runs:<key>")
    held = parse_side(test) if test is not None else None
    if held is None and ref.kind == "dataset" and (ref.split or "train") != "test":
        held = Side("dataset", ref.value, "test")
    if held is not None and held.kind not in ("folder", "dataset"):
        raise BenchError(f"--test {test}: the held-out images are a folder or a dataset:split")
    if n is not None and n < 2:
        raise BenchError(f"--n {n}: compare at least 2 generated images")
    dev = resolve(device)
    sample, trial = None, {}
    if gen.kind == "run":
        from bench.checkpoint import load_sampler  # a trial's generator: loaded only for runs:<key>

        sample, trial = load_sampler(gen.value, device=dev)
        n = n or trial.get("eval", {}).get("n_fake", 2048)
    res = resolution or trial.get("resolution") or next(
        (_folder_resolution(s.value) for s in (gen, ref, held) if s is not None and s.kind == "folder"), 32)
    loaded = feature_space(space, dev)
    extract = FeatureExtractor(loaded.net, "clean", dev, space=loaded if loaded.preprocess is not None else None)
    progress = _progress()
    sides = {"generated": (gen, n), "train": (ref, None), **({"test": (held, None)} if held else {})}
    feats, pixels, counts = {}, {}, {}
    for name, (side, count) in sides.items():
        collected: list = []

        def keep(batches, into=collected):
            for batch in batches:
                into.append(mem.pixel_vectors(batch))
                yield batch

        try:
            batches, total = _images(side, count, res, data_root, sample, seed)
            phase = None if progress is None else (lambda done, p=name, t=total: progress(f"{p} images", done, t))
            feats[name] = extract(keep(batches), phase).feats
        except BenchError as err:
            raise BenchError(f"{name} images ({side.value}): {err}") from None
        pixels[name] = np.concatenate(collected)
        counts[name] = len(pixels[name])
    if counts["train"] < 2 or counts["generated"] < 2:
        raise BenchError("compare at least 2 generated and 2 training images")
    result = mem.memorization(feats["train"], feats["generated"], pixels["train"], pixels["generated"],
                              feats.get("test"), pixels.get("test"))
    if pairs is not None:
        _write_pairs(result, pixels, pairs)
    protocol = {"n_generated": counts["generated"], "n_train": counts["train"], "n_test": counts.get("test", 0),
                **loaded.protocol, "pixels": f"{mem.PIXELS}x{mem.PIXELS} rgb",
                "pca_dim": mem.PCA_DIM, "min_per_cell": mem.MIN_PER_CELL, "copies_below": mem.COPIES,
                "novel_above": mem.NOVEL, "resolution": res,
                "generated": generated, "train": train, "test": test or (f"{held.value}:test" if held else "")}
    _print_memorization(result, protocol, json_out)


def _write_pairs(result, pixels: dict, out: Path) -> None:
    """Two rows: the generated images nearest to a training image (top) and those training images (below)."""
    from bench.tracking import png_grid  # with the command

    images = result.pairs(pixels["generated"], pixels["train"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_grid(images, nrow=len(images) // 2))


def _space_json(space) -> dict[str, Any]:
    return {"median_ratio": space.ratio, "generated_median": space.generated_median,
            "heldout_median": space.heldout_median, "ct": space.ct, "cells": space.cells,
            "cells_used": space.cells_used, **({"no_ct": space.why_no_ct} if space.why_no_ct else {})}


def _print_memorization(result, protocol: dict, json_out: bool) -> None:
    name = protocol["features"]  # the feature space: its figures under its name (inception, encoder, dinov2)
    if json_out:
        typer.echo(json.dumps({"verdict": result.verdict, name: _space_json(result.features),
                               "pixels": _space_json(result.pixels), "authpct": result.authpct,
                               "closest": [{"generated": g, "train": t, "distance": d}
                                           for g, t, d in result.closest()],
                               "protocol": protocol}, indent=2))
        return
    spaces = (("Inception" if name == "inception" else name, result.features), ("pixels", result.pixels))
    why = {"copies": "generated images sit closer to training images than held-out images do",
           "novel": "generated images sit as close to the training set as held-out images, or farther",
           "uncertain": "between the two thresholds" if all(s.ct is not None for _, s in spaces) else
                        "C_T could not be computed (see below)"}[result.verdict]
    typer.echo(f"verdict    {result.verdict}: {why}")
    cts = ", ".join(f"{s.ct:.2f} {name} ({s.cells_used} of {s.cells} cells)" if s.ct is not None else
                    f"- {name} ({s.why_no_ct})" for name, s in spaces)
    typer.echo(f"C_T        {cts}; below {protocol['copies_below']:g} is copying, near 0 or above is not")
    ratios = ", ".join(f"{s.ratio:.3f} {name}" if s.ratio is not None else f"- {name}" for name, s in spaces)
    typer.echo(f"nn_ratio   {ratios} (median distance to the nearest training image, generated / held-out)")
    if result.authpct is not None:
        typer.echo(f"authpct    {result.authpct:.1f} (% of generated images farther from the training set than "
                   "its images are from each other)")
    typer.echo("protocol   " + " ".join(f"{k}={v}" for k, v in protocol.items()))


encoder_app = typer.Typer(help="Encoders bench trains, whose features are a space for every metric "
                               "(--features encoder:PATH).", no_args_is_help=True, rich_markup_mode=None)


@encoder_app.command("train")
def encoder_train_command(
    dataset: str = typer.Argument(..., help="a registered dataset (digits, mnist, ...); its train split is used"),
    out: Path | None = typer.Option(None, help="the encoder file (default: <dataset>-encoder.pt)"),
    steps: int = typer.Option(2000, help="optimiser steps (batches of 64)"),
    resolution: int = typer.Option(16, help="the side images are loaded at and the encoder takes"),
    seed: int = typer.Option(0, help="seeds the initialisation, batch order and augmentations"),
    data_root: Path | None = typer.Option(None, help="root of on-disk datasets (default: $BENCH_DATA or ./data)"),
) -> None:
    """Train a small encoder on a dataset's train split (a classifier where it has labels, else SimCLR), on the CPU,
    seeded; print its sha256 and, for a classifier, its accuracy on the test split."""
    import torch

    # loaded when an encoder is trained, not for every `bench` command
    from bench import numerics
    from bench.data import DATASETS, available_splits, load_dataset
    from bench.files import write_atomic
    from bench.metrics.encoder import train_encoder
    from bench.metrics.inception import file_sha256

    name, _, split = dataset.partition(":")
    options: dict = {}
    if name not in DATASETS and Path(dataset).expanduser().is_dir():  # a folder of images (class subfolders: labels)
        name, split, options = "folder", "", {"path": str(Path(dataset).expanduser().resolve())}
    elif name not in DATASETS:
        raise BenchError(f"'{dataset}' is not a dataset or a folder (known: {', '.join(sorted(DATASETS))})")
    if steps < 1 or resolution < 4:
        raise BenchError(f"--steps {steps} --resolution {resolution}: train at least 1 step on images of 4 px or more")
    split = split or "train"
    data = load_dataset(name, resolution, split, data_root, **options)
    if not hasattr(data, "images"):
        raise BenchError(f"'{name}' is a two-domain dataset; train an encoder on an image dataset")
    labels = data.labels if data.labels is not None and len(data.classes) > 1 else None
    test = None
    if labels is not None and "test" in available_splits(name, options, data_root) and split != "test":
        held = load_dataset(name, resolution, "test", data_root, **options)
        test = (held.images, held.labels)
    settings = _EncoderNumerics(portable=numerics.process_mode() == "portable", threads=numerics.DEFAULT_THREADS,
                                deterministic=True)
    with numerics.trial_numerics(settings, torch.device("cpu")):
        trained = train_encoder(data.images, labels, test, steps, seed,
                                about={"dataset": options.get("path", name), "split": split,
                                       "resolution": resolution})
    path = out or Path(f"{name}-encoder.pt")
    write_atomic(path, lambda f: f.write(trained.data))
    typer.echo(f"encoder    {path} ({len(trained.data) / 1024:.0f} KiB)")
    typer.echo(f"trained    {trained.objective} on {name}:{split} ({len(data.images)} images, {resolution} px), "
               f"{steps} steps, seed {seed}")
    if trained.test_accuracy is not None:
        typer.echo(f"accuracy   {trained.test_accuracy:.4f} on {name}:test ({trained.n_test} images)")
    typer.echo(f"sha256     {file_sha256(path)}")
    typer.echo(f"use it     --features encoder:{path}  (a suite: eval.features: encoder:{path})")


@dataclass(frozen=True)
class _EncoderNumerics:
    """bench.numerics.Settings for the encoder's training: a trial's defaults, deterministic."""

    portable: bool
    threads: int
    deterministic: bool
