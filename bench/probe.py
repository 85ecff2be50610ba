"""`bench check --numerics`: the bits of every operation bench's training and sampling call, to diff two machines.

Two parts, each a sha256 (16 hex digits) per entry:

    fixed     the operations of the training steps at fixed shapes (linear, mm, conv, norms, activations, losses,
              reductions, the optimisers, seeded RNG): the same entries as ../shared/tools/numerics_probe.py, so a
              machine measured with that tool compares too
    recorded  every aten operation that each registered method calls in two training steps and one sampling call
              at 16 px (a TorchDispatchMode lists the op, the shapes, strides and dtypes of its tensors and its
              other arguments), replayed on inputs made from integers: once signed in [-1, 1), once positive in
              (0, 1], each with the global RNG seeded. What an op computes is then the same input bits everywhere,
              and only the kernel can make two machines differ

Every input is a fixed integer pattern (no RNG), so two machines with the same torch build give the same entry
exactly when their kernels compute the same bits. `reference_differences` holds a probe against the references
committed in bench/references/numerics/ (the machines the portable numerics were checked on); `bench check
--numerics` prints which entries differ and which methods call them.

Entries of the fixed part that bench's training path does not call, because they are known to depend on the CPU,
are in AVOIDED: they stay in the output (they show what the portable path avoids), never in a verdict.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from bench import numerics, perf, portable
from bench.data import load_dataset, resize
from bench.methods import METHODS
from bench.suite import Numerics
from bench.train import Trainer

REFERENCES = Path(__file__).parent / "references" / "numerics"
# torch's Tensor.sqrt goes to MKL's vector math, whose result depends on the CPU (bench/methods/optim.py); the
# default and foreach Adams take it. Training never calls them: bench's optimisers are fused Adam and an RMSprop
# whose root is 1/rsqrt.
AVOIDED = ("sqrt_abs[64x1024].fwd", "sqrt_abs[64x1024].bwd0", "adam_default[4096x5]", "adam_foreach[4096x5]")
RESOLUTION, BATCH, WIDTH, STEPS = 16, 8, 8, 2
VIEWS = {"view", "detach", "t", "unsqueeze", "squeeze", "select", "slice", "transpose", "expand", "as_strided",
         "split", "alias", "permute", "reshape", "_unsafe_view", "unbind"}
UNINITIALIZED = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_", "set_"}


def pattern(n: int, offset: int = 0, positive: bool = False) -> torch.Tensor:
    """n float32 values from an integer hash: the same bits on every machine, irregular enough to exercise rounding."""
    i = torch.arange(n, dtype=torch.int64) + offset
    v = ((i * 2654435761 + 12345) % 65536).to(torch.float32)
    return (v + 1) / 65536.0 if positive else v / 32768.0 - 1.0


def digest(*values: Any) -> str:
    """sha256 of tensors (NaNs made one NaN: their payload is no kernel's promise), numbers and strings."""
    h = hashlib.sha256()
    for value in values:
        if isinstance(value, torch.Tensor):
            a = value.detach().cpu().contiguous()
            if a.is_floating_point():
                a = torch.where(torch.isnan(a), torch.full_like(a, float("nan")), a)
            h.update(str((a.dtype, tuple(a.shape))).encode())
            h.update(a.numpy().tobytes() if a.dtype != torch.bfloat16 else a.view(torch.int16).numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()[:16]


# ---- the recorded part ---------------------------------------------------------------------------------------------
def describe(value: Any) -> Any:
    """A JSON-able description of one argument, enough to rebuild an input of the same layout."""
    if isinstance(value, torch.Tensor):
        spec = {"dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape),
                "stride": list(value.stride()), "offset": value.storage_offset()}
        if not value.is_floating_point() and value.numel():
            spec["range"] = [int(value.min()), int(value.max())]  # integer inputs: indices, labels, masks
        return {"tensor": spec}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, torch.Generator):
        return {"generator": True}
    if isinstance(value, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
        return {"torch": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"repr": repr(value)}


def label(op: str, args: Any) -> str:
    """aten.convolution.default(f32[8,3,16,16], ...): what a person reads in a diff."""
    def one(d: Any) -> str:
        if isinstance(d, dict) and "tensor" in d:
            t = d["tensor"]
            contiguous = t["stride"] == _contiguous_strides(t["shape"])
            return f"{t['dtype']}[{','.join(map(str, t['shape']))}]" + ("" if contiguous else "(strided)")
        if isinstance(d, list):
            return "[" + ", ".join(one(v) for v in d) + "]"
        if isinstance(d, dict):
            return next(iter(d.values())) if "torch" in d or "repr" in d else "generator"
        return repr(d)

    return f"{op}({', '.join(one(a) for a in args)})"


def _contiguous_strides(shape: list[int]) -> list[int]:
    strides, running = [], 1
    for size in reversed(shape):
        strides.insert(0, running)
        running *= max(size, 1)
    return strides


class Recorder(TorchDispatchMode):
    """Lists each distinct (op, argument layout) the code under it calls, in call order."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, dict] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001  (torch's protocol)
        kwargs = kwargs or {}
        name = func.name().split(".")[0].removeprefix("aten::")
        if func.namespace != "aten" or name in VIEWS or name in UNINITIALIZED:
            return func(*args, **kwargs)  # the profiler's markers; views compute nothing; empty memory is garbage
        spec = {"op": str(func), "args": describe(list(args)), "kwargs": {k: describe(v) for k, v in kwargs.items()}}
        text = json.dumps(spec, sort_keys=True)
        key = f"{spec['op']}#{hashlib.sha256(text.encode()).hexdigest()[:10]}"
        self.calls.setdefault(key, spec)
        return func(*args, **kwargs)


def record(methods: list[str]) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """(op key -> spec, method -> the keys it calls) over two training steps and one sampling call per method."""
    calls: dict[str, dict] = {}
    used: dict[str, list[str]] = {}
    device = torch.device("cpu")
    for method in methods:
        trial = perf.perf_trial(method, RESOLUTION, BATCH, WIDTH, device, "portable")
        data = perf.synthetic_data(4 * BATCH, 3, RESOLUTION, method)
        trainer = Trainer(trial, data, device)
        recorder = Recorder()
        with recorder:
            trainer.run(stop_after=STEPS)
            if METHODS[method].task != "translation":
                with trainer.method.eval_mode():
                    trainer.method.sample(4, torch.Generator().manual_seed(0))
        calls.update(recorder.calls)
        used[method] = list(recorder.calls)
    return calls, used


def rebuild(d: Any, positive: bool, counter: list[int]) -> Any:
    """An argument as `describe` wrote it, its tensors filled from `pattern`."""
    if isinstance(d, dict) and "tensor" in d:
        t = d["tensor"]
        dtype = getattr(torch, t["dtype"])
        size = t["offset"] + 1 + sum((n - 1) * s for n, s in zip(t["shape"], t["stride"], strict=True)) \
            if all(t["shape"]) else t["offset"]
        counter[0] += 1
        if dtype == torch.bool:
            flat = pattern(size, counter[0]) > 0
        elif not dtype.is_floating_point:
            low, high = t.get("range", [0, 0])
            flat = (low + torch.arange(size) % (high - low + 1)).to(dtype)
        else:
            flat = pattern(size, counter[0], positive).to(dtype)
        return flat.as_strided(t["shape"], t["stride"], t["offset"])
    if isinstance(d, list):
        return [rebuild(v, positive, counter) for v in d]
    if isinstance(d, dict) and "generator" in d:
        return torch.Generator().manual_seed(1234)
    if isinstance(d, dict) and "torch" in d:
        text = d["torch"]
        if text.startswith("torch."):
            return getattr(torch, text.removeprefix("torch."))
        return torch.device(text)
    if isinstance(d, dict) and "repr" in d:
        raise TypeError(f"an argument bench cannot rebuild: {d['repr']}")
    return d


def _tensors(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, torch.Tensor) or isinstance(value, (int, float, bool)):
        yield value


def replay(spec: dict) -> str:
    """The op on signed and on positive pattern inputs: a digest of its outputs and of its (maybe mutated) inputs."""
    op = _resolve(spec["op"])
    parts = []
    for positive in (False, True):
        counter = [0]
        torch.manual_seed(1234)  # ops that draw from the global generator (dropout's bernoulli, randperm)
        try:
            args = rebuild(spec["args"], positive, counter)
            kwargs = {k: rebuild(v, positive, counter) for k, v in spec["kwargs"].items()}
            out = op(*args, **kwargs)
        except Exception as err:  # an op that refuses pattern inputs: the refusal is the same everywhere
            parts.append(f"error: {type(err).__name__}")
            continue
        parts.append(digest(*_tensors(out), *_tensors(args), *_tensors(list(kwargs.values()))))
    return digest(*parts)


def _resolve(name: str) -> Callable:
    """aten.addmm.default -> torch.ops.aten.addmm.default."""
    namespace, op, overload = name.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), op), overload)


# ---- the fixed part (the same entries as ../shared/tools/numerics_probe.py) --------------------------------------
def _inputs(*shape: int, scale: float = 1.0, offset: int = 0) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    return (pattern(n, offset) * scale).reshape(shape).contiguous()


def _hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


def _forward_backward(out: dict[str, str]) -> Callable:
    """fwd_bwd(name, fn, *tensors): the digests of fn's output and of its gradients into `out`."""
    def fwd_bwd(name: str, fn: Callable, *tensors: torch.Tensor) -> None:
        ts = [t.clone().requires_grad_(True) for t in tensors]
        y = fn(*ts)
        out[name + ".fwd"] = _hash(y)
        for k, gr in enumerate(torch.autograd.grad(y, ts, _inputs(*y.shape, scale=0.5, offset=7))):
            out[f"{name}.bwd{k}"] = _hash(gr)
    return fwd_bwd


def products() -> dict[str, str]:
    """The portable kernels on products they split over a trial's threads (M*N*K of at least
    portable.PARALLEL_FROM: their bits depend on the split) and on one they do not, forward and backward, under a
    portable trial's numerics: the emulated CPUs check these, as training's products at test sizes stay small."""
    out: dict[str, str] = {}
    fwd_bwd = _forward_backward(out)
    with numerics.trial_numerics(Numerics(), torch.device("cpu")):
        fwd_bwd("portable:conv2d[32,32,16->64,k4s2p1]", lambda x, w: F.conv2d(x, w, stride=2, padding=1),
                _inputs(32, 32, 16, 16), _inputs(64, 32, 4, 4, scale=0.1, offset=13))
        fwd_bwd("portable:conv_t2d[32,64,8->32,k4s2p1]", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1),
                _inputs(32, 64, 8, 8), _inputs(64, 32, 4, 4, scale=0.1, offset=17))
        fwd_bwd("portable:linear[256x1024->256]", F.linear, _inputs(256, 1024), _inputs(256, 1024, scale=0.05,
                                                                                     offset=3))
        fwd_bwd("portable:conv2d[8,8,8->8,k3s1p1]", lambda x, w: F.conv2d(x, w, padding=1), _inputs(8, 8, 8, 8),
                _inputs(8, 8, 3, 3, scale=0.1, offset=13))
    return out


def fixed() -> dict[str, str]:
    out: dict[str, str] = {}
    h = _hash
    fwd_bwd = _forward_backward(out)

    with portable.aten_kernels():  # ATen's own (MKL under MKL_CBWR, its im2col): the entries of the shared tool
        _layers(fwd_bwd, "")
    _layers(fwd_bwd, "portable:")  # bench's kernels (OpenBLAS, bench/portable.py), which training takes
    x, w = _inputs(16, 8, 16, 16), _inputs(16, 8, 4, 4, scale=0.1, offset=19)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(F.conv2d(x, w, stride=2, padding=1).square().sum(), x, create_graph=True)
    out["portable:conv2d_double_backward[16,8,16->16,k4s2p1]"] = h(torch.autograd.grad(grad.square().sum(), x)[0])
    for m, k, n in [(64, 64, 64), (256, 64, 512), (512, 64, 256), (1, 64, 256), (100, 64, 256), (1024, 64, 512)]:
        a, bm = _inputs(m, k), _inputs(k, n, offset=11)
        out[f"mm[{m}x{k}x{n}]"] = h(a @ bm)
        out[f"mm_t[{m}x{k}x{n}]"] = h(a.t().contiguous().t() @ bm)
    x, wb = _inputs(64, 32, 8, 8), _inputs(32, offset=1) + 1.5
    fwd_bwd("batch_norm[64,32,8,8]", lambda x, w: F.batch_norm(x, None, None, w, None, training=True), x, wb)
    fwd_bwd("instance_norm[4,32,8,8]", F.instance_norm, _inputs(4, 32, 8, 8))
    fwd_bwd("layer_norm[64,256]", lambda x: F.layer_norm(x, (256,)), _inputs(64, 256))
    big = _inputs(64, 1024, scale=3.0)
    for name, fn in [("tanh", torch.tanh), ("sigmoid", torch.sigmoid), ("leaky_relu", lambda t: F.leaky_relu(t, 0.2)),
                     ("relu", F.relu), ("softplus", F.softplus), ("exp", torch.exp),
                     ("log1p_abs", lambda t: torch.log1p(t.abs())), ("sqrt_abs", lambda t: (t.abs() + 1e-3).sqrt()),
                     ("pow2", lambda t: t.pow(2))]:
        fwd_bwd(f"{name}[64x1024]", fn, big)
    logits, target = _inputs(64, scale=4.0), (torch.arange(64) % 2).float()
    fwd_bwd("bce_with_logits[64]", lambda t: F.binary_cross_entropy_with_logits(t, target), logits)
    fwd_bwd("mse[64x256]", lambda t: F.mse_loss(t, _inputs(64, 256, offset=9)), _inputs(64, 256))
    fwd_bwd("cross_entropy[64x10]", lambda t: F.cross_entropy(t, torch.arange(64) % 10), _inputs(64, 10))
    for n in (64, 1000, 100_000, 1_000_000):
        v = _inputs(n)
        out[f"sum[{n}]"], out[f"mean[{n}]"] = h(v.sum()), h(v.mean())
        out[f"sum_double[{n}]"], out[f"norm[{n}]"] = h(v.double().sum()), h(v.norm())
    for impl in ("default", "foreach", "fused"):
        p = torch.nn.Parameter(_inputs(4096))
        opt = torch.optim.Adam([p], lr=2e-4, betas=(0.5, 0.999), **({} if impl == "default" else {impl: True}))
        for s in range(5):
            p.grad = _inputs(4096, offset=100 + s)
            opt.step()
        out[f"adam_{impl}[4096x5]"] = h(p)
    for n in (8, 16, 100, 4096, 100_000):
        out[f"randn[{n}]"] = h(torch.randn(n, generator=torch.Generator().manual_seed(1234)))
        out[f"rand[{n}]"] = h(torch.rand(n, generator=torch.Generator().manual_seed(1234)))
        out[f"bernoulli_0.5[{n}]"] = h(torch.empty(n).bernoulli_(0.5, generator=torch.Generator().manual_seed(1234)))
        out[f"normal_[{n}]"] = h(torch.empty(n).normal_(0, 0.02, generator=torch.Generator().manual_seed(1234)))
    out["randperm[1797]"] = h(torch.randperm(1797, generator=torch.Generator().manual_seed(1234)))
    torch.manual_seed(1234)
    out["dropout_global[64x1024]"] = h(F.dropout(torch.ones(64, 1024), 0.5, True))
    return out


def _layers(fwd_bwd: Callable, prefix: str) -> None:
    """Linear, conv and conv-transpose layers forward and backward at DCGAN's shapes, products above and below
    portable.PARALLEL_FROM among them."""
    for b, i, o in [(64, 100, 256), (64, 256, 512), (64, 512, 1024), (64, 1024, 64), (64, 64, 512), (64, 512, 256),
                    (64, 256, 1), (64, 100, 2048), (128, 100, 256), (64, 784, 512), (64, 1024, 784)]:
        x, w, bias = _inputs(b, i), _inputs(o, i, scale=0.05, offset=3), _inputs(o, offset=5)
        fwd_bwd(f"{prefix}linear[{b}x{i}->{o}]", F.linear, x, w, bias)
    for (n, c, px, oc, k, s, p) in [(64, 1, 16, 32, 4, 2, 1), (64, 32, 8, 64, 4, 2, 1), (64, 64, 4, 1, 4, 1, 0),
                                    (64, 3, 32, 64, 4, 2, 1), (64, 64, 16, 128, 4, 2, 1), (64, 128, 8, 256, 4, 2, 1),
                                    (64, 16, 16, 16, 3, 1, 1)]:
        x, w = _inputs(n, c, px, px), _inputs(oc, c, k, k, scale=0.1, offset=13)
        fwd_bwd(f"{prefix}conv2d[{n},{c},{px}->{oc},k{k}s{s}p{p}]",
                lambda x, w, s=s, p=p: F.conv2d(x, w, stride=s, padding=p), x, w)
    for (n, c, px, oc, k, s, p) in [(64, 100, 1, 64, 4, 1, 0), (64, 64, 4, 32, 4, 2, 1), (64, 32, 8, 1, 4, 2, 1),
                                    (64, 256, 4, 128, 4, 2, 1), (64, 128, 8, 64, 4, 2, 1), (64, 64, 16, 3, 4, 2, 1)]:
        x, w = _inputs(n, c, px, px), _inputs(c, oc, k, k, scale=0.1, offset=17)
        fwd_bwd(f"{prefix}conv_t2d[{n},{c},{px}->{oc},k{k}s{s}p{p}]",
                lambda x, w, s=s, p=p: F.conv_transpose2d(x, w, stride=s, padding=p), x, w)


# ---- training itself ---------------------------------------------------------------------------------------------
class LossLog:
    """A trainer's tracker that keeps every logged metric."""

    def __init__(self):
        self.steps: list[dict] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.steps.append(metrics)

    def log_png(self, image: torch.Tensor, artifact_path: str) -> None:
        pass


# the small-data regularisers of the adversarial family, all on at once (bench/methods/adversarial.py)
SMALL_DATA = {"augment": "diffaugment", "lecam": 0.3, "lecam_start": 1, "bcr": 10.0, "zcr_d": 5.0, "zcr_g": 0.5}
# ADA with p moved after the first batch (every op drawn from then on with probability p)
ADA = {"augment": "ada", "ada_interval": 1, "ada_kimg": 0.05}


def trained(methods: list[str] | None = None, steps: int = 3, params: dict | None = None,
            suffix: str = "") -> dict[str, str]:
    """method (+ suffix) -> a digest of its losses and every network's weights after `steps` training steps on
    seeded noise at 16 px, with `params` over its defaults: where the op entries say which kernel differs, this
    says whether training's bits do."""
    out = {}
    device = torch.device("cpu")
    for method in methods or sorted(METHODS):
        trial = perf.perf_trial(method, RESOLUTION, 2 * BATCH, WIDTH, device, "portable")
        log = LossLog()
        trial = trial.model_copy(update={"log": trial.log.model_copy(update={"every": 1}),
                                         "params": {**trial.params, **(params or {})}})
        trainer = Trainer(trial, perf.synthetic_data(8 * BATCH, 3, RESOLUTION, method), device, tracker=log)
        trainer.run(stop_after=steps)
        tensors = [t for _, net in sorted(trainer.method.nets.items()) for _, t in sorted(net.state_dict().items())]
        losses = [{k: v for k, v in step.items() if k.startswith("loss")} for step in log.steps]  # not images/s
        out[method + suffix] = digest(*tensors, json.dumps(losses, sort_keys=True, default=float))
    return out


def data() -> dict[str, str]:
    """The data pipeline before training: bench's resize (bilinear, antialiased down) of a pattern down and up, and
    the digits as suites load them (8 px, resized up)."""
    image = pattern(2 * 3 * 64 * 64).view(2, 3, 64, 64)
    with numerics.trial_numerics(Numerics(), torch.device("cpu")):  # a command's settings
        return {"data.resize[64->16]": digest(resize(image, 16)), "data.resize[64->128]": digest(resize(image, 128)),
                **{f"data.digits[{px}px]": digest(load_dataset("digits", px).images) for px in (16, 32)}}


# ---- the whole probe -------------------------------------------------------------------------------------------------
def cpu_generation() -> str:
    """"family F model M" of the first CPU: a model name such as "AMD EPYC" does not tell Zen 3 from Zen 4."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in found:
                    found[key.strip()] = value.strip()
                if len(found) == 2:
                    break
    except OSError:
        pass
    return f"family {found.get('cpu family', '?')} model {found.get('model', '?')}"


def machine() -> dict[str, str]:
    model, isa = numerics.cpu_info()
    return {"cpu": model, "generation": cpu_generation(), "isa": isa, "torch": torch.__version__,
            "python": platform.python_version(), "glibc": "-".join(platform.libc_ver()),
            "capability": torch.backends.cpu.get_cpu_capability(), "pinned": str(numerics.process_pinned()),
            "threads": str(numerics.DEFAULT_THREADS), "gemm": portable.describe()}


def run_probe(methods: list[str] | None = None, say: Callable[[str], None] = print) -> dict:
    """The whole probe under a portable trial's numerics: machine, fixed, recorded (op -> digest), labels, methods."""
    methods = methods or sorted(METHODS)
    with numerics.trial_numerics(Numerics(), torch.device("cpu")):
        fixed_part = {**fixed(), **data()}
        say(f"  fixed: {len(fixed_part)} entries")
        calls, used = record(methods)
        say(f"  recorded: {len(calls)} distinct ops in {len(methods)} methods' training and sampling")
        recorded = {key: replay(spec) for key, spec in calls.items()}
        training = {f"trained[{m}]": d for m, d in trained(methods).items()}
        say(f"  trained: {len(training)} methods, {3} steps each")
    return {"machine": machine(), "fixed": fixed_part, "recorded": recorded, "trained": training,
            "labels": {key: label(spec["op"], spec["args"]) for key, spec in calls.items()}, "methods": used}


def compare(here: dict, other: dict) -> tuple[int, list[str]]:
    """(entries compared, the keys that differ) between two probes, AVOIDED aside. A probe of the shared tool has
    its entries at the top level under "ops"."""
    def entries(probe: dict) -> dict[str, str]:
        flat = {**probe.get("ops", {}), **probe.get("fixed", {}), **probe.get("recorded", {}),
                **probe.get("trained", {})}
        return {k: v for k, v in flat.items() if k not in AVOIDED}

    a, b = entries(here), entries(other)
    common = sorted(set(a) & set(b))
    return len(common), [k for k in common if a[k] != b[k]]


def references() -> dict[str, dict]:
    """The committed probes of real machines, without their training digests: those hold the code of the day they
    were made, the ops do not."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(REFERENCES.glob("*.json"))}
    return {name: {k: v for k, v in probe.items() if k != "trained"} for name, probe in found.items()}


def who_calls(probe: dict, key: str) -> str:
    users = [m for m, keys in probe.get("methods", {}).items() if key in keys]
    name = probe.get("labels", {}).get(key, key)
    return f"{name[:160]} ({', '.join(users) if users else 'fixed probe'})"
