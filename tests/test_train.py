"""Determinism, exact resume (also after SIGKILL), divergence handling and trial locking."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from bench.errors import BenchError
from bench.runner import run_trials
from bench.runs import RunOptions, trial_dir
from bench.suite import expand, load_suite
from bench.train import Trainer
from tests.conftest import REPO, bench_cli, sqlite_store
from tests.support import RecordingTracker, make_trial, random_data

CPU = torch.device("cpu")


def losses_of(method: str, steps: int, run_dir=None, stop_after=None, **params):
    tracker = RecordingTracker()
    trial = make_trial(method, 16, steps=steps, **params)
    trainer = Trainer(trial, random_data(1, 16), CPU, run_dir=run_dir, tracker=tracker)
    trainer.run(stop_after=stop_after)
    return only_losses(tracker.metrics), trainer


def only_losses(metrics):
    """Throughput varies from run to run; the losses must not."""
    return [(step, {k: m[k] for k in ("loss_d", "loss_g")}) for step, m in metrics]


@pytest.mark.parametrize("method", ["dcgan", "wgan-gp"])
def test_same_trial_twice_gives_identical_losses(method):
    first, a = losses_of(method, 12)
    second, b = losses_of(method, 12)
    assert first == second
    for pa, pb in zip(a.method.nets["generator"].parameters(), b.method.nets["generator"].parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("method", ["dcgan", "wgan", "wgan-gp", "cdcgan"])
def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path, method):
    full, uninterrupted = losses_of(method, 12)
    trial = make_trial(method, 16, steps=12)
    trial = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 5})})
    first = Trainer(trial, random_data(1, 16), CPU, run_dir=tmp_path, tracker=RecordingTracker())
    first.run(stop_after=7)  # last checkpoint at step 5; steps 6-7 are lost, as in a crash
    tracker = RecordingTracker()
    resumed = Trainer(trial, random_data(1, 16), CPU, run_dir=tmp_path, tracker=tracker)
    resumed.run()
    assert [s for s, _ in tracker.metrics] == list(range(6, 13))
    assert only_losses(tracker.metrics) == full[5:]
    for pa, pb in zip(uninterrupted.method.nets["generator"].state_dict().values(),
                      resumed.method.nets["generator"].state_dict().values(),
                      strict=True):
        assert torch.equal(pa, pb)


def test_a_checkpoint_written_before_named_networks_still_resumes_bit_identically(tmp_path):
    """tests/fixtures/legacy_dcgan_checkpoint.pt is in the layout of the code before the method interface changed
    (generator/discriminator/opt_g/opt_d, unnumbered), at step 5 of this very trial. Rewritten when bench's Adam
    became the fused one (the old file's numbers were the old optimiser's): today's step-5 checkpoint in the old
    layout, its optimizer groups saying `fused: None` as the old code saved them, which resume must not obey."""
    import shutil

    full, uninterrupted = losses_of("dcgan", 12)
    trial = make_trial("dcgan", 16, steps=12)
    trial = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 5})})
    shutil.copy(REPO / "tests" / "fixtures" / "legacy_dcgan_checkpoint.pt", tmp_path / "checkpoint.pt")
    assert "generator" in torch.load(tmp_path / "checkpoint.pt", weights_only=False)  # the old layout indeed
    tracker = RecordingTracker()
    resumed = Trainer(trial, random_data(1, 16), CPU, run_dir=tmp_path, tracker=tracker)
    resumed.run()
    assert only_losses(tracker.metrics) == full[5:]
    for pa, pb in zip(uninterrupted.method.nets["generator"].parameters(),
                      resumed.method.nets["generator"].parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_resume_with_a_different_config_is_refused(tmp_path):
    trial = make_trial("dcgan", 16, steps=4)
    Trainer(trial, random_data(1, 16), CPU, run_dir=tmp_path).run(stop_after=4)
    other = make_trial("dcgan", 16, steps=4, lr_g=1e-3)
    with pytest.raises(BenchError, match=r"different config \(changed: params\)"):
        Trainer(other, random_data(1, 16), CPU, run_dir=tmp_path).run()


def test_diverged_trial_is_recorded_as_failed_and_the_suite_goes_on(tiny_suite, tmp_path):
    path = tiny_suite("""
