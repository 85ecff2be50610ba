"""`bench perf train`: bench's training loop against a plain hand-written PyTorch loop, same nets, same device.

Both loops train the same networks on the same in-memory data, in interleaved rounds (the order rotating), so a
change in machine load hits all of them. On the CPU the plain loop runs as a user runs it: in its own process, with
the user's environment and torch's defaults (none of bench's pinned knobs, torch's own Adam); bench's native paths in
a worker with the machine's kernels; the portable path (bench's default) with bench's pinned ones.
Imports only torch (and bench's torch-only modules), so it runs on a GPU box that lacks MLflow, clean-fid and the rest.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import devices, numerics, portable
from bench.data import ImageSet, PairSet
from bench.errors import BenchError
from bench.executors import Placement
from bench.methods import METHODS, get_method
from bench.nets.conv import ConvDiscriminator, ConvGenerator, init_dcgan_weights
from bench.progress import Console
from bench.runs import RunOptions
from bench.streams import seed_globals
from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Suite, Trial, expand
from bench.train import Trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_data(n: int, channels: int, resolution: int, method: str | None = None) -> ImageSet | PairSet:
    """Seeded noise images; for `method`, data it trains on: two domains for a translation method, else labelled
    with four classes."""
    gen = torch.Generator().manual_seed(0)

    def images() -> torch.Tensor:
        return torch.rand(n, channels, resolution, resolution, generator=gen) * 2 - 1

    if method is not None and METHODS[method].task == "translation":
        return PairSet(images(), images(), paired=True)
    if method is not None:  # labels for every generation method: whether one is conditional is its config's to say
        return ImageSet(images(), torch.arange(n) % 4, [str(c) for c in range(4)])
    return ImageSet(images())


# the fast paths `bench perf train` compares; each is a Numerics option of a trial (it changes numerics). fp32 and
# the fast paths use the machine's fastest kernels; `portable` is bench's default, the pinned CPU kernels
# (bench/numerics.py): its "vs fp32" is what portability costs
PATHS = {
    "fp32": {"portable": False},
    "portable": {"portable": True},
    "channels_last": {"portable": False, "channels_last": True},
    "bf16": {"portable": False, "bf16": True},
    "compile": {"portable": False, "compile": True},
    "all": {"portable": False, "channels_last": True, "bf16": True, "compile": True},
}

# Dense peak TFLOP/s from NVIDIA's datasheets, per precision the path's convolutions run in: PyTorch lets cuDNN use
# TF32 tensor cores for fp32 convolutions by default (torch.backends.cudnn.allow_tf32), so fp32 paths are held
# against the TF32 peak, bf16 paths against the bf16 one. A GPU not listed has no peak: the fraction is missing.
PEAKS = {  # name fragment -> (tf32, bf16)
    "H100 PCIe": (378.0, 756.0),
    "H100": (494.7, 989.4),  # SXM5 (and NVL's per-GPU figures are close); H200 shares the H100 SXM5 compute
    "H200": (494.7, 989.4),
    "A100": (156.0, 312.0),
}


def gpu_peak(device: torch.device, bf16: bool) -> float | None:
    """Dense peak TFLOP/s of the device for the path, or None (a CPU, or a GPU without a known figure)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, (tf32, bf16_peak) in PEAKS.items():
        if fragment in name:
            if not bf16 and not torch.backends.cudnn.allow_tf32:
                return None
            return bf16_peak if bf16 else tf32
    return None


def perf_trial(method: str, resolution: int, batch_size: int, width: int, device, path: str) -> Trial:
    hyper = get_method(method).Hyper(width=width).as_params()
    return Trial(suite="perf", method=method, label=method, params=hyper, dataset=DatasetSpec(name="digits"),
                 seed=0, budget=Budget(steps=10**9), resolution=resolution, batch_size=batch_size,
                 eval=EvalSpec(metrics=[]), numerics=Numerics(**PATHS[path]),
                 log=LogSpec(every=50, samples_every=10**9, checkpoint_every=10**9), device=str(device))


