"""Helpers several test modules share (fixtures live in conftest.py): a trial and data built in memory, a tracker
that records what training logs, a small suite file, one way to read a store's runs, and what a one-line refusal
looks like. A test module imports from here, never from another test module."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.data import ImageSet
from bench.methods import get_method
from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Trial


def chromium_path() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def postgres_bindir() -> Path | None:
    """Debian's PostgreSQL server binaries (initdb, pg_ctl), newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


# marker -> (is it on this machine?, the variable under which its absence fails instead of skipping, how to get it)
REQUIREMENTS = {
    "ray": (lambda: importlib.util.find_spec("ray") is not None, "BENCH_REQUIRE_RAY",
            "Ray is an optional extra: uv sync --extra ray"),
    "postgres": (lambda: postgres_bindir() is not None, "BENCH_REQUIRE_POSTGRES",
                 "PostgreSQL is not installed (Debian: apt-get install postgresql)"),
    "chromium": (lambda: chromium_path() is not None, "BENCH_REQUIRE_CHROMIUM",
                 "Chromium is not installed (Debian: apt-get install chromium)"),
    "qemu": (lambda: shutil.which("qemu-x86_64") is not None, "BENCH_REQUIRE_QEMU",
             "qemu-x86_64 is not installed (Debian: apt-get install qemu-user)"),
}


def require(name: str) -> None:
    """Skip the test when the machine lacks `name`; fail it where CI (.ci/run) says it must be there."""
    here, variable, how = REQUIREMENTS[name]
    if not here():
        if os.environ.get(variable):
            pytest.fail(f"{how}; {variable} says this machine must have it (.ci/run installs it)")
        pytest.skip(how)


def make_trial(method: str, resolution: int, steps: int = 3, dataset: str = "digits", **params) -> Trial:
    hyper = get_method(method).Hyper(width=8, **params).as_params()
    return Trial(suite="t", method=method, label=method, params=hyper, dataset=DatasetSpec(name=dataset), seed=0,
                 budget=Budget(steps=steps), resolution=resolution, batch_size=8, eval=EvalSpec(metrics=[]),
                 numerics=Numerics(), log=LogSpec(every=1, samples_every=1000, checkpoint_every=1000), device="cpu")


def random_data(channels: int, resolution: int, n: int = 32, classes: int = 4) -> ImageSet:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(n, channels, resolution, resolution, generator=gen) * 2 - 1
    labels = torch.arange(n) % classes
    return ImageSet(images, labels, [str(i) for i in range(classes)])


def logged_losses(records: list) -> list:
    """A RecordingTracker's (step, metrics) without the throughput, which varies from run to run; the losses must
    not."""
    return [(step, {k: v for k, v in m.items() if k != "images_per_s"}) for step, m in records]


class RecordingTracker:
    def __init__(self):
        self.metrics, self.images = [], {}

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_png(self, image, artifact_path):
        self.images[artifact_path] = image


TINY = """
name: {name}
methods: [{{dcgan: {{width: 8}}}}, {{lsgan: {{width: 8}}}}]
datasets: [digits]
seeds: {seeds}
resolution: 16
batch_size: 32
budget: {{steps: {steps}}}
eval: {{metrics: []}}
log: {{every: 10, samples_every: 1000, checkpoint_every: {checkpoint_every}}}
"""


def tiny(folder: Path, name: str = "tiny", seeds: int = 1, steps: int = 20, checkpoint_every: int = 10,
         extra: str = "") -> Path:
    """A suite file of two small methods on digits at 16 px, no evaluation."""
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(name=name, seeds=seeds, steps=steps, checkpoint_every=checkpoint_every) + extra)
    return path


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The process failed with `code` and said why in exactly one line on stderr, with no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def mlflow_runs(store: str | Path, suite: str) -> list:
    """The runs of `suite` in a tracking store (a URI, or a folder holding mlflow.db); [] when it has none."""
    from mlflow.tracking import MlflowClient

    uri = store if isinstance(store, str) and "://" in store else f"sqlite:///{Path(store) / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(suite)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def bench_main(monkeypatch, capsys, *args):
    """Run bench's entry point in-process; return (exit code, stdout, stderr)."""
    from bench import cli

    monkeypatch.setattr(sys, "argv", ["bench", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    out, err = capsys.readouterr()
    return done.value.code, out, err


def photo_folder(folder: Path, n: int = 100, seed: int = 0) -> Path:
    """n 48 px crops of the two photographs scikit-learn ships (a temple in China, a flower), as PNG files: a
    small real-photo dataset; another seed gives other crops of the same photographs."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    for i in range(n):
        photo = photos[i % 2]
        top, left = rng.integers(0, photo.shape[0] - 96), rng.integers(0, photo.shape[1] - 96)
        Image.fromarray(photo[top:top + 96, left:left + 96]).resize((48, 48)).save(folder / f"{i:03d}.png")
    return folder