name: nan
methods: [{name: wgan-gp, label: exploding, params: {lr_d: 1.0e+20, width: 8}}, {dcgan: {width: 8}}]
datasets: [digits]
seeds: 1
resolution: 16
batch_size: 32
budget: {steps: 6}
eval: {metrics: []}
""")
    lines = []
    result = run_trials(expand(load_suite(path)), RunOptions(runs_root=tmp_path / "runs"), say=lines.append)
    assert result.counts["failed"] == 1 and result.counts["finished"] == 1 and result.exit_code == 1
    failed = expand(load_suite(path))[0]
    status = json.loads((trial_dir(failed, tmp_path / "runs") / "status.json").read_text())
    assert status["status"] == "failed" and status["step"] == 1 and "loss_d became nan" in status["reason"]
    # a rerun skips both: the finished one and the failed one (which would fail the same way)
    again = run_trials(expand(load_suite(path)), RunOptions(runs_root=tmp_path / "runs"), say=lines.append)
    assert again.counts["skipped"] == 1 and again.counts["skipped_failed"] == 1
    assert again.exit_code == 1  # a rerun that skips a failed trial says so in its exit code


KILL_SUITE = """
name: kill
methods: [{dcgan: {width: 8}}]
datasets: [digits]
seeds: [3]
resolution: 16
batch_size: 32
budget: {steps: 200}
eval: {metrics: []}
log: {every: 10, samples_every: 1000, checkpoint_every: 20}
"""


@pytest.mark.slow
@pytest.mark.process
def test_sigkill_mid_trial_then_rerun_equals_uninterrupted_run(tiny_suite, tmp_path):
    suite = tiny_suite(KILL_SUITE)
    trial = expand(load_suite(suite))[0]
    common = ["--tracking-uri", sqlite_store(tmp_path)]  # the trial's numerics (threads too) in either process

    # uninterrupted reference
    ref = bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "ref"), *common, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr

    # a real process, killed with SIGKILL after its second checkpoint
    killed_runs = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--runs-dir", str(killed_runs),
                             *common], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = trial_dir(trial, killed_runs) / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["step"] >= 40:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (trial_dir(trial, killed_runs) / "status.json").exists(), "the trial finished before the kill"
    step_at_kill = torch.load(ckpt, weights_only=False)["step"]
    assert 40 <= step_at_kill < 200

    resumed = bench_cli("run", str(suite), "--runs-dir", str(killed_runs), *common, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout

    a = json.loads((trial_dir(trial, tmp_path / "ref") / "status.json").read_text())
    b = json.loads((trial_dir(trial, killed_runs) / "status.json").read_text())
    assert a["losses"] == b["losses"]
    ga = torch.load(trial_dir(trial, tmp_path / "ref") / "checkpoint.pt", weights_only=False)["networks"]["generator"]
    gb = torch.load(ckpt, weights_only=False)["networks"]["generator"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)

    # the resumed trial re-opened its MLflow run: one run per trial, full loss history to the last step
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("kill").experiment_id])
    by_dir = {r.data.tags["bench.trial_key"]: r for r in runs}
    assert len(runs) == 2 and set(by_dir) == {trial.key}  # one for the reference, one for the killed+resumed
    for run in runs:
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "loss_d")}
        assert steps == set(range(10, 201, 10))
        assert run.data.tags["bench.status"] == "finished"


@pytest.mark.slow
@pytest.mark.process
def test_two_processes_never_train_the_same_trial(tiny_suite, tmp_path):
    suite = tiny_suite(KILL_SUITE.replace("steps: 200", "steps: 100"))
    cmd = [sys.executable, "-m", "bench", "run", str(suite), "--runs-dir", str(tmp_path / "runs"),
           "--tracking-uri", sqlite_store(tmp_path), "--threads", "1"]  # two processes on two cores
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    trained = [o for o in outputs if "training on" in o]
    assert len(trained) == 1, outputs
    other = next(o for o in outputs if o is not trained[0])
    assert "being trained by another process" in other or "already finished" in other