def bench_loop(method: str, data: tuple, batch_size: int, device, width: int, warmup: int, steps: int,
               path: str = "fp32") -> float:
    """Steps/s of bench's loop on `path` on `synthetic_data(*data)`; on the CPU a path of the other numerics mode
    than this process's runs in a worker process started in that mode (the kernels are chosen when torch loads)."""
    return in_path_process(path, device, _bench_loop, method, data, batch_size, str(device), width, warmup, steps,
                           path)


def _bench_loop(method: str, recipe: tuple, batch_size: int, device, width: int, warmup: int, steps: int,
                path: str) -> float:
    device, data = torch.device(device), synthetic_data(*recipe)
    trainer = Trainer(perf_trial(method, data.resolution, batch_size, width, device, path), data, device)
    trainer.run(stop_after=warmup)
    sync(device)
    start = time.perf_counter()
    trainer.run(stop_after=warmup + steps)
    sync(device)
    return steps / (time.perf_counter() - start)


def in_path_process(path: str, device, function: Callable, *args):
    """`function(*args)` in this process, or, on the CPU for a path of the other numerics mode than this process's,
    in a worker process started in that mode (the kernels are chosen when torch loads)."""
    mode = "portable" if PATHS[path]["portable"] else "native"
    if torch.device(device).type == "cpu" and mode != numerics.process_mode():
        return _worker(mode).submit(function, *args).result()
    return function(*args)


_WORKERS: dict[str, ProcessPoolExecutor] = {}


def _worker(mode: str) -> ProcessPoolExecutor:
    """One process per mode for the whole `bench perf train` (its ~8 s start paid once; perf_train stops them when
    it ends): "portable" (bench's pinned kernels), "native" (the machine's, no knob of bench's inherited) or "plain"
    (as native, for the plain loop, in a process where bench's loop never ran)."""
    if mode not in _WORKERS:
        saved = dict(os.environ)
        if mode == "portable":
            os.environ.pop(numerics.MODE_VARIABLE, None)  # the worker's bench/__init__ pins before its torch loads
        else:
            os.environ.clear()
            os.environ.update(numerics.native_environment())
        try:
            _WORKERS[mode] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            _WORKERS[mode].submit(int).result()  # started now, with this environment
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return _WORKERS[mode]


def _stop_workers() -> None:
    """Idle workers left behind slowed what came after in the same process 6x (a 550-step cdcgan 69 s instead of 11
    after `bench check`'s throughput row, measured on 2 cores): they go when the benchmark ends."""
    while _WORKERS:
        _WORKERS.popitem()[1].shutdown()


def step_flops(method: str, data: ImageSet, batch_size: int, device, width: int) -> int:
    """FLOPs of one training step of bench's loop (forward and backward of every network, all critic steps),
    counted with PyTorch's FLOP formulas on the fp32 path (the other paths do the same arithmetic)."""
    own = "portable" if numerics.process_mode() == "portable" else "fp32"  # the same arithmetic, this process's mode
    trainer = Trainer(perf_trial(method, data.resolution, batch_size, width, device, own), data, device)
    trainer.run(stop_after=1)
    with FlopCount() as counter:
        trainer.run(stop_after=2)
    return counter.total


class FlopCount:
    """Sums PyTorch's own FLOP formulas (torch.utils.flop_counter's registry: matmuls and convolutions, forward and
    backward) over every op run inside it. FlopCounterMode itself also tracks modules with backward hooks, which
    autograd.grad (the gradient penalty) does not allow."""

    def __enter__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        outer = self
        self.total = 0

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                formula = flop_registry.get(func._overloadpacket)
                if formula is not None:
                    outer.total += formula(*args, **kwargs, out_val=out)
                return out

        self.mode = Mode()
        self.mode.__enter__()
        self.products = portable.counting_flops()  # the portable path's GEMMs are no aten ops: counted where they run
        self.portable = self.products.__enter__()
        return self

    def __exit__(self, *exc):
        self.products.__exit__(*exc)
        self.total += self.portable[0]
        return self.mode.__exit__(*exc)


