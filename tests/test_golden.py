"""Golden numbers: a change that moves any method's losses, or the FID of a short trial, fails here.

Pinned on the CPU: every existing method trained 40 steps on digits at 16 px from seed 0 (the losses at steps 10,
20, 30 and 40), and one short DCGAN trial run through `bench run` with its final FID and KID. The trial keys of the
quickstart are pinned too, so existing records and checkpoints stay valid.

A change that is meant to move them regenerates them in the same commit, together with the example report:

    uv run python -m tests.test_golden      # rewrites tests/golden.json (under the pinned numerics: bench is
                                            # imported, through tests.conftest, before torch)
    uvx nox -s example                      # reruns the quickstart and rewrites reports/quickstart/
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_bench

GOLDEN = Path(__file__).with_name("golden.json")
METHODS = ("cdcgan", "dcgan", "lsgan", "vanilla", "wgan", "wgan-gp")
STEPS = 40

TRIAL_SUITE = """
name: golden
methods: [{dcgan: {width: 16}}]
datasets: [digits]
seeds: [0]
resolution: 16
batch_size: 64
budget: {steps: 40}
eval: {n_fake: 64, n_real: 128, metrics: [fid, kid]}
log: {every: 10, samples_every: 1000, checkpoint_every: 20}
"""


def method_losses(method: str) -> list[list[float]]:
    """[step, loss_d, loss_g] every 10 steps of a 40-step trial on digits (16 px, seed 0, width 16, batch 64)."""
    import torch

    from bench.data import load_dataset
    from bench.methods import get_method
    from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Trial
    from bench.train import Trainer

    params = get_method(method).Hyper(width=16).model_dump()
    trial = Trial(suite="golden", method=method, label=method, params=params, dataset=DatasetSpec(name="digits"),
                  seed=0, budget=Budget(steps=STEPS), resolution=16, batch_size=64, eval=EvalSpec(metrics=[]),
                  numerics=Numerics(), log=LogSpec(every=10, samples_every=1000, checkpoint_every=1000),
                  device="cpu")
    logged = []

    class Recorder:
        def log_metrics(self, metrics, step):
            logged.append([step, metrics["loss_d"], metrics["loss_g"]])

        def log_png(self, image, artifact_path):
            pass

    Trainer(trial, load_dataset("digits", 16), torch.device("cpu"), tracker=Recorder()).run()
    return logged


def quickstart_keys() -> list[str]:
    from bench.suite import expand, load_suite

    return [t.key for t in expand(load_suite(REPO / "suites" / "quickstart.yaml"))]


def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m.startswith("wgan") else m
                                    for m in METHODS])  # the critics' 5 steps per generator step: over 3 s
def test_losses_of_every_method_are_pinned(method):
    expected = golden()["losses"][method]
    got = method_losses(method)
    assert [row[0] for row in got] == [row[0] for row in expected]
    for (_, d, g), (_, d0, g0) in zip(got, expected, strict=True):
        assert math.isclose(d, d0, rel_tol=1e-6, abs_tol=1e-7), (method, got, expected)
        assert math.isclose(g, g0, rel_tol=1e-6, abs_tol=1e-7), (method, got, expected)


def test_quickstart_trial_keys_are_pinned():
    assert quickstart_keys() == golden()["quickstart_keys"]


def run_golden_trial(folder: Path) -> dict:
    suite = folder / "golden.yaml"
    suite.write_text(TRIAL_SUITE)
    result = run_bench("run", str(suite), "--runs-dir", str(folder / "runs"), "--tracking-uri",
                       f"sqlite:///{folder}/mlflow.db", cwd=folder, env={"BENCH_CACHE": str(folder / "cache")})
    assert result.returncode == 0, result.stderr
    status = next((folder / "runs" / "golden").glob("*/status.json"))
    final = json.loads(status.read_text())
    return {"losses": final["losses"], "fid": final["evaluations"][-1]["fid"],
            "kid": final["evaluations"][-1]["kid_mean"]}


@pytest.mark.slow
@pytest.mark.inception
@pytest.mark.process
def test_a_short_trial_through_bench_run_gives_the_pinned_losses_fid_and_kid(tmp_path):
    expected = golden()["trial"]
    got = run_golden_trial(tmp_path)
    for name in ("loss_d", "loss_g"):
        assert math.isclose(got["losses"][name], expected["losses"][name], rel_tol=1e-6), (got, expected)
    assert got["fid"] == pytest.approx(expected["fid"], abs=1e-3)
    assert got["kid"] == pytest.approx(expected["kid"], abs=1e-5)


def regenerate() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trial = run_golden_trial(Path(tmp))
    data = {"losses": {m: method_losses(m) for m in METHODS}, "quickstart_keys": quickstart_keys(),
            "trial": trial}
    GOLDEN.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    sys.exit(regenerate())
