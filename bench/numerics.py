"""Numerics: what decides a trial's bits, pinned by default so that any x86-64 machine with AVX2 (Intel or AMD,
with or without AVX-512 and AMX, any core count) computes the same bits on the CPU, and recorded in every record.

Process knobs, read once by torch's libraries when they load, so bench sets them in the environment before torch is
imported (`pin_process`, called by bench/__init__.py, which loads no torch; worker processes and Ray tasks inherit or
are given the environment):

    ATEN_CPU_CAPABILITY=avx2   ATen's own vector kernels, torch.randn's Box-Muller among them, as on any AVX2 CPU
    MKL_CBWR=COMPATIBLE        MKL's conditional numerical reproducibility: the SSE2 branch without approximate
                               reciprocals, the only MKL branch that gives one result on Intel and AMD alike
    MKL_DYNAMIC=FALSE, OMP_DYNAMIC=FALSE       no thread counts chosen at run time
    OPENBLAS_CORETYPE=HASWELL, OPENBLAS_NUM_THREADS=1   numpy's BLAS (FID's covariances) on one fixed kernel

Trial knobs, set around each trial's training and evaluation (`trial_numerics`):

    torch threads = numerics.threads (part of the trial's key: reductions split by thread)
    convolutions, transposed convolutions and linear layers on numpy's OpenBLAS, pinned to its Haswell kernels
    (bench/portable.py: as fast as the machine's own kernels, unlike MKL's only portable branch); oneDNN (mkldnn)
    and NNPACK off for what remains: their blocking follows the CPU's cache sizes, which no setting pins

Speed knobs of the portable mode, set unless the user set them (they change how threads wait, never a number):
GOMP_SPINCOUNT=3000 and OPENBLAS_THREAD_TIMEOUT=14, so torch's OpenMP threads and OpenBLAS's stop spinning within
microseconds of their work: on 2 cores each pool's spinning otherwise stole the other's core (a 16 px DCGAN step
5.8x slower with both pools' defaults; measured on an AMD EPYC).

`numerics.portable: false` asks for the machine's fastest kernels instead; those are chosen when torch loads, so such
trials run in a process started with BENCH_NUMERICS=native (and portable ones refuse such a process), each in one
line. On CUDA the CPU knobs do not decide the numbers: `numerics.deterministic` does (deterministic algorithms,
cuDNN benchmark off, cuBLAS's fixed workspace, TF32 off); bits then repeat on the same GPU model, driver and
library versions, never across GPUs and never between CPU and GPU.

What no setting pins, and the fingerprint therefore records: the torch build (its MKL and oneDNN), glibc (the
scalar fallbacks of a few ATen kernels call its libm), and on CUDA the GPU, driver, CUDA and cuDNN.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, Protocol

from bench.errors import BenchError

_TORCH_BEFORE_PIN = False  # set by pin_process: torch was imported before bench
_USER_ENV: dict[str, str | None] = {}  # the user's own values of the knobs pin_process set, before it set them
MODE_VARIABLE = "BENCH_NUMERICS"  # "portable" (the default) or "native"
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    "OPENBLAS_CORETYPE": "HASWELL",
    "OPENBLAS_NUM_THREADS": "1",
}
SPEED_ENV = {"GOMP_SPINCOUNT": "3000", "OPENBLAS_THREAD_TIMEOUT": "14"}
DEFAULT_THREADS = 2  # a trial's numerics.threads unless its suite says otherwise: 23% faster than 1 for the quickstart
# on 2 cores, the same bits at 1 and 2 here (not promised: MKL's COMPATIBLE branch is reproducible per thread count)
# cuBLAS's deterministic workspace: read at the first cuBLAS call, harmless (24 MiB) when not deterministic
CUDA_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def process_mode() -> str:
    """How this process was started: "portable" (bench's pinned kernels, the default) or "native"."""
    return "native" if os.environ.get(MODE_VARIABLE, "").strip().lower() == "native" else "portable"


def pin_process() -> None:
    """Set the process knobs (above) unless BENCH_NUMERICS=native, or on an x86 CPU without AVX2 and FMA (where
    ATen's AVX2 kernels would stop at an illegal instruction; portable trials then refuse to run). Environment only:
    it neither loads torch nor changes its settings (`command_defaults` does, for the commands that compute).
    Effective only before torch loads: afterwards its libraries have read them already, which `process_pinned`
    then reports."""
    global _TORCH_BEFORE_PIN
    _TORCH_BEFORE_PIN = "torch" in sys.modules  # then its libraries may have read their settings already
    for name, value in CUDA_ENV.items():
        os.environ.setdefault(name, value)
    if process_mode() != "portable" or (_x86() and not {"avx2", "fma"} <= set(cpu_info()[1].split())):
        return
    _USER_ENV.update({k: os.environ.get(k) for k in (*PORTABLE_ENV, *SPEED_ENV)})
    os.environ.update(PORTABLE_ENV)  # a user's own ATEN_CPU_CAPABILITY would make the bits the machine's
    if "OMP_WAIT_POLICY" not in os.environ:  # a user's wait policy is theirs (GOMP_SPINCOUNT would override it)
        os.environ.setdefault("GOMP_SPINCOUNT", SPEED_ENV["GOMP_SPINCOUNT"])
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", SPEED_ENV["OPENBLAS_THREAD_TIMEOUT"])


def command_defaults() -> None:
    """torch's process-wide settings of the portable mode, for what a command computes outside a trial's own
    settings (`bench fid`'s features, `bench sample`'s images, the data a suite prepares): DEFAULT_THREADS threads,
    oneDNN and NNPACK off. Called by bench's commands that compute (and by the tests, as those commands), never at
    import: a notebook that imports bench keeps torch's defaults. Nothing in the native mode or an unpinned process."""
    if process_mode() != "portable" or not process_pinned():
        return
    import torch  # the settings are torch's

    torch.set_num_threads(DEFAULT_THREADS)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)