def _plain_setup(data: ImageSet, device, width: int, norm: str, lr: float, betas: tuple[float, float]):
    seed_globals(0)
    netG = ConvGenerator(100, data.channels, data.resolution, width).to(device)
    netD = ConvDiscriminator(data.channels, data.resolution, width, norm=norm).to(device)
    init_dcgan_weights(netG)
    init_dcgan_weights(netD)
    optD = torch.optim.Adam(netD.parameters(), lr=lr, betas=betas)  # torch's default Adam, as a user writes it
    optG = torch.optim.Adam(netG.parameters(), lr=lr, betas=betas)
    images = data.images.to(device)
    n = images.shape[0]
    state = {"perm": torch.randperm(n, device=device), "pos": 0}

    def real_batch(batch_size: int) -> torch.Tensor:
        if state["pos"] + batch_size > n:
            state["perm"], state["pos"] = torch.randperm(n, device=device), 0
        batch = images[state["perm"][state["pos"]:state["pos"] + batch_size]]
        state["pos"] += batch_size
        return batch

    return netG, netD, optG, optD, real_batch


def plain_dcgan_step(data: ImageSet, batch_size: int, device, width: int) -> Callable[[], None]:
    """The PyTorch DCGAN example's loop (pytorch/examples dcgan/main.py) on an in-memory tensor."""
    netG, netD, optG, optD, real_batch = _plain_setup(data, device, width, "batch", 2e-4, (0.5, 0.999))

    def step():
        real = real_batch(batch_size)
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

    return step


def plain_wgan_gp_step(data: ImageSet, batch_size: int, device, width: int) -> Callable[[], None]:
    """Gulrajani et al.'s Algorithm 1 as the one-file collections write it: 5 critic steps, penalty 10 on
    interpolates, Adam(1e-4, betas (0, 0.9)), no normalisation in the critic."""
    netG, netD, optG, optD, real_batch = _plain_setup(data, device, width, "none", 1e-4, (0.0, 0.9))

    def step():
        for _ in range(5):
            real = real_batch(batch_size)
            with torch.no_grad():
                fake = netG(torch.randn(batch_size, 100, device=device))
            eps = torch.rand(batch_size, 1, 1, 1, device=device)
            mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(netD(mixed).sum(), mixed, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            optD.zero_grad()
            (netD(fake).mean() - netD(real).mean() + 10 * penalty).backward()
            optD.step()
        optG.zero_grad()
        (-netD(netG(torch.randn(batch_size, 100, device=device))).mean()).backward()
        optG.step()

    return step


PLAIN = {"dcgan": plain_dcgan_step, "wgan-gp": plain_wgan_gp_step}  # stylegan: no hand-written reference


def plain_loop(method: str, data: tuple, batch_size: int, device, width: int, warmup: int, steps: int) -> float:
    """Steps/s of the hand-written loop on `synthetic_data(*data)` as a user runs it: on the CPU in its own process,
    started with the user's environment (none of bench's knobs) and torch's defaults (its thread count, oneDNN on),
    where no bench loop ran; on a GPU here (the CPU kernels decide nothing there)."""
    if torch.device(device).type == "cpu":
        return _worker("plain").submit(_plain_loop, method, data, batch_size, str(device), width, warmup,
                                       steps).result()
    return _plain_loop(method, data, batch_size, device, width, warmup, steps)


def _plain_loop(method: str, recipe: tuple, batch_size: int, device, width: int, warmup: int, steps: int) -> float:
    device, data = torch.device(device), synthetic_data(*recipe)
    step = PLAIN[method](data, batch_size, device, width)
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - start)


