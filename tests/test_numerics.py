"""Portable numerics: the knobs are in place before torch loads, every record carries the fingerprint of what decided
its bits, the report flags columns that mix them, and `bench reproduce` re-trains a record and finds where it parts."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from bench import numerics
from tests.conftest import bench_cli

SUITE = """
name: {name}
methods: [{{dcgan: {{width: 8}}}}]
datasets: [digits]
seeds: {seeds}
resolution: 16
batch_size: 32
budget: {{steps: 20}}
eval: {{metrics: []}}
log: {{every: 5, samples_every: 1000, checkpoint_every: 10}}
device: cpu
"""


def verdicts(out: str) -> list[str]:
    """`bench reproduce`'s one line per trial (progress lines aside)."""
    return [line for line in out.splitlines() if " seed=" in line]


@pytest.mark.slow
@pytest.mark.process
def test_the_knobs_are_in_place_before_torch_loads_in_a_fresh_process(tmp_path):
    probe = ("import bench, os, torch; bench.numerics.command_defaults(); print(os.environ['ATEN_CPU_CAPABILITY'], "
             "os.environ['MKL_CBWR'], torch.backends.cpu.get_cpu_capability(), torch.backends.mkldnn.enabled, "
             "torch.get_num_threads())")  # as a command of bench computes
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV and k != numerics.MODE_VARIABLE}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["avx2", "COMPATIBLE", "AVX2", "False", str(numerics.DEFAULT_THREADS)], out.stderr
    native = subprocess.run([sys.executable, "-c", probe.replace("os.environ['ATEN_CPU_CAPABILITY']", "'-'")
                             .replace("os.environ['MKL_CBWR']", "os.environ.get('MKL_CBWR', '-')")], cwd=tmp_path,
                            env={**env, numerics.MODE_VARIABLE: "native"}, capture_output=True, text=True,
                            timeout=120)
    assert native.stdout.split()[:2] == ["-", "-"] and native.stdout.split()[3] == "True", native.stderr
    late = "import torch, bench; from bench import numerics; numerics.check(True, torch.device('cpu'))"
    refused = subprocess.run([sys.executable, "-c", late], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
    assert "torch was loaded before bench could pin its kernels (import bench before torch)" in refused.stderr
    # numpy first, its OpenBLAS on other kernels than Haswell's (which it picks itself on some CPUs, Zen 3 among them)
    early_numpy = "import numpy, bench, torch; from bench import numerics; numerics.check(True, torch.device('cpu'))"
    refused = subprocess.run([sys.executable, "-c", early_numpy], cwd=tmp_path,
                             env={**env, "OPENBLAS_CORETYPE": "Sandybridge"}, capture_output=True, text=True,
                             timeout=120)
    assert "numpy was loaded before bench could pin OpenBLAS's kernels (import bench before numpy)" in refused.stderr


@pytest.mark.slow
@pytest.mark.process
def test_a_native_process_started_from_a_pinned_one_inherits_none_of_its_knobs(tmp_path):
    """`bench perf`'s native and plain-loop workers start from this environment: the knobs bench set here are gone
    there (a user's own value of one would be kept), so their kernels are the machine's."""
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"  # set by bench in this process
    env = numerics.native_environment()
    assert env[numerics.MODE_VARIABLE] == "native" and not set(numerics.PORTABLE_ENV) & set(env)
    assert not set(numerics.SPEED_ENV) & set(env)  # nor the portable mode's waiting knobs
    probe = ("import os, torch; print(torch.backends.cpu.get_cpu_capability(), torch.backends.mkldnn.enabled, "
             "os.environ.get('MKL_CBWR', '-'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    native = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                            cwd=tmp_path, env={k: v for k, v in env.items() if k != numerics.MODE_VARIABLE},
                            capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [native.stdout.strip(), "True", "-"], out.stderr


@pytest.mark.slow
@pytest.mark.process
def test_importing_bench_changes_none_of_torchs_settings(tmp_path):
    """A notebook that imports bench (its CLI, its metrics) keeps torch's defaults: bench sets only the environment
    at import, and torch's settings where one of its commands computes (or a trial runs)."""
    settings = "torch.get_num_threads(), torch.backends.mkldnn.enabled, torch.backends.cpu.get_cpu_capability()"
    after_bench = f"import bench.cli, bench.metrics, torch; print({settings})"
    alone = f"import torch; print({settings})"  # the same environment, bench's knobs in it, no bench
    outs = [subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
            for code in (after_bench, alone)]
    assert all(o.returncode == 0 for o in outs), [o.stderr[-2000:] for o in outs]
    assert outs[0].stdout == outs[1].stdout and outs[0].stdout.split()[1] == "True", (outs[0].stdout, outs[1].stdout)
    # and a command that computes gets bench's portable settings: DEFAULT_THREADS threads, oneDNN off
    command = ("import sys, bench.cli; sys.argv = ['bench', 'data', 'info', 'digits']\ntry:\n    bench.cli.main()\n"
               f"except SystemExit:\n    pass\nimport torch; print({settings})")
    ran = subprocess.run([sys.executable, "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.stdout.split()[-3:] == [str(numerics.DEFAULT_THREADS), "False", "AVX2"], ran.stdout + ran.stderr


def test_this_test_process_computes_with_the_pinned_kernels():
    assert numerics.process_pinned() and torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert os.environ["MKL_CBWR"] == "COMPATIBLE" and not torch.backends.mkldnn.enabled
    with numerics.feature_kernels():  # Inception alone runs oneDNN
        assert torch.backends.mkldnn.enabled
    assert not torch.backends.mkldnn.enabled


def test_a_mode_the_process_cannot_honour_is_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE.format(name="mode", seeds=1))
    native = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path, env={numerics.MODE_VARIABLE: "native"})
    ran = bench_cli("run", "s.yaml", cwd=tmp_path, env={numerics.MODE_VARIABLE: "native"})
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "numerics.portable: true needs bench's pinned CPU kernels, and this process runs the machine's own " \
           "kernels (BENCH_NUMERICS=native)" in ran.stderr and "Traceback" not in ran.stderr + native.stderr
    (tmp_path / "n.yaml").write_text(SUITE.format(name="mode", seeds=1) + "numerics: {portable: false}\n")
    ran = bench_cli("run", "n.yaml", cwd=tmp_path)
    assert ran.returncode == 2 and "run the command with BENCH_NUMERICS=native" in ran.stderr, ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_every_record_carries_its_fingerprint_the_report_flags_a_mix_and_reproduce_finds_a_planted_change(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    (tmp_path / "s.yaml").write_text(SUITE.format(name="fp", seeds=2))
    ran = bench_cli("run", "s.yaml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fp").experiment_id])
    assert len(runs) == 2
    tags = runs[0].data.tags
    assert tags["fingerprint.mode"] == "portable" and tags["fingerprint.kernel_isa"] == "AVX2"
    assert tags["fingerprint.threads"] == str(numerics.DEFAULT_THREADS) and tags["fingerprint.mkldnn"] == "False"
    assert tags["fingerprint.env_MKL_CBWR"] == "COMPATIBLE" and tags["fingerprint.torch"] == torch.__version__
    config = json.loads(tags["bench.config"])
    assert config["numerics"] == {"portable": True, "threads": numerics.DEFAULT_THREADS, "deterministic": False,
                                  "channels_last": False, "bf16": False, "compile": False}

    # a record computed with other kernels: the report's protocol table marks the column MIXED
    seed1 = next(r for r in runs if r.data.tags["bench.seed"] == "1")
    client.set_tag(seed1.info.run_id, "fingerprint.kernel_isa", "AVX512")
    reported = bench_cli("report", "--suite", "fp", "--out", "rep", cwd=tmp_path)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    protocol = {r["key"]: r for r in csv.DictReader(open(tmp_path / "rep" / "tables" / "protocol.csv"))}
    assert protocol["fingerprint.kernel_isa"]["values"] == "AVX2 | AVX512"
    assert protocol["fingerprint.mode"]["n_distinct"] == "1"
    assert "| fingerprint.kernel\\_isa | **AVX2 \\| AVX512 (MIXED)** |" in (tmp_path / "rep" / "README.md").read_text()

    # both seeds re-train to the same bits, from the report folder and from the store by trial key
    both = bench_cli("reproduce", "rep", "--steps", "10", cwd=tmp_path)
    assert both.returncode == 0, both.stdout + both.stderr
    assert [line.split(": ", 1)[1] for line in verdicts(both.stdout)] == ["identical (10 steps)"] * 2
    key = runs[0].data.tags["bench.trial_key"]
    by_key = bench_cli("reproduce", key[:8], "--steps", "20", cwd=tmp_path)
    assert by_key.returncode == 0 and by_key.stdout.strip().endswith("identical (20 steps)"), by_key.stdout

    # one loss of each seed altered by hand at step 10 (in its 10th significant digit): the first differing step,
    # which numerics differ (none for seed 0; the AVX-512 tag planted above for seed 1), exit 1
    curves = tmp_path / "rep" / "tables" / "curves.csv"
    rows = list(csv.DictReader(open(curves)))
    recorded = {}
    for row in rows:
        if row["step"] == "10":
            recorded[row["seed"]] = row["loss_d"]
            row["loss_d"] = f"{float(row['loss_d']) * (1 + 2e-9):.10g}"
            assert row["loss_d"] != recorded[row["seed"]]
    with open(curves, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    altered = {r["seed"]: r["loss_d"] for r in rows if r["step"] == "10"}
    planted = bench_cli("reproduce", "rep", "--steps", "10", cwd=tmp_path)
    assert planted.returncode == 1, planted.stdout + planted.stderr
    lines = {line.split("seed=")[1][0]: line for line in verdicts(planted.stdout)}
    for seed in ("0", "1"):
        assert f"differs from step 10: loss_d {altered[seed]} recorded, {recorded[seed]} here" in lines[seed]
    assert lines["0"].endswith("; the numerics fingerprints agree, CPU included")
    assert "; numerics differ in: kernel_isa AVX512 (recorded) vs AVX2 (here); bits are promised only" in lines["1"]
    assert "Traceback" not in planted.stderr

    # the record of seed 0 made on another CPU, all else equal: the CPU is named, and what its difference means
    trials_csv = tmp_path / "rep" / "tables" / "trials.csv"
    rows = list(csv.DictReader(open(trials_csv)))
    here_cpu = next(r["fingerprint.cpu"] for r in rows if r["seed"] == "0")
    for row in rows:
        row["fingerprint.cpu"] = "AMD EPYC 9R14 96-Core Processor" if row["seed"] == "0" else row["fingerprint.cpu"]
    with open(trials_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    other_cpu = bench_cli("reproduce", "rep", "--steps", "10", "--only", "seed=0", cwd=tmp_path)
    assert other_cpu.returncode == 1, other_cpu.stdout + other_cpu.stderr
    [line] = verdicts(other_cpu.stdout)
    assert line.endswith(f"; only the CPU differs (cpu AMD EPYC 9R14 96-Core Processor (recorded) vs {here_cpu} "
                         "(here)): the portable numerics promise the same bits on both, so this breaks that "
                         "promise; run `bench check --numerics` here and report what it names"), line


SEEDS_SUITE = """
name: seeds
methods: [{dcgan: {width: 8}}, {lsgan: {width: 8}}]
datasets: [digits]
seeds: 2
resolution: 16
batch_size: 32
budget: {steps: 20}
eval: {n_fake: 32, n_real: 64, metrics: [fid], features: "encoder:digits"}
log: {every: 10, samples_every: 1000, checkpoint_every: 10}
device: cpu
"""  # FD in the digits encoder's space: what --seeds checks is the same in any space, and this one costs no Inception


def rewrite_csv(path, change) -> None:
    rows = list(csv.DictReader(open(path)))
    for row in rows:
        change(row)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_reproduce_seeds_says_whether_a_reports_conclusions_hold_and_fails_on_a_swapped_best_method(tmp_path):
    pytest.importorskip("mlflow")
    env = {"BENCH_CACHE": str(tmp_path / "cache")}
    (tmp_path / "s.yaml").write_text(SEEDS_SUITE)
    assert bench_cli("run", "s.yaml", cwd=tmp_path, env=env).returncode == 0
    assert bench_cli("report", "--suite", "seeds", "--out", "rep", cwd=tmp_path, env=env).returncode == 0
    final = {r["row"]: r for r in csv.DictReader(open(tmp_path / "rep" / "tables" / "fid_final.csv"))}
    best = next(row for row, r in final.items() if r["best"] == "True")
    other = next(row for row in final if row != best)

    # one logged loss of one trial altered (as another machine's bits would): that trial is no longer identical,
    # but its FID, and so every cell, the best row and the test, are as recorded: exit 0
    rewrite_csv(tmp_path / "rep" / "tables" / "curves.csv", lambda r: r.update(
        loss_g=f"{float(r['loss_g']) * 1.01:.10g}") if (r["label"], r["seed"], r["step"]) == ("dcgan", "1", "10")
        else None)
    held = bench_cli("reproduce", "rep", "--seeds", cwd=tmp_path, env=env)
    assert held.returncode == 0, held.stdout + held.stderr
    lines = held.stdout.strip().splitlines()
    trials = verdicts(held.stdout)
    assert sum(": identical (20 steps, final metrics identical)" in line for line in trials) == 3, held.stdout
    assert sum("dcgan digits seed=1: differs from step 10: loss_g" in line for line in trials) == 1, held.stdout
    for row in final:
        assert any(line.startswith(f"cell {row} digits fid_final: mean ") and " inside the recorded [" in line
                   for line in lines), held.stdout
    assert f"best on digits: {best}, as recorded" in lines
    assert "significance on digits: the same 1 calls (0 significant, mannwhitney, Holm-corrected p < 0.05)" in lines
    assert lines[-1] == "the report's conclusions hold here (3 of 4 trials bit-identical)"

    # the recorded table with the best method swapped: the best row differs, and so does the other's interval
    def swap(row):
        mine, theirs = final[row["row"]], final[other if row["row"] == best else best]
        row.update({k: theirs[k] for k in ("mean", "ci_low", "ci_high", "best", "values")})
        assert mine is not theirs

    rewrite_csv(tmp_path / "rep" / "tables" / "fid_final.csv", swap)
    refused = bench_cli("reproduce", "rep", "--seeds", cwd=tmp_path, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    out = refused.stdout.strip().splitlines()
    assert f"best on digits: {best} here, {other} recorded" in out, refused.stdout
    assert out[-1].startswith("the report's conclusions do NOT hold here (3 of 4 trials bit-identical): ")
    assert f"best on digits is {best}, {other} recorded" in out[-1]
    assert "Traceback" not in refused.stdout + refused.stderr