def native_environment() -> dict[str, str]:
    """The environment of a process with the machine's own kernels: this one's, less the knobs pin_process set (the
    user's own values of them back), and BENCH_NUMERICS=native so that bench pins nothing there."""
    env = dict(os.environ)
    for name, value in _USER_ENV.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env[MODE_VARIABLE] = "native"
    return env


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def process_pinned() -> bool:
    """Whether torch computes with the pinned kernels here: the knobs were in place when it loaded."""
    import torch  # the capability is torch's to say, once it has loaded

    if _TORCH_BEFORE_PIN or any(os.environ.get(k) != v for k, v in PORTABLE_ENV.items()):
        return False
    return not _x86() or torch.backends.cpu.get_cpu_capability() == "AVX2"


def check(portable: bool, device) -> None:
    """One line when a trial's numerics and this process disagree (see the module docstring)."""
    if device.type != "cpu":
        return  # on a GPU the kernels are the GPU's; the CPU knobs decide nothing recorded
    if portable and (process_mode() == "native" or not process_pinned() or not _openblas_pinned()):
        if process_mode() == "native":
            why = "this process runs the machine's own kernels (BENCH_NUMERICS=native)"
        elif not _openblas_pinned():
            why = "numpy was loaded before bench could pin OpenBLAS's kernels (import bench before numpy)"
        elif _x86() and not {"avx2", "fma"} <= set(cpu_info()[1].split()):
            why = "this CPU lacks AVX2 or FMA, which the pinned kernels use"
        else:
            why = "torch was loaded before bench could pin its kernels (import bench before torch)"
        raise BenchError(f"numerics.portable: true needs bench's pinned CPU kernels, and {why}; run without "
                         f"{MODE_VARIABLE}=native, or give the suite numerics: {{portable: false}}")
    if not portable and process_mode() != "native":
        raise BenchError("numerics.portable: false asks for this machine's fastest kernels, which are chosen when "
                         f"torch loads: run the command with {MODE_VARIABLE}=native in its environment")


def _openblas_pinned() -> bool:
    from bench.portable import pinned  # numpy's OpenBLAS: loaded for the trials that use it

    return pinned()


class Settings(Protocol):
    """What a trial's `numerics:` block says (bench.suite.Numerics; this leaf cannot import it)."""

    portable: bool
    threads: int
    deterministic: bool


@contextmanager
def trial_numerics(settings: Settings, device) -> Iterator[None]:
    """The trial knobs around a trial's training and evaluation; this process's previous settings afterwards."""
    import torch  # the knobs are torch's

    portable, threads, deterministic = settings.portable, settings.threads, settings.deterministic

    saved = (torch.get_num_threads(), torch.backends.mkldnn.enabled, _nnpack_enabled(),
             torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch.backends.mkldnn.enabled = not portable
        torch.backends.nnpack.set_flags(not portable)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        if portable and device.type == "cpu" and process_mode() == "portable":  # else `check` refused the trial
            from bench.portable import portable_kernels  # numpy's OpenBLAS: loaded for the trials that use it

            with portable_kernels(threads):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.mkldnn.enabled = saved[1]
        torch.backends.nnpack.set_flags(saved[2])
        torch.use_deterministic_algorithms(saved[3])
        torch.backends.cudnn.benchmark = saved[4]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[5], saved[6]


def _nnpack_enabled() -> bool:
    import torch  # torch.backends.nnpack reads its flag only by setting it (set_flags returns the old value)

    enabled = torch.backends.nnpack.set_flags(True)[0]
    torch.backends.nnpack.set_flags(enabled)
    return enabled


@cache
def cpu_info() -> tuple[str, str]:
    """(model name, the vector extensions among its flags) from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile",
              "amx_bf16")
    return model, " ".join(f for f in wanted if f in flags)


@cache
def _library_versions() -> dict[str, str]:
    import torch  # its build configuration names MKL, oneDNN and the BLAS

    config = torch.__config__.show()
    found = {}
    for name, pattern in (("mkl", r"Math Kernel Library Version ([^\s]+)"), ("onednn", r"MKL-DNN (v[\d.]+)"),
                          ("blas", r"BLAS_INFO=(\w+)")):
        match = re.search(pattern, config)
        found[name] = match.group(1) if match else "none"
    return found


def fingerprint(device) -> dict[str, str]:
    """Everything that decides a trial's bits besides its config, as flat strings (recorded as `numerics.*` tags and
    in environment.json); two records whose fingerprints differ may differ in their numbers."""
    import torch  # the settings are torch's

    model, isa = cpu_info()
    info: dict[str, Any] = {
        "mode": process_mode() if device.type == "cpu" else "gpu",
        "torch": torch.__version__, "torch_git": (torch.version.git_version or "")[:12],
        "cpu": model, "cpu_isa": isa, "kernel_isa": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.enabled,
        "nnpack": _nnpack_enabled(), "deterministic": torch.are_deterministic_algorithms_enabled(),
        "gemm": _gemm_kernels(device),
        "feature_kernels": "onednn (this machine's, see feature_kernels)",
        "glibc": "-".join(platform.libc_ver()) or "unknown", "python": platform.python_version(),
        **{f"lib_{k}": v for k, v in _library_versions().items()},
        **{f"env_{k}": os.environ.get(k, "") for k in PORTABLE_ENV},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_capability=f"{props.major}.{props.minor}", gpu_sms=props.multi_processor_count,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
                    cudnn_benchmark=torch.backends.cudnn.benchmark,
                    cublas_workspace=os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""))
    return {k: str(v) for k, v in info.items()}


def _gemm_kernels(device) -> str:
    """What computes a trial's convolutions and linear layers: OpenBLAS's pinned kernels on the portable path
    (bench/portable.py), else torch's own (oneDNN and MKL on the CPU, cuDNN and cuBLAS on a GPU)."""
    if device.type != "cpu" or process_mode() != "portable":
        return "torch"
    from bench.portable import describe  # numpy's OpenBLAS, as the portable trials load it

    return describe()