def plain_settings() -> dict[str, object]:
    """What the plain loop's process computes with: torch's defaults there, shown under the table."""
    return {"threads": torch.get_num_threads(), "onednn": torch.backends.mkldnn.enabled,
            "capability": torch.backends.cpu.get_cpu_capability(), "pinned": numerics.process_pinned()}


def default_paths(device: torch.device) -> list[str]:
    """On a GPU every path but portable (the CPU kernels decide nothing there); on the CPU fp32, portable and
    channels_last (bf16 and compile are GPU paths: on a CPU they are
    slower, and compiling takes minutes)."""
    return [p for p in PATHS if p != "portable"] if device.type == "cuda" else ["fp32", "portable", "channels_last"]


def perf_train(methods: list[str], resolutions: list[int], paths: list[str] | None, batch_size: int, steps: int,
               warmup: int, repeats: int, device_name: str, width: int,
               say: Callable[[str], None] = print) -> list[dict]:
    """One row per method x resolution x fast path: bench's steps/s and images/s, the ratio to the plain loop's
    fp32 throughput (bench with a path vs the hand-written loop without it) and to bench's own fp32 row, GFLOP per
    step, achieved TFLOP/s and, on a GPU with a known peak, the fraction of it. The plain loop and each path run
    in interleaved rounds (the order rotating), so a change in machine load hits all of them; each figure is the
    median of `repeats` rounds."""
    try:
        return _perf_train(methods, resolutions, paths, batch_size, steps, warmup, repeats, device_name, width, say)
    finally:
        _stop_workers()


def _perf_train(methods, resolutions, paths, batch_size, steps, warmup, repeats, device_name, width, say):
    device = devices.resolve(device_name)
    paths = paths or default_paths(device)
    for name in methods:
        if name not in METHODS:
            raise BenchError(f"--methods {name}: unknown method; known: {', '.join(sorted(METHODS))}")
    for path in paths:
        if path not in PATHS:
            raise BenchError(f"--paths {path}: unknown fast path; use {', '.join(PATHS)}")
    say(f"bench perf train: batch {batch_size}, width {width}, {steps} steps (+{warmup} warm-up) x{repeats} "
        f"rounds, device {_device_name(device)}, {torch.get_num_threads()} torch threads")
    say(f"  {'method':<9}{'px':>4} {'path':<14}{'steps/s':>9}{'images/s':>10}{'vs plain':>10}{'vs fp32':>9}"
        f"{'GFLOP/step':>12}{'TFLOP/s':>9}{'of peak':>9}")
    rows = []
    for method in methods:
        for resolution in resolutions:
            # the loops get the recipe and build the data themselves: a tensor sent to a worker process moves into
            # shared memory, and this process's training then ran 3x slower until the worker ended (measured on 2
            # cores: a 16 px DCGAN 18.8 -> 6.1 steps/s after one ImageSet was sent)
            data = (max(4 * batch_size, 512), 3, resolution, method)
            flops = step_flops(method, synthetic_data(*data), batch_size, device, width)
            runs: dict[str, list[float]] = {p: [] for p in paths}
            plain: list[float] = []
            order = (["plain"] if method in PLAIN else []) + list(paths)
            for i in range(repeats):
                for name in order[i % len(order):] + order[:i % len(order)]:
                    if name == "plain":
                        plain.append(plain_loop(method, data, batch_size, device, width, warmup, steps))
                    else:
                        runs[name].append(bench_loop(method, data, batch_size, device, width, warmup, steps, name))
            plain_rate = statistics.median(plain) if plain else None
            fp32 = statistics.median(runs["fp32"]) if "fp32" in runs else None
            if plain_rate is not None:
                rows.append(_row(say, method, resolution, "plain loop", plain_rate, batch_size, 1.0, None, flops,
                                 gpu_peak(device, False)))
            for path in paths:
                rate = statistics.median(runs[path])
                rows.append(_row(say, method, resolution, path, rate, batch_size,
                                 rate / plain_rate if plain_rate else None, rate / fp32 if fp32 else None, flops,
                                 gpu_peak(device, PATHS[path].get("bf16", False))))
    if device.type == "cpu":
        _say_costs(say, rows, methods)
    if device.type == "cuda" and gpu_peak(device, False) is None:
        say(f"  (no peak figure for {torch.cuda.get_device_name(device)} in bench/perf.py PEAKS: the fraction is "
            "left out)")
    return rows


