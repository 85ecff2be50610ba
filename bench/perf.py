"""`bench perf train`: bench's training loop against a plain hand-written PyTorch loop, same nets, same device.

Both loops train the same networks on the same in-memory data. They run in back-to-back pairs, the order flipping
from pair to pair, so a change in machine load hits both; the ratio is the median of the per-pair ratios.
Imports only torch (and bench's torch-only modules), so it runs on a GPU box that lacks MLflow, clean-fid and the rest.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bench.data import ImageSet
from bench.methods import get_method
from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Trial
from bench.train import Trainer, resolve_device, seed_everything


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_data(n: int, channels: int, resolution: int) -> ImageSet:
    gen = torch.Generator().manual_seed(0)
    return ImageSet(torch.rand(n, channels, resolution, resolution, generator=gen) * 2 - 1)


def bench_loop(method: str, data: ImageSet, batch_size: int, device, width: int, warmup: int, steps: int) -> float:
    hyper = get_method(method).Hyper(width=width).as_params()
    trial = Trial(suite="perf", method=method, label=method, params=hyper, dataset=DatasetSpec(name="digits"),
                  seed=0, budget=Budget(steps=10**9), resolution=data.resolution, batch_size=batch_size,
                  eval=EvalSpec(metrics=[]), numerics=Numerics(), log=LogSpec(every=50, samples_every=10**9,
                  checkpoint_every=10**9), device=str(device))
    trainer = Trainer(trial, data, device)
    trainer.run(stop_after=warmup)
    _sync(device)
    start = time.perf_counter()
    trainer.run(stop_after=warmup + steps)
    _sync(device)
    return steps / (time.perf_counter() - start)


def plain_loop(data: ImageSet, batch_size: int, device, width: int, warmup: int, steps: int) -> float:
    """The PyTorch DCGAN example's loop (pytorch/examples dcgan/main.py) on an in-memory tensor."""
    from bench.nets.conv import ConvDiscriminator, ConvGenerator, init_dcgan_weights

    seed_everything(0)
    netG = ConvGenerator(100, data.channels, data.resolution, width).to(device)
    netD = ConvDiscriminator(data.channels, data.resolution, width).to(device)
    init_dcgan_weights(netG)
    init_dcgan_weights(netD)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    images = data.images.to(device)
    n = images.shape[0]
    perm, pos = torch.randperm(n, device=device), 0

    def step():
        nonlocal perm, pos
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, device=device), 0
        real = images[perm[pos:pos + batch_size]]
        pos += batch_size
        netD.zero_grad()
        out = netD(real)
        err_real = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        fake = netG(torch.randn(batch_size, 100, device=device))
        out = netD(fake.detach())
        err_fake = F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
        (err_real + err_fake).backward()
        optD.step()
        netG.zero_grad()
        out = netD(fake)
        F.binary_cross_entropy_with_logits(out, torch.ones_like(out)).backward()
        optG.step()

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps / (time.perf_counter() - start)


