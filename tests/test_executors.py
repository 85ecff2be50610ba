"""Executors: `--parallel N` worker processes and Ray tasks run the same `run_trial` as the local executor, so a
trial's records do not depend on who ran it; a worker that dies fails only its trial, which the next run resumes.

Commands with worker processes run as a user runs them (`python -m bench`); the local executor's reference runs,
and the mistakes refused before any worker starts, go through the CLI in this process (`bench_cli`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import bench_cli, run_bench, sqlite_store
from tests.support import mlflow_runs, require

SUITE = """
name: ex
methods: [{{dcgan: {{width: 8}}}}]
datasets: [digits]
seeds: {seeds}
resolution: 16
batch_size: 32
budget: {{steps: {steps}}}
eval: {{metrics: []}}
log: {{every: 10, samples_every: 1000000, checkpoint_every: {checkpoint}}}
device: cpu
"""


def write_suite(folder: Path, seeds: int, steps: int, checkpoint: int = 1000) -> Path:
    """ex.yaml in `folder`, beside an empty default store (./mlflow.db)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ex.yaml"
    path.write_text(SUITE.format(seeds=seeds, steps=steps, checkpoint=checkpoint))
    sqlite_store(folder)
    return path


def statuses(folder: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (folder / "runs" / "ex").glob("*/status.json")}


@pytest.mark.slow
@pytest.mark.process
def test_parallel_trains_trials_at_once_each_once_with_the_local_executors_numbers(tmp_path):
    write_suite(tmp_path / "local", seeds=2, steps=40)
    write_suite(tmp_path / "par", seeds=2, steps=40)
    local = bench_cli("run", "ex.yaml", cwd=tmp_path / "local")
    par = run_bench("run", "ex.yaml", "--parallel", "2", cwd=tmp_path / "par")
    assert local.returncode == 0 and par.returncode == 0, par.stdout + par.stderr
    keys = statuses(tmp_path / "par")
    assert len(keys) == 2
    for key in keys:  # each trial started once, ended once
        assert par.stdout.count(f"{key} dcgan digits") == 2, par.stdout
    assert "parallel: 2/2 done" in par.stdout
    # every worker computes with the trial's numerics (pinned kernels, numerics.threads): the local executor's numbers
    assert {k: s["losses"] for k, s in keys.items()} == \
        {k: s["losses"] for k, s in statuses(tmp_path / "local").items()}
    runs = mlflow_runs(tmp_path / "par", "ex")
    assert sorted(r.data.tags["bench.status"] for r in runs) == ["finished", "finished"]
    a, b = runs
    assert a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time  # the two overlapped


class _WaitPolicy:
    """A job that answers with its worker's OMP_WAIT_POLICY."""
    name, cpus = "policy", 1

    def __call__(self, ctx):
        return os.environ.get("OMP_WAIT_POLICY")

    def lost(self, why, say):
        return why

    def follow_up(self, result):
        return None


