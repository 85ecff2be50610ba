"""`bench fid REFERENCE EVALUATED`: FID (and KID, PRDC, AuthPct, IS: bench/results.py) between two image sources,
with the protocol.

Each side is an image folder, a registered dataset (`digits`, `mnist:test`), a `.npz` of statistics (reference
side only) or `runs:<trial-key>` (evaluated side only: samples from the trial's latest checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from bench.devices import resolve
from bench.errors import BenchError
from bench.results import computed


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
    for metric in computed():
        for key in metric.keys:
            stem = key.removesuffix("_mean")
            if key not in v or (key.endswith("_std") and f"{key.removesuffix('_std')}_mean" in metric.keys):
                continue
            out[stem] = {"mean": v[key], "std": v.get(f"{stem}_std")} if stem != key else v[key]
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
    seed: int = typer.Option(0, help="seed of the latents for runs:<key>"),
    inception_weights: Path | None = typer.Option(
        None, help="full Inception (NVIDIA's inception-2015-12-05.pt) for the Inception Score; implies --is"),
    resolution: int | None = typer.Option(
        None, help="resolution datasets are loaded at (default: the trial's with runs:, a folder's, else 32)"),
    inception_score: bool = typer.Option(False, "--is", help="also the Inception Score (needs --inception-weights)"),
) -> None:
    """FID between a reference and an evaluated set of images, printed with its protocol."""
    import torch

    # loaded when FID is computed, not for every `bench` command
    from bench.metrics.base import Reference
    from bench.metrics.evaluate import evaluate_generator, evaluate_images

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
                  progress=_progress())
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
    for name, value in out.items():
        if name in ("protocol", "warnings", "unavailable"):
            continue
        if isinstance(value, dict):
            shown = f"{value['mean']:.6g}" + (f" ± {value['std']:.2g}" if value["std"] is not None else "")
        else:
            shown = f"{value:.6g}"
        typer.echo(f"{name:<10} {shown}")
    for name, reason in result.unavailable.items():
        typer.echo(f"{name:<10} unavailable: {reason}")
    typer.echo("protocol   " + " ".join(f"{k}={v}" for k, v in result.protocol.items()))
