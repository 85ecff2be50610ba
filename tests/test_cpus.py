"""The portable numerics on other CPUs: training's bits natively against QEMU-emulated CPUs of both vendors, and this
machine's probe against the probes of the real machines committed in bench/references/numerics/.

QEMU user-mode (Debian's qemu-user, which .ci/run installs) runs this very interpreter under an emulated CPU: its
TCG executes AVX2 and FMA exactly, and MKL and ATen see the emulated CPUID (vendor, family, features), so they pick
the code paths they would pick on that CPU. It emulates no AVX-512: on an AVX-512 host (CI's machines have been
AMD Zen 4 and Intel Sapphire Rapids class) the native run is the AVX-512 side and the emulated ones the AVX2 side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import bench_cli
from tests.support import require

pytestmark = pytest.mark.slow

EMULATED = ("EPYC-Rome", "Haswell-v4")  # an AMD and an Intel AVX2 CPU without AVX-512
# one method of each family and each distinct training path: MLP, conv with Adam, the clipped critic with RMSprop,
# the gradient penalty (double backward), the ResNet SNGAN (bilinear upsampling, average pooling, linear LR decay),
# StyleGAN, both translation methods; and DCGAN and WGAN-GP with every
# small-data regulariser on (DiffAugment, LeCam, bCR, zCR: probe.SMALL_DATA), and DCGAN under ADA (grid sampling,
# colour matrices, the sines of its rotations)
FAMILIES = ("vanilla", "dcgan", "wgan", "wgan-gp", "sngan-mimicry", "stylegan", "cyclegan", "pix2pix")
# the data pipeline, the portable kernels' products large enough to be split over threads (training's at these
# sizes are not) and 2 training steps of each family (the second with the optimisers' state from the first; CycleGAN
# 1: under QEMU its step takes ~30 s); then the optimiser bench replaced, planted back: torch's default Adam takes
# Tensor.sqrt, MKL's CPU-dependent root. ~3 minutes of CI's 2 cores, most of it the emulation.
TRAIN = f"""
import json, bench, torch
from bench import probe
from bench.methods import optim
out = {{**probe.data(), **probe.products(),
       **probe.trained({[f for f in FAMILIES if f != "cyclegan"]!r}, steps=2),
       **probe.trained(["cyclegan"], steps=1),
       **probe.trained(["dcgan", "wgan-gp"], steps=2, params=probe.SMALL_DATA, suffix="+smalldata"),
       **probe.trained(["dcgan"], steps=2, params=probe.ADA, suffix="+ada")}}
optim.adam = lambda params, lr, betas: torch.optim.Adam(params, lr=lr, betas=betas)
out["planted default Adam: dcgan"] = probe.trained(["dcgan"])["dcgan"]  # 3 steps, as when it was shown to differ
print(json.dumps(out))
"""
PLANTED = "planted default Adam: dcgan"


def qemu() -> str:
    require("qemu")
    return shutil.which("qemu-x86_64")


def start(code: str, cpu: str | None) -> subprocess.Popen:
    prefix = [qemu(), "-cpu", cpu] if cpu else []
    return subprocess.Popen([*prefix, sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def result(process: subprocess.Popen, what: str) -> dict:
    out, err = process.communicate(timeout=1500)
    assert process.returncode == 0, f"{what}: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def host_has_avx512() -> bool:
    with open("/proc/cpuinfo") as handle:
        return "avx512f" in handle.read().split()


@pytest.fixture(scope="module")
def digests() -> dict[str, dict[str, str]]:
    """cpu ("native" or an emulated model) -> entry -> digest; both emulated CPUs at once, ~4 minutes on 2 cores."""
    emulated = {cpu: start(TRAIN, cpu) for cpu in EMULATED}
    native = result(start(TRAIN, None), "native")
    return {"native": native, **{cpu: result(process, cpu) for cpu, process in emulated.items()}}


@pytest.mark.qemu
@pytest.mark.process
def test_every_method_family_trains_to_the_same_bits_natively_and_on_emulated_amd_and_intel_cpus(digests):
    """2 steps on seeded noise at 16 px, a digest of every logged loss and every network's weights, and the data
    pipeline (bench's resize, the digits at 16 and 32 px)."""
    native = digests["native"]
    assert set(FAMILIES) <= set(native) and sum(k.startswith("data.") for k in native) == 4
    assert {"dcgan+smalldata", "wgan-gp+smalldata", "dcgan+ada"} <= set(native)
    assert sum(k.startswith("portable:") for k in native) == 12  # the kernels' split products, forward and backward
    for cpu in EMULATED:
        differ = sorted(k for k in native if k != PLANTED and native[k] != digests[cpu].get(k))
        assert not differ, f"under an emulated {cpu} these train or load to other bits: {differ}"


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo") or not host_has_avx512(),
                    reason="the planted op differs between AVX-512 and AVX2 CPUs: this host has no AVX-512")
@pytest.mark.qemu
@pytest.mark.process  # its fixture's emulated processes
def test_the_emulation_check_fails_when_a_cpu_dependent_op_is_planted(digests):
    """torch's default Adam (Tensor.sqrt through MKL's vector math) planted back into DCGAN: the same comparison as
    above tells the AVX-512 host from both emulated AVX2 CPUs, so it can fail."""
    for cpu in EMULATED:
        assert digests["native"][PLANTED] != digests[cpu][PLANTED], cpu


def test_this_machine_computes_the_bits_of_every_committed_machine_and_a_difference_is_named(tmp_path):
    """`bench check --numerics` here against bench/references/numerics/ (real CPUs: Intel AVX-512/AMX, AMD Zen 4):
    every shared entry identical. A copy of one reference with one recorded op's digest changed, given as
    --against, is named: its op, and the methods that call it, exit 1."""
    from bench import probe

    refs = probe.references()
    assert len(refs) >= 2
    base_name, base = next((n, r) for n, r in refs.items() if r.get("recorded"))
    key = next(k for k in base["methods"]["dcgan"] if k in base["recorded"])
    tampered = {**base, "recorded": {**base["recorded"], key: "0" * 16}}
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    result = bench_cli("check", "--numerics", "--out", "out", "--against", "tampered.json", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in refs:
        assert any(line.strip().startswith(f"identical to {name} ") for line in lines), (name, result.stdout)
    assert any(line.strip().startswith("DIFFERS from tampered.json (") and ": 1 of " in line for line in lines)
    named = lines[next(i for i, line in enumerate(lines) if "DIFFERS from tampered.json" in line) + 1]
    assert named.strip().startswith(key.split("#")[0] + "(") and "dcgan" in named, named
    written = json.loads((tmp_path / "out" / "numerics.json").read_text())
    assert written["recorded"][key] == base["recorded"][key] and base_name