@pytest.mark.slow
@pytest.mark.process
def test_cpu_workers_that_outnumber_the_cores_wait_passively_and_a_users_setting_wins(monkeypatch):
    """Spinning torch threads of two workers on the cores of one made each 8x slower (conftest's figures)."""
    from bench.executors.base import Slot
    from bench.executors.processes import ProcessExecutor, oversubscribed
    from bench.progress import Console

    cores = len(os.sched_getaffinity(0))
    assert not oversubscribed([Slot(None)] * (cores // 2)) and oversubscribed([Slot(None)] * (cores // 2 + 1))
    assert not oversubscribed([Slot("cuda:0")] * (cores + 1))  # GPU workers leave the CPU to each other
    slots = [Slot(None)] * (cores // 2 + 1)
    for user, seen in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        if user is None:
            monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        else:
            monkeypatch.setenv("OMP_WAIT_POLICY", user)
        got: list[str | None] = []
        with ProcessExecutor(slots, Console(live=False), quiet=True) as executor:  # 2 jobs: 2 workers start
            executor.run([_WaitPolicy(), _WaitPolicy()], lambda job, result, got=got: got.append(result),
                         lambda: False)
        assert got == [seen, seen]
        assert os.environ.get("OMP_WAIT_POLICY") == user  # this process's environment as it was


def _spawned_children(pid: int) -> list[int]:
    """The multiprocessing workers (spawned interpreters) whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def run_records(folder: Path) -> list[tuple[str, str, str]]:
    """(MLflow status, bench.status, bench.failure_reason) of every run of the suite, sorted."""
    return sorted((r.info.status, r.data.tags.get("bench.status", ""), r.data.tags.get("bench.failure_reason", ""))
                  for r in mlflow_runs(folder, "ex"))


def report_summary(folder: Path) -> str:
    report = bench_cli("report", "--suite", "ex", "--out", "report", cwd=folder)
    assert report.returncode == 0, report.stderr
    page = (folder / "report" / "README.md").read_text()
    return next(line for line in page.splitlines() if " trials: " in line)


@pytest.mark.slow
@pytest.mark.process
def test_a_killed_worker_fails_only_its_trial_told_the_same_everywhere_and_retry_failed_resumes_it(tmp_path):
    suite = write_suite(tmp_path, seeds=3, steps=150, checkpoint=10)  # ~3 s a trial on a core
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", suite.name, "--parallel", "2"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list((tmp_path / "runs" / "ex").glob("*/checkpoint.pt"))) < 2 and time.time() < deadline:
        time.sleep(0.2)  # both workers' trials have a checkpoint: whichever is killed has one to resume from
    workers = _spawned_children(proc.pid)
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    died = ": FAILED: its worker process died (signal 9, SIGKILL); its checkpoint at step "
    assert out.count(died) == 2 and "`--retry-failed` resumes it from there" in out, out  # as it happened + summary
    assert "2 trained, 0 already finished, 1 FAILED" in out
    assert "Traceback" not in out + err
    assert sorted(s["status"] for s in statuses(tmp_path).values()) == ["failed", "finished", "finished"]
    # the records say what the console said, and so does the report
    assert run_records(tmp_path) == [("FAILED", "failed", "its worker process died (signal 9, SIGKILL)"),
                                     ("FINISHED", "finished", ""), ("FINISHED", "finished", "")]
    assert "3 trials: 2 finished, 1 failed, 0 incomplete." in report_summary(tmp_path)

    skipped = run_bench("run", suite.name, "--parallel", "2", cwd=tmp_path)
    assert skipped.returncode == 1 and "1 failed earlier and skipped (--retry-failed trains them again)" in \
        skipped.stdout, skipped.stdout + skipped.stderr
    again = run_bench("run", suite.name, "--parallel", "2", "--retry-failed", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("resuming on cpu") == 1 and again.stdout.count("already finished, skipped") == 2
    assert sorted(s["status"] for s in statuses(tmp_path).values()) == ["finished"] * 3
    runs = mlflow_runs(tmp_path, "ex")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)  # the killed run was re-opened
    assert {r.data.tags["bench.status"] for r in runs} == {"finished"}


@pytest.mark.slow
@pytest.mark.process
def test_workers_killed_before_their_trials_had_a_record_leave_a_failed_record_and_no_promised_checkpoint(
        tmp_path):
    suite = write_suite(tmp_path, seeds=2, steps=150, checkpoint=10)
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", suite.name, "--parallel", "2"], cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline, workers = time.time() + 120, []
    while len(workers) < 2 and time.time() < deadline:  # killed while still starting: before any MLflow run
        workers = _spawned_children(proc.pid)
        time.sleep(0.05)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in out + err, out + err
    assert out.count("it wrote no checkpoint: `--retry-failed` trains it from the start") == 4, out
    assert "0 trained, 0 already finished, 2 FAILED" in out and "checkpoint at step" not in out
    assert run_records(tmp_path) == [("FAILED", "failed", "its worker process died (signal 9, SIGKILL)")] * 2
    assert "2 trials: 0 finished, 2 failed, 0 incomplete." in report_summary(tmp_path)


@pytest.mark.slow
@pytest.mark.process
def test_sigterm_stops_a_run_within_seconds_with_its_trials_recorded_interrupted(tmp_path):
    """The parent and its workers each take SIGTERM (the parent passes it on) as the handler that also stops a
    trial trained in the main process (the local executor)."""
    args = ["--parallel", "2"]
    suite = write_suite(tmp_path, seeds=2, steps=100000, checkpoint=10)
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", suite.name, *args], cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    training = 2
    deadline = time.time() + 180
    while len(list((tmp_path / "runs" / "ex").glob("*/checkpoint.pt"))) < training and time.time() < deadline:
        time.sleep(0.2)
    workers = _spawned_children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    out, err = proc.communicate(timeout=120)
    took = time.time() - sent
    assert proc.returncode == 130 and "Traceback" not in out + err, out + err
    assert took < 60, f"{took:.0f} s after SIGTERM"  # a bound on a hang, not a speed figure (15 s deadline)
    assert "terminated (SIGTERM): stopping after this step" in err
    assert out.count("stopped and checkpointed at step") + err.count("stopped and checkpointed at step") == training
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # no worker outlives the run
    assert run_records(tmp_path) == [("KILLED", "interrupted", "")] * training
    again = run_bench("run", suite.name, "--dry-run", cwd=tmp_path)
    assert again.stdout.count(" interrupted ") == training, again.stdout


@pytest.mark.slow
@pytest.mark.process
def test_without_ray_the_ray_executor_is_refused_by_dry_run_and_run_in_one_line(tmp_path):
    """An environment without the Ray extra (a `ray` that cannot be imported first on the path)."""
    write_suite(tmp_path, seeds=1, steps=5)
    (tmp_path / "noray").mkdir()
    (tmp_path / "noray" / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "noray"), os.environ.get("PYTHONPATH", "")])}
    result = run_bench("run", "ex.yaml", "--executor", "ray", "--dry-run", cwd=tmp_path, env=env)  # as a real run
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--executor ray needs Ray, an optional extra: run `uv sync --extra ray`" in result.stderr


def test_executor_mistakes_are_one_line_exit_2(tmp_path):
    write_suite(tmp_path, seeds=1, steps=5)
    for args, expected in ((["--parallel", "0"], "--parallel 0 --per-gpu 1: give the number"),
                           (["--executor", "spark"], "--executor spark: unknown")):
        result = bench_cli("run", "ex.yaml", *args, cwd=tmp_path)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def need_ray():
    """Ray is an optional extra; CI installs it and sets BENCH_REQUIRE_RAY so these tests run there."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # as bench.executors.ray_tasks.import_ray does
    require("ray")
    import ray

    return ray


@pytest.mark.ray
def test_ray_refuses_a_local_store_for_a_remote_cluster(tmp_path):
    need_ray()
    write_suite(tmp_path, seeds=1, steps=5)
    result = bench_cli("run", "ex.yaml", "--executor", "ray", "--address", "10.1.2.3:6379", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot write to the tracking store 'sqlite:///mlflow.db'" in result.stderr
    assert "--tracking-uri http://" in result.stderr


@pytest.mark.ray
def test_ray_refuses_a_gpu_index_which_names_no_gpu_of_its_tasks(tmp_path):
    """A task sees its one GPU as cuda:0: `--device cuda:1` failed every trial there; now one line before any."""
    need_ray()
    write_suite(tmp_path, seeds=1, steps=5)
    for args in (["--device", "cuda:1"], ["--set", "device=cuda:1"]):
        result = bench_cli("run", "ex.yaml", "--executor", "ray", *args, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "--executor ray with device cuda:1: Ray picks each task's GPU" in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()


@dataclass
class _Held:
    """A job that holds its Ray task `seconds` long and answers with what Ray reserved for it, and when it ran."""
    cpus: int
    seconds: float = 0.0
    name: str = "held"

    def __call__(self, ctx):
        import ray

        start = time.time()
        time.sleep(self.seconds)
        return self.cpus, ray.get_runtime_context().get_assigned_resources(), start, time.time()

    def lost(self, why, say):
        raise AssertionError(why)

    def follow_up(self, result):
        return None


def ray_jobs(placement, jobs: list) -> list:
    from bench.executors.ray_tasks import RayExecutor
    from bench.progress import Console

    results = []
    with RayExecutor(placement, None, {"cpu"}, Console(live=False)) as executor:
        executor.run(jobs, lambda job, result, results=results: results.append(result), lambda: False)
    return results


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.process
def test_ray_tasks_give_the_local_executors_records(tmp_path):
    from bench.executors import Placement
    from bench.runner import run_trials
    from bench.runs import RunOptions
    from bench.suite import expand, load_suite

    ray = need_ray()

    write_suite(tmp_path / "local", seeds=2, steps=20)
    local = bench_cli("run", "ex.yaml", cwd=tmp_path / "local")
    assert local.returncode == 0, local.stderr

    write_suite(tmp_path / "ray", seeds=2, steps=20)
    trials = expand(load_suite(tmp_path / "ray" / "ex.yaml"))
    options = RunOptions(runs_root=tmp_path / "ray" / "runs",
                         tracking_uri=f"sqlite:///{tmp_path / 'ray' / 'mlflow.db'}")
    ray.init(num_cpus=4, include_dashboard=False)
    try:
        result = run_trials(trials, options, placement=Placement("ray"))
        # a task reserves the threads its job computes with (it asked 1 CPU and computed with 2: two such trials
        # shared 2 cores); --parallel caps how many run at once (all were submitted, whatever it said)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's jobs: the workers lack tests/
        assigned = ray_jobs(Placement("ray"), [_Held(cpus=2), _Held(cpus=1), _Held(cpus=9)])
        assert sorted((asked, a["CPU"]) for asked, a, _, _ in assigned) == [(1, 1.0), (2, 2.0), (9, 4.0)]  # <= a node's
        one_at_a_time = sorted((start, end) for _, _, start, end in ray_jobs(Placement("ray", parallel=1),
                                                                             [_Held(1, 1.0), _Held(1, 1.0)]))
        assert one_at_a_time[0][1] <= one_at_a_time[1][0], one_at_a_time
    finally:
        ray.shutdown()
    assert result.exit_code == 0 and result.counts["finished"] == 2
    assert {k: s["losses"] for k, s in statuses(tmp_path / "ray").items()} == \
        {k: s["losses"] for k, s in statuses(tmp_path / "local").items()}
    for folder in ("local", "ray"):
        runs = sorted(mlflow_runs(tmp_path / folder, "ex"), key=lambda r: r.data.tags["bench.trial_key"])
        assert [r.data.tags["bench.status"] for r in runs] == ["finished", "finished"]
    ours, theirs = (sorted(mlflow_runs(tmp_path / f, "ex"), key=lambda r: r.data.tags["bench.trial_key"])
                    for f in ("ray", "local"))
    for a, b in zip(ours, theirs, strict=True):
        assert a.data.metrics["loss_d"] == b.data.metrics["loss_d"] and a.data.params == b.data.params