# The fingerprint entries that decide bits (the rest, python and the like, are context): `bench reproduce` names
# the ones that differ when numbers do, and the CPU beside them (CPU_ENTRIES: what the portable mode covers).
DECIDING = ("mode", "torch", "torch_git", "cpu_isa", "kernel_isa", "threads", "gemm", "mkldnn", "nnpack",
            "deterministic", "glibc", "lib_mkl", "lib_onednn", "lib_blas", *(f"env_{k}" for k in PORTABLE_ENV),
            "gpu", "gpu_sms", "cuda", "cudnn", "tf32_matmul", "tf32_cudnn")
CPU_ENTRIES = ("cpu", "cpu_isa")


def differences(recorded: dict[str, str], here: dict[str, str]) -> list[str]:
    """`name A (recorded) vs B (here)` for every deciding entry that differs, and for the CPU (its model and vector
    extensions): the portable mode promises one result across CPUs, so a CPU that differs is named too, never hidden
    behind "the fingerprints agree" (`machine_only` tells whether it is all that differs)."""
    return [f"{n} {recorded.get(n, '?')} (recorded) vs {here.get(n, '?')} (here)" for n in (*DECIDING, "cpu")
            if recorded.get(n) != here.get(n)]


def machine_only(changed: list[str], recorded: dict[str, str]) -> bool:
    """True when the differences are the CPU alone, of a portable record: the case the portable kernels promise."""
    return bool(changed) and recorded.get("mode") == "portable" and all(c.split(" ", 1)[0] in CPU_ENTRIES
                                                                        for c in changed)


def sqrt(x):
    """The square root on every CPU's bits: `1 / rsqrt(x)`, ATen's exact IEEE 1/sqrt and an exact division, instead
    of `Tensor.sqrt`, which ATen sends to MKL's vector math, whose result depends on the CPU even under
    MKL_CBWR=COMPATIBLE (AVX-512 machines round it otherwise than AVX2 ones, Intel otherwise than AMD; measured by
    `bench check --numerics`). Within one unit in the last place of the correctly rounded root; differentiable."""
    import torch  # the kernels are torch's

    return torch.reciprocal(torch.rsqrt(x))


@contextmanager
def feature_kernels() -> Iterator[None]:
    """Inception's forward pass with oneDNN and NNPACK on, portable trials included: it is 2.9x faster at 1 thread
    here than the pinned path (1.0 against 2.9 images/s on an AVX2 EPYC) and does not amplify rounding as GAN
    training does (features agree to ~1e-5 between kernel paths), so FID and KID agree across machines to about
    1e-5 rather than to the bit. The images it sees are the pinned generator's, bit for bit."""
    import torch  # the switches are torch's

    saved = torch.backends.mkldnn.enabled, _nnpack_enabled()
    torch.backends.mkldnn.enabled = True
    torch.backends.nnpack.set_flags(True)
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = saved[0]
        torch.backends.nnpack.set_flags(saved[1])


def kernels() -> str:
    """The kernels Inception computes with here (`feature_kernels`), as a cache key part: features computed under
    other kernels are other numbers, so reference statistics are cached per value."""
    import torch  # the settings are torch's

    model, _ = cpu_info()
    return (f"{model}/{torch.backends.cpu.get_cpu_capability()}/threads={torch.get_num_threads()}"
            f"/torch={torch.__version__}")
