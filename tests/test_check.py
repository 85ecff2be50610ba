"""`bench check`: the machine self-test. Its CPU comparison rests on CpuDraws (a trial's draws made on the CPU, so a
GPU trial sees the CPU trial's numbers); the quick check passes on a CPU with the GPU box's packages alone; a broken
numerics path makes it exit 1 naming the method and path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench import check
from bench.methods import METHODS
from tests.conftest import bench_cli


def test_draws_under_cpu_draws_come_from_its_generator_whatever_generator_the_trial_passes():
    with check.CpuDraws(5):
        drawn = torch.randn(4, generator=torch.Generator().manual_seed(123))
        order = torch.randperm(6, generator=torch.Generator().manual_seed(7))
    own = torch.Generator().manual_seed(5)
    assert torch.equal(drawn, torch.randn(4, generator=own))
    assert torch.equal(order, torch.randperm(6, generator=own))


def test_dropout_under_cpu_draws_repeats_its_mask_and_scales_what_it_keeps():
    ones = torch.ones(1000)
    with check.CpuDraws(0):
        first = F.dropout(ones, 0.5, training=True)
    with check.CpuDraws(0):
        second = F.dropout(ones, 0.5, training=True)
    assert torch.equal(first, second)
    assert set(first.unique().tolist()) == {0.0, 2.0} and 400 < int((first == 0).sum()) < 600


@pytest.mark.parametrize("method", ["acgan", "wgan-gp", "pix2pix", "cyclegan"])  # labels, penalty, dropout, pools
def test_under_cpu_draws_a_trial_does_not_depend_on_its_own_generator(method, monkeypatch):
    """What makes the GPU trial comparable with the CPU one: the GPU's generator (CUDA's Philox) draws other numbers
    than the CPU's, and under CpuDraws none of them is used. Here the trial's generator is seeded otherwise."""
    usual = check.train_steps(method, 16, "portable", "cpu", check.QUICK, cpu_draws=True)
    monkeypatch.setattr("bench.train.training_seed", lambda seed: seed + 7)
    other_generator = check.train_steps(method, 16, "portable", "cpu", check.QUICK, cpu_draws=True)
    assert other_generator["losses"] == usual["losses"] and other_generator["weights"] == usual["weights"]


def test_without_cpu_draws_the_trials_generator_decides_its_numbers(monkeypatch):
    usual = check.train_steps("dcgan", 16, "portable", "cpu", check.QUICK)
    monkeypatch.setattr("bench.train.training_seed", lambda seed: seed + 7)
    other_generator = check.train_steps("dcgan", 16, "portable", "cpu", check.QUICK)
    assert other_generator["losses"] != usual["losses"] and other_generator["weights"] != usual["weights"]


def test_agreement_with_the_cpu_fails_past_the_tolerance_and_names_the_loss():
    def run(*losses_d):
        return {"losses": [{"loss_d": v, "loss_g": 0.7} for v in losses_d]}

    close = check.agreement_row("dcgan", 32, run(1.00, 1.01), run(1.00, 1.00))  # mean 1.005 vs 1.0: 0.5%
    assert close["status"] == "ok" and close["max_rel_diff"] == pytest.approx(0.005)
    apart = check.agreement_row("dcgan", 32, run(1.03, 1.01), run(1.00, 1.00))  # 2%
    assert apart["status"] == "FAIL" and apart["max_rel_diff"] == pytest.approx(0.02)
    assert "loss_d: 1.02 here, 1 on the CPU" in apart["detail"]
    small = check.agreement_row("dcgan", 32, run(0.0005), run(0.0))  # near zero: relative to 0.1
    assert small["status"] == "ok" and small["max_rel_diff"] == pytest.approx(0.005)
    lazy = {"losses": [{"loss_d": 1.0, "loss_r1": 0.2}, {"loss_d": 1.0}, {"loss_d": 1.0, "loss_r1": 0.4}]}
    lazy_cpu = {"losses": [{"loss_d": 1.0, "loss_r1": 0.2}, {"loss_d": 1.0}, {"loss_d": 1.0, "loss_r1": 0.5}]}
    r1 = check.agreement_row("stylegan", 32, lazy, lazy_cpu)  # R1 on steps 1 and 3 only: 0.3 against 0.35
    assert r1["status"] == "FAIL" and r1["max_rel_diff"] == pytest.approx(0.05 / 0.35)
    assert "loss_r1: 0.3 here, 0.35 on the CPU" in r1["detail"]


def test_check_refuses_an_unknown_device_in_one_line(tmp_path):
    result = bench_cli("check", "--device", "gpu", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --device gpu: unknown device; allowed: auto, cpu, cuda, cuda:N, mps"
    assert not (tmp_path / "check").exists()


def assert_quick_check_passed(out: Path, stdout: str) -> None:
    """What `bench check --device cpu --quick` must show: every method trains at two resolutions on fp32, portable
    and channels_last with finite losses, deterministic runs repeat, and the GPU-only rows say why they are
    skipped."""
    report = json.loads((out / "check.json").read_text())
    rows = report["rows"]
    trained = {(r["method"], r["px"], r["path"]) for r in rows if r["section"] == "train" and r["status"] == "ok"}
    assert trained == {(m, px, p) for m in METHODS for px in (16, 32) for p in ("fp32", "portable", "channels_last")}
    assert {r["method"] for r in rows if r["section"] == "deterministic" and r["status"] == "ok"} == set(METHODS)
    skipped = {r["path"]: r["detail"] for r in rows if r["section"] == "train" and r["status"] == "skipped"}
    assert set(skipped) == {"bf16", "compile", "all"} and all("GPU path" in why for why in skipped.values())
    throughput = {r["path"]: r for r in rows if r["section"] == "throughput"}
    assert set(throughput) == {"plain loop", "fp32", "portable", "channels_last"}
    assert all(r["steps_per_s"] > 0 and r["tflop_per_s"] > 0 for r in throughput.values())
    assert report["counts"]["FAIL"] == 0 and "0 FAILED" in stdout
    markdown = (out / "check.md").read_text()
    assert markdown.count("| train | ") == len(trained) + 3 and "| cpu | - | - | - | skipped |" in markdown


@pytest.mark.slow
@pytest.mark.process
def test_a_broken_numerics_path_fails_the_check_naming_method_and_path(tmp_path, monkeypatch):
    """dcgan's losses turn NaN on the portable path alone (the pinned kernels: oneDNN off); every other row passes."""
    dcgan = METHODS["dcgan"]
    step = dcgan.step

    def broken_on_portable(self, ctx):
        losses = step(self, ctx)
        if not torch.backends.mkldnn.enabled:  # what the portable path sets on the CPU
            losses = {name: value * float("nan") for name, value in losses.items()}
        return losses

    monkeypatch.setattr(dcgan, "step", broken_on_portable)
    monkeypatch.setattr(check, "METHODS", {name: METHODS[name] for name in ("dcgan", "lsgan")})  # two: quicker
    result = bench_cli("check", "--device", "cpu", "--quick", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED:")]
    assert failed[:3] == [
        "FAILED: train dcgan 16 px, path portable: TrialDiverged: step 1: loss_d became nan",
        "FAILED: train dcgan 32 px, path portable: TrialDiverged: step 1: loss_d became nan",
        "FAILED: deterministic dcgan 16 px, path portable: TrialDiverged: step 1: loss_d became nan"]
    # the suite's dcgan trials run on the portable path too (a suite's default numerics)
    assert len(failed) == 4 and failed[3].startswith("FAILED: suite dcgan 16 px, path portable: RuntimeError: "
                                                     "sequential: 0 of 2 trials finished")
    assert "seed=0: FAILED at step 1: loss_d became nan" in failed[3]
    rows = json.loads((tmp_path / "out" / "check.json").read_text())["rows"]
    assert {(r["method"], r["path"]) for r in rows if r["section"] == "train" and r["status"] == "ok"} == {
        ("dcgan", "fp32"), ("dcgan", "channels_last"), ("lsgan", "fp32"), ("lsgan", "portable"),
        ("lsgan", "channels_last")}


REPO = Path(__file__).resolve().parents[1]
GPU_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "pillow", "pyyaml", "rich", "shellingham",
                "annotated-doc")  # the GPU machine's, as its image lists them (it also has an older typer)