def perf_train(method: str, resolution: int, batch_size: int, steps: int, warmup: int, repeats: int,
               device_name: str, width: int, say: Callable[[str], None] = print) -> dict[str, float]:
    device = resolve_device(device_name)
    channels = 3
    data = synthetic_data(max(4 * batch_size, 512), channels, resolution)
    say(f"bench perf train: method={method} resolution={resolution} batch={batch_size} width={width} "
        f"steps={steps} (+{warmup} warm-up) x{repeats} device={device} threads={torch.get_num_threads()}")
    bench_rates, plain_rates = [], []
    for i in range(repeats):
        if method != "dcgan":
            bench_rates.append(bench_loop(method, data, batch_size, device, width, warmup, steps))
            continue
        if i % 2 == 0:
            bench_rates.append(bench_loop(method, data, batch_size, device, width, warmup, steps))
            plain_rates.append(plain_loop(data, batch_size, device, width, warmup, steps))
        else:
            plain_rates.append(plain_loop(data, batch_size, device, width, warmup, steps))
            bench_rates.append(bench_loop(method, data, batch_size, device, width, warmup, steps))
    bench_rate = statistics.median(bench_rates)
    say(f"  bench loop : {bench_rate:8.2f} steps/s  ({bench_rate * batch_size:9.1f} images/s)  "
        f"runs: {', '.join(f'{r:.2f}' for r in bench_rates)}")
    result = {"bench_steps_per_s": bench_rate}
    if plain_rates:
        plain_rate = statistics.median(plain_rates)
        say(f"  plain loop : {plain_rate:8.2f} steps/s  ({plain_rate * batch_size:9.1f} images/s)  "
            f"runs: {', '.join(f'{r:.2f}' for r in plain_rates)}")
        ratios = [b / p for b, p in zip(bench_rates, plain_rates, strict=True)]
        ratio = statistics.median(ratios)
        say(f"  ratio bench/plain: {ratio:.3f} (median of pairs: {', '.join(f'{r:.3f}' for r in ratios)})")
        result.update(plain_steps_per_s=plain_rate, ratio=ratio)
    else:
        say("  (the plain reference loop is DCGAN's; pass --method dcgan for the side-by-side ratio)")
    return result


def perf_suite(trials: int, steps: int, resolution: int, batch_size: int, width: int, parallel: int,
               per_gpu: int, device_name: str, say: Callable[[str], None] = print) -> list[dict]:
    """Trials/hour of one suite of DCGAN trials on the synthetic dataset: sequential (the local executor), then
    `--parallel`, then (on a GPU) `--per-gpu`, each from an empty runs folder, without MLflow."""
    import tempfile
    from pathlib import Path

    from bench.progress import Console
    from bench.runner import Placement, RunOptions, run_trials
    from bench.suite import Suite, expand

    device = resolve_device(device_name)
    spec = Suite.model_validate({
        "name": "perf-suite", "methods": [{"dcgan": {"width": width}}], "datasets": ["synthetic"],
        "seeds": trials, "resolution": resolution, "batch_size": batch_size, "budget": {"steps": steps},
        "eval": {"metrics": []}, "log": {"every": 50, "samples_every": 10**9, "checkpoint_every": 10**9},
        "device": str(device)})
    suite = expand(spec)
    modes = [("sequential", Placement("local"))]
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        modes.append((f"--parallel {gpus}", Placement("parallel", gpus, 1)))
        modes.append((f"--parallel {gpus * per_gpu} --per-gpu {per_gpu}",
                      Placement("parallel", gpus * per_gpu, per_gpu)))
    else:
        modes.append((f"--parallel {parallel}", Placement("parallel", parallel, 1)))
    say(f"bench perf suite: {trials} dcgan trials x {steps} steps, {resolution} px, batch {batch_size}, width "
        f"{width}, device {device}, {len(os.sched_getaffinity(0))} CPU cores")
    rows = []
    quiet = Console(live=False, milestones=False)
    for name, placement in modes:
        with tempfile.TemporaryDirectory() as tmp:
            options = RunOptions(runs_root=Path(tmp), tracking_uri=None)
            start = time.perf_counter()
            result = run_trials(suite, options, say=lambda line: None, console=quiet, placement=placement)
            wall = time.perf_counter() - start
        if result.counts["finished"] != trials:
            raise RuntimeError(f"{name}: {result.counts['finished']} of {trials} trials finished: {result.failed}")
        rows.append({"mode": name, "wall_s": wall, "trials_per_hour": trials * 3600 / wall})
    base = rows[0]["trials_per_hour"]
    say(f"  {'mode':<28} {'wall':>9} {'trials/hour':>12} {'vs sequential':>14}")
    for row in rows:
        say(f"  {row['mode']:<28} {row['wall_s']:8.1f}s {row['trials_per_hour']:12.1f} "
            f"{row['trials_per_hour'] / base:13.2f}x")
    return rows