def _say_costs(say, rows: list[dict], methods: list[str]) -> None:
    """Under a CPU table: what each row ran with, and what the portable default costs against the native path."""
    if any(m in PLAIN for m in methods):
        plain = _worker("plain").submit(plain_settings).result()
        say(f"  plain loop: a hand-written loop in its own process with torch's defaults ({plain['threads']} threads, "
            f"oneDNN {'on' if plain['onednn'] else 'off'}, {plain['capability']} kernels, bench's knobs "
            f"{'set' if plain['pinned'] else 'unset'}), as a user runs it")
    say("  fp32 and the other paths but portable: bench with this machine's kernels (numerics.portable: false, "
        "BENCH_NUMERICS=native); portable: bench's default, the same bits on every CPU bench was checked on")
    model = numerics.cpu_info()[0]
    for row in rows:
        if row["path"] == "portable" and row["vs_fp32"] is not None:
            say(f"  portable costs on this CPU ({model}): {row['method']} {row['resolution']} px at "
                f"{row['vs_fp32']:.2f}x the native path" + (f", {row['vs_plain']:.2f}x the plain loop"
                                                             if row["vs_plain"] is not None else ""))


def _row(say, method, resolution, path, rate, batch_size, vs_plain, vs_fp32, flops, peak) -> dict:
    tflops = rate * flops / 1e12
    row = {"method": method, "resolution": resolution, "path": path, "steps_per_s": rate,
           "images_per_s": rate * batch_size, "vs_plain": vs_plain, "vs_fp32": vs_fp32,
           "gflop_per_step": flops / 1e9, "tflop_per_s": tflops, "of_peak": tflops / peak if peak else None}

    def ratio(x):
        return f"{x:.2f}x" if x is not None else "-"

    share = f"{100 * row['of_peak']:.1f}%" if peak else "-"
    say(f"  {method:<9}{resolution:>4} {path:<14}{rate:>9.2f}{rate * batch_size:>10.1f}{ratio(vs_plain):>10}"
        f"{ratio(vs_fp32):>9}{flops / 1e9:>12.3g}{tflops:>9.3g}{share:>9}")
    return row


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({devices.cpu_cores()} cores)"


def perf_suite(trials: int, steps: int, resolution: int, batch_size: int, width: int, parallel: int,
               per_gpu: list[int], device_name: str, say: Callable[[str], None] = print) -> list[dict]:
    """Trials/hour of one suite of DCGAN trials on the synthetic dataset: sequential (the local executor), then
    `--parallel` (on a GPU: one trial per GPU, then K for each K of `per_gpu`), each from an empty runs folder,
    without MLflow."""
    # the suite runner (and the records, evaluation and executors it brings) only for `perf suite`: `perf train`
    # stays torch-only
    from bench.runner import run_trials

    device = devices.resolve(device_name)
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
        modes += [(f"--parallel {gpus * k} --per-gpu {k}", Placement("parallel", gpus * k, k)) for k in per_gpu
                  if k > 1]
    elif parallel > 1:
        modes.append((f"--parallel {parallel}", Placement("parallel", parallel, 1)))
    say(f"bench perf suite: {trials} dcgan trials x {steps} steps, {resolution} px, batch {batch_size}, width "
        f"{width}, device {device}, {devices.cpu_cores()} CPU cores")
    rows = []
    quiet = Console(stream=io.StringIO(), live=False, milestones=False)  # the table only: no worker lines, no summary
    for name, placement in modes:
        with tempfile.TemporaryDirectory() as tmp:
            options = RunOptions(runs_root=Path(tmp), tracking_uri=None, quiet_workers=True)
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