@pytest.mark.slow
@pytest.mark.process
def test_prepared_wheels_run_the_check_in_an_environment_of_the_gpu_machines_packages(tmp_path):
    """`nox -s gpu-prepare` and scripts/gpu-check.sh, on the CPU: a virtual environment with only the GPU machine's
    packages (at this project's versions, from uv's cache) lacks pydantic and typer; the prepared wheels, installed
    by the script into a temporary site-packages, make `bench check --device cpu --quick` pass in it. The wheels
    are fetched for this Python (the GPU machine's is 3.12: the nox session's default)."""
    from importlib.metadata import version

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv, wheels, out = tmp_path / "gpu-env", tmp_path / "wheels", tmp_path / "out"
    python = str(venv / "bin" / "python")

    def run(*command, **kwargs):
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env={**env, **kwargs},
                              timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    run("uv", "venv", "--quiet", "--seed", "--python", sys.executable, venv)  # --seed: pip, as the GPU machine has
    run("uv", "pip", "install", "--quiet", "--python", python, *(f"{p}=={version(p)}" for p in GPU_PACKAGES))
    missing = subprocess.run([python, "-c", "import pydantic"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "No module named 'pydantic'" in missing.stderr
    for module in ("typer", "mlflow", "optuna", "cleanfid"):
        assert subprocess.run([python, "-c", f"import {module}"], capture_output=True, env=env).returncode == 1

    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    run(sys.executable, "-m", "nox", "-f", REPO / "noxfile.py", "-s", "gpu-prepare", "--", python_version, wheels)
    assert sorted(w.name.split("-")[0] for w in wheels.glob("*.whl")) == [
        "annotated_types", "pydantic", "pydantic_core", "threadpoolctl", "typer", "typing_extensions",
        "typing_inspection"]

    done = run("bash", REPO / "scripts" / "gpu-check.sh", "--device", "cpu", "--quick", PYTHON=python,
               WHEELS=str(wheels), OUT=str(out))
    assert_quick_check_passed(out, done.stdout)  # where mlflow, optuna and clean-fid are not even installed
    log = (out / "check.log").read_text()
    assert "bench check: cpu" in log and (out / "check.md").is_file()
