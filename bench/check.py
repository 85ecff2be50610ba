"""`bench check`: a self-test of a machine for bench: every method trains on the device with every numerics path,
the fp32 numbers agree with the CPU, deterministic trials repeat to the bit, and how fast it all runs.

Each row is ok, FAIL (with why) or skipped (with why); nothing is faked. The rows, in the order they run:

    train          every method x two resolutions x every numerics path the device runs (bench/perf.py's PATHS):
                   a few steps, every loss finite; s/step after the first step, the trial's peak GPU memory
    cpu            (CUDA) the deterministic fp32 trial on the device against the same trial on the CPU, both drawing
                   their random numbers on the CPU (`CpuDraws`): the mean of each loss over the steps within TOLERANCE
    deterministic  numerics.deterministic: the same trial twice gives the same losses and weights, bit for bit
    throughput     `bench perf train`'s rows: steps/s, images/s, TFLOP/s and the fraction of the GPU's dense peak
    suite          `bench perf suite`'s rows: trials/hour sequential, --parallel, and --per-gpu 2 and 4 on a GPU
    inception      images/s of the FID feature path, when the Inception weights are installed
    train (compile)  the compile and all paths come last: compiling every method takes the longest

Rows are written to check.json and check.md as they come, so a run stopped by its time limit leaves what it
did; `budget_s` skips (with that reason) the rows a run has no time left for. Imports torch, pydantic, yaml and
bench's training path and suite runner only, never MLflow, Optuna or clean-fid: a GPU box with torch alone (and the
wheels of scripts/gpu-check.sh) runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from bench import devices, perf
from bench.errors import BenchError
from bench.methods import METHODS
from bench.suite import LogSpec
from bench.train import Trainer

# |device - cpu| <= TOLERANCE * max(|cpu|, 0.1) for the mean of each loss over the steps. Both sides draw the same
# random numbers and compute in fp32 (TF32 off: the trial is deterministic), so only summation order and the GPU's
# kernels differ; GAN training amplifies such rounding from step to step, hence 1% after a few steps, not 1e-6.
TOLERANCE = 0.01


@dataclass(frozen=True)
class Plan:
    resolutions: tuple[int, int]
    batch_size: int
    width: int
    steps: int  # training steps of each train, cpu and deterministic row
    perf_resolution: int  # bench perf train: dcgan at this resolution, at perf's batch size and width
    perf_batch_size: int
    perf_width: int
    perf_steps: int
    perf_warmup: int
    perf_repeats: int
    suite_trials: int
    suite_steps: int
    suite_parallel: int  # worker processes of the CPU's --parallel row (a GPU runs one per GPU, then 2 and 4 per GPU)
    inception_images: int  # 0: the inception row is skipped


FULL = Plan(resolutions=(32, 64), batch_size=16, width=32, steps=5, perf_resolution=64, perf_batch_size=64,
            perf_width=64, perf_steps=30, perf_warmup=5, perf_repeats=3, suite_trials=8, suite_steps=200,
            suite_parallel=2, inception_images=500)
QUICK = Plan(resolutions=(16, 32), batch_size=4, width=8, steps=2, perf_resolution=16, perf_batch_size=16,
             perf_width=8, perf_steps=5, perf_warmup=1, perf_repeats=1, suite_trials=2, suite_steps=5, suite_parallel=1,
             inception_images=0)
CPU_SKIPS = {  # the paths a CPU does not run, and why
    "bf16": "a GPU path: bf16 autocast on the CPU is slower than fp32 and tells nothing about a GPU",
    "compile": "a GPU path: compiling each method on the CPU takes minutes",
    "all": "a GPU path (channels_last + bf16 + compile)",
}
SLOW_PATHS = ("compile", "all")


class CpuDraws(TorchFunctionMode):
    """Every random draw a trial makes from a generator (latents, batch order, penalties' mixing, image pools) and
    every dropout mask, made on the CPU from generators seeded alike and then moved to the draw's device: a trial on
    a GPU then sees the numbers the same trial sees on the CPU (its own generator would be CUDA's Philox, other
    numbers altogether), and their losses can be compared."""

    DRAWS = (torch.randn, torch.rand, torch.randint, torch.randperm, torch.multinomial)

    def __init__(self, seed: int):
        super().__init__()
        self.draws, self.masks = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self.DRAWS and kwargs.get("generator") is not None:
            device = kwargs.pop("device", None) or kwargs["generator"].device
            kwargs["generator"] = self.draws
            if func is torch.multinomial:  # its weights are a tensor on the device
                args = (args[0].cpu(), *args[1:])
            return func(*args, **kwargs).to(device)
        if func is F.dropout:
            x, p = args[0], kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            if kwargs.get("training", args[2] if len(args) > 2 else True) and p > 0:
                keep = torch.rand(x.shape, generator=self.masks) >= p
                return x * keep.to(device=x.device, dtype=x.dtype) / (1 - p)
        return func(*args, **kwargs)


class LossLog:
    """The tracker of a checked trial: the losses of every step (the trial logs every step)."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.steps.append({k: v for k, v in metrics.items() if k.startswith("loss")})

    def log_png(self, image, artifact_path: str) -> None:
        pass


def train_steps(method: str, resolution: int, path: str, device_name: str, plan: Plan, deterministic: bool = False,
                cpu_draws: bool = False) -> dict:
    """Train `plan.steps` steps of `method` on `path`: the losses of every step, a sha256 of every network's
    weights, s/step after the first step, peak GPU memory (MiB), or the error that stopped it."""
    device = torch.device(device_name)
    trial = perf.perf_trial(method, resolution, plan.batch_size, plan.width, device, path)
    trial = trial.model_copy(update={
        "numerics": trial.numerics.model_copy(update={"deterministic": deterministic}),
        "log": LogSpec(every=1, samples_every=10**9, checkpoint_every=10**9)})
    data = perf.synthetic_data(8 * plan.batch_size, 3, resolution, method)
    log = LossLog()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with CpuDraws(trial.seed) if cpu_draws else contextlib.nullcontext():
            trainer = Trainer(trial, data, device, tracker=log)
            trainer.run(stop_after=1)
            perf.sync(device)
            start = time.perf_counter()
            trainer.run(stop_after=plan.steps)
            perf.sync(device)
    except Exception as err:  # the check reports what stops a trial, whatever it is
        return {"error": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}", "losses": log.steps}
    digest = hashlib.sha256()
    for name, net in sorted(trainer.method.nets.items()):
        for key, tensor in sorted(net.state_dict().items()):
            digest.update(f"{name}.{key}".encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"losses": log.steps, "weights": digest.hexdigest(), "peak_mib": peak,
            "s_per_step": (time.perf_counter() - start) / max(plan.steps - 1, 1)}


def row(section: str, method: str = "-", px: int | None = None, path: str = "-", status: str = "ok",
        detail: str = "", **figures) -> dict:
    return {"section": section, "method": method, "px": px, "path": path, "status": status, "detail": detail,
            **figures}


class Check:
    """The rows of one `bench check`, printed and written to `out` as they come."""

    def __init__(self, device: torch.device, plan: Plan, out: Path, budget_s: float | None,
                 say: Callable[[str], None]):
        self.device, self.plan, self.out, self.say = device, plan, out, say
        self.deadline = time.monotonic() + budget_s if budget_s else None
        self.rows: list[dict] = []
        self.header = {"device": device_label(device), "torch": torch.__version__, "python": platform.python_version(),
                       "plan": "quick" if plan == QUICK else "full", "settings": asdict(plan), "tolerance": TOLERANCE,
                       "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def add(self, entry: dict) -> None:
        self.rows.append(entry)
        px = entry["px"] if entry["px"] is not None else "-"
        self.say(f"  {entry['section']:<13} {entry['method']:<14}{px:>4} {entry['path']:<14}{entry['status']:<8} "
                 f"{summary(entry)}")
        self.write()  # after every row: a run stopped by a time limit leaves all it did

    def skip_if_late(self, section: str, method: str = "-", px: int | None = None, path: str = "-") -> bool:
        if self.out_of_time():
            self.add(row(section, method, px, path, "skipped", "the time budget (--budget) was spent"))
            return True
        return False

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        counts = {s: sum(r["status"] == s for r in self.rows) for s in ("ok", "FAIL", "skipped")}
        (self.out / "check.json").write_text(json.dumps({**self.header, "counts": counts, "rows": self.rows},
                                                        indent=1, default=str))
        (self.out / "check.md").write_text(markdown(self.header, counts, self.rows))


def summary(entry: dict) -> str:
    """The figures of a row in a few words, then its detail."""
    parts = []
    for key, fmt in (("s_per_step", "{:.4f} s/step"), ("steps_per_s", "{:.2f} steps/s"),
                     ("images_per_s", "{:.1f} images/s"), ("tflop_per_s", "{:.3g} TFLOP/s"),
                     ("of_peak", "{:.1%} of peak"), ("vs_plain", "{:.2f}x plain loop"), ("peak_mib", "{:.0f} MiB"),
                     ("max_rel_diff", "max rel. diff {:.2e}"), ("trials_per_hour", "{:.1f} trials/hour"),
                     ("vs_sequential", "{:.2f}x sequential")):
        if entry.get(key) is not None:
            parts.append(fmt.format(entry[key]))
    return ", ".join(parts + ([entry["detail"]] if entry["detail"] else []))


def markdown(header: dict, counts: dict, rows: list[dict]) -> str:
    lines = [f"# bench check: {header['device']}", "",
             f"{header['started']}; torch {header['torch']}, Python {header['python']}; {header['plan']} plan "
             f"({', '.join(f'{k} {v}' for k, v in header['settings'].items())}); "
             f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['FAIL']} FAILED.", "",
             "| section | method | px | path | status | figures |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['section']} | {r['method']} | {r['px'] or '-'} | {r['path']} | {r['status']} | "
                     f"{summary(r).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    return f"{device} ({platform.processor() or platform.machine()}, {devices.cpu_cores()} cores)"


def paths_for(device: torch.device) -> list[str]:
    return [p for p in perf.PATHS if device.type == "cuda" or p not in CPU_SKIPS]


def train_section(check: Check, paths: list[str]) -> None:
    for method in sorted(METHODS):
        for px in check.plan.resolutions:
            for path in paths:
                if check.skip_if_late("train", method, px, path):
                    continue
                result = perf.in_path_process(path, check.device, train_steps, method, px, path, str(check.device),
                                              check.plan)
                check.add(train_row(method, px, path, result))


def train_row(method: str, px: int, path: str, result: dict) -> dict:
    if "error" in result:
        return row("train", method, px, path, "FAIL", result["error"])
    last = result["losses"][-1] if result["losses"] else {}
    shown = ", ".join(f"{k} {v:.3g}" for k, v in last.items())
    return row("train", method, px, path, s_per_step=result["s_per_step"], peak_mib=result["peak_mib"],
               detail=f"{len(result['losses'])} steps, losses finite ({shown})")


def cpu_section(check: Check) -> None:
    if check.device.type != "cuda":
        check.add(row("cpu", status="skipped", detail="the device is the CPU: the trial would be held against itself"))
        return
    px = check.plan.resolutions[0]
    for method in sorted(METHODS):
        if check.skip_if_late("cpu", method, px, "fp32"):
            continue
        here = train_steps(method, px, "fp32", str(check.device), check.plan, deterministic=True, cpu_draws=True)
        there = perf.in_path_process("portable", "cpu", train_steps, method, px, "portable", "cpu", check.plan, False,
                                     True)
        check.add(agreement_row(method, px, here, there))


def agreement_row(method: str, px: int, here: dict, there: dict) -> dict:
    error = here.get("error") or there.get("error")
    if error:
        return row("cpu", method, px, "fp32", "FAIL", f"did not train: {error}")
    worst, where = 0.0, ""
    for name in sorted({name for step in here["losses"] for name in step}):
        # the mean over the steps that log it (a lazy regulariser, StyleGAN's R1, is not computed at every step)
        a, b = (statistics.mean(s[name] for s in run["losses"] if name in s) for run in (here, there))
        diff = abs(a - b) / max(abs(b), 0.1)
        if diff >= worst:
            worst, where = diff, f"{name}: {a:.6g} here, {b:.6g} on the CPU"
    status = "ok" if worst <= TOLERANCE else "FAIL"
    return row("cpu", method, px, "fp32", status, f"worst {where} (tolerance {TOLERANCE:g})", max_rel_diff=worst)


def deterministic_section(check: Check) -> None:
    px, path = check.plan.resolutions[0], "fp32" if check.device.type == "cuda" else "portable"
    for method in sorted(METHODS):
        if check.skip_if_late("deterministic", method, px, path):
            continue
        first, second = (perf.in_path_process(path, check.device, train_steps, method, px, path, str(check.device),
                                              check.plan, True) for _ in range(2))
        if "error" in first or "error" in second:
            check.add(row("deterministic", method, px, path, "FAIL", first.get("error") or second["error"]))
        elif first["losses"] != second["losses"] or first["weights"] != second["weights"]:
            check.add(row("deterministic", method, px, path, "FAIL", "two runs differ: "
                          + ("losses differ" if first["losses"] != second["losses"] else "weights differ")))
        else:
            check.add(row("deterministic", method, px, path, detail="two runs: identical losses and weights"))


def throughput_section(check: Check) -> None:
    p = check.plan
    if check.skip_if_late("throughput", "dcgan", p.perf_resolution):
        return
    try:
        rows = perf.perf_train(["dcgan"], [p.perf_resolution], None, p.perf_batch_size, p.perf_steps, p.perf_warmup,
                               p.perf_repeats, str(check.device), p.perf_width, say=lambda line: None)
    except Exception as err:  # the check reports what stops a benchmark, whatever it is
        check.add(row("throughput", "dcgan", p.perf_resolution, "-", "FAIL", f"{type(err).__name__}: {err}"))
        return
    for r in rows:
        check.add(row("throughput", r["method"], r["resolution"], r["path"], steps_per_s=r["steps_per_s"],
                      images_per_s=r["images_per_s"], tflop_per_s=r["tflop_per_s"], of_peak=r["of_peak"],
                      vs_plain=r["vs_plain"] if r["path"] != "plain loop" else None))


def suite_section(check: Check) -> None:
    p = check.plan
    if check.skip_if_late("suite", "dcgan", p.resolutions[0]):
        return
    try:
        rows = perf.perf_suite(p.suite_trials, p.suite_steps, p.resolutions[0], p.batch_size, p.width,
                               p.suite_parallel, [2, 4],
                               str(check.device), say=lambda line: None)
    except Exception as err:  # the check reports what stops a benchmark, whatever it is
        numerics = "portable" if check.device.type == "cpu" else "fp32"  # a suite's default numerics on the device
        check.add(row("suite", "dcgan", p.resolutions[0], numerics, "FAIL", f"{type(err).__name__}: {err}"))
        return
    for r in rows:
        check.add(row("suite", "dcgan", p.resolutions[0], r["mode"], trials_per_hour=r["trials_per_hour"],
                      vs_sequential=r["trials_per_hour"] / rows[0]["trials_per_hour"],
                      detail=f"{p.suite_trials} trials x {p.suite_steps} steps in {r['wall_s']:.1f} s"))
    if check.device.type != "cuda":
        if p.suite_parallel < 2:
            check.add(row("suite", path="--parallel 2", status="skipped", detail="--quick leaves it out (starting "
                          "worker processes takes 10-40 s on a small CPU)"))
        check.add(row("suite", path="--per-gpu", status="skipped", detail="packing trials onto a GPU needs one"))


def inception_section(check: Check) -> None:
    # the feature network only for this row: the rest of the check needs no metric code
    from bench.metrics.features import FeatureExtractor
    from bench.metrics.inception import checked_weights, load_feature_network

    n = check.plan.inception_images
    if not n:
        check.add(row("inception", status="skipped", detail="--quick leaves it out (seconds an image on a CPU)"))
        return
    try:
        checked_weights()
    except BenchError as err:
        check.add(row("inception", status="skipped", detail=str(err)))
        return
    if check.skip_if_late("inception"):
        return
    net, _ = load_feature_network(check.device)
    extract = FeatureExtractor(net, "clean", check.device)
    images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batches = list(images.split(50))
    extract(batches[:1])  # TorchScript profiles its first calls, the GPU warms up: not timed
    start = time.perf_counter()
    features = extract(batches).features
    rate = n / (time.perf_counter() - start)
    status = "ok" if features.shape == (n, 2048) and math.isfinite(float(features.sum())) else "FAIL"
    check.add(row("inception", path="clean", status=status, images_per_s=rate,
                  detail=f"{n} images of 64 px, resized to 299, batches of 50"))


def run_check(device_name: str, quick: bool, out: Path, budget_s: float | None = None,
              say: Callable[[str], None] = print) -> int:
    """Run every section, write check.json and check.md into `out`; 0 when no row failed, else 1 (each failure
    named in one line: section, method, resolution, path and why)."""
    device = devices.resolve(device_name)
    check = Check(device, QUICK if quick else FULL, out, budget_s, say)
    say(f"bench check: {check.header['device']}, torch {torch.__version__}, {check.header['plan']} plan")
    say(f"  {'section':<13} {'method':<14}{'px':>4} {'path':<14}{'status':<8} figures")
    paths = paths_for(device)
    for path in perf.PATHS:
        if path not in paths:
            check.add(row("train", path=path, status="skipped", detail=CPU_SKIPS[path]))
    if device.type != "cuda":
        check.add(row("memory", status="skipped", detail="peak memory per trial is the GPU's "
                      "(torch.cuda.max_memory_allocated); a CPU has no such counter"))
    sections = [lambda c: train_section(c, [p for p in paths if p not in SLOW_PATHS]), cpu_section,
                deterministic_section, throughput_section, suite_section, inception_section,
                lambda c: train_section(c, [p for p in paths if p in SLOW_PATHS])]
    for section in sections:
        section(check)
    counts = {s: sum(r["status"] == s for r in check.rows) for s in ("ok", "FAIL", "skipped")}
    say(f"bench check: {counts['ok']} ok, {counts['skipped']} skipped, {counts['FAIL']} FAILED; "
        f"{out / 'check.json'} and {out / 'check.md'}")
    for r in check.rows:
        if r["status"] == "FAIL":
            say(f"FAILED: {r['section']} {r['method']} {r['px'] or '-'} px, path {r['path']}: {r['detail']}")
    return 1 if counts["FAIL"] else 0


def run_numerics(out: Path, against: list[Path], say: Callable[[str], None] = print) -> int:
    """`bench check --numerics`: probe this machine's bits (bench/probe.py), write out/numerics.json, and hold it
    against the committed references and `against`; 0 when every shared entry is identical, else 1."""
    from bench import probe  # the dispatch recorder: only for this row

    say(f"bench check --numerics: {probe.machine()['cpu']} ({probe.machine()['isa']}), torch {torch.__version__}")
    here = probe.run_probe(say=say)
    out.mkdir(parents=True, exist_ok=True)
    (out / "numerics.json").write_text(json.dumps(here, indent=1, sort_keys=True) + "\n")
    others = probe.references()
    for path in against:
        try:
            others[str(path)] = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise BenchError(f"--against {path}: not a probe written by bench check --numerics ({err})") from None
    failed = 0
    for name, other in others.items():
        compared, differ = probe.compare(here, other)
        cpu, made_with = other.get("machine", {}).get("cpu", "?"), other.get("machine", {}).get("torch")
        if made_with != torch.__version__:
            say(f"  not compared with {name} ({cpu}): made with torch {made_with}, this is {torch.__version__} "
                "(another build computes other bits)")
            continue
        if not compared:
            say(f"  not compared with {name} ({cpu}): no entry in common")
            continue
        if not differ:
            say(f"  identical to {name} ({cpu}): {compared} entries")
            continue
        failed += 1
        say(f"  DIFFERS from {name} ({cpu}): {len(differ)} of {compared} entries")
        for key in differ[:12]:
            say(f"    {probe.who_calls(here, key)}")
        if len(differ) > 12:
            say(f"    ... and {len(differ) - 12} more (all in {out / 'numerics.json'})")
    say(f"bench check --numerics: {len(here['fixed'])} fixed, {len(here['recorded'])} recorded ops and "
        f"{len(here['trained'])} trainings; {out / 'numerics.json'}")
    return 1 if failed else 0
