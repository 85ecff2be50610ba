"""`bench tune` as users run it: through the CLI, with real storages (SQLite, a journal file, a PostgreSQL server
started here on 127.0.0.1), real training and FID (a tiny protocol: 20 steps, FID of 16 samples).

The CLI runs in this process (`bench_cli`) unless the test is about processes: worker processes (`--parallel`, two
commands on one study), Ctrl-C, SIGKILL. In this process FID's features come from conftest's small stand-in for
Inception (`tiny_inception`) where the test is about the study, not about Inception's numbers; worker processes
and Ray workers score in the space of bench's digits encoder (`in_encoder_space`: a real network, no stand-in)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import bench_cli, run_bench, sqlite_store
from tests.support import REQUIREMENTS, mlflow_runs, postgres_bindir, require

TINY = """
name: tiny
methods: [{dcgan: {width: 8}}, {lsgan: {width: 8}}]
datasets: [digits]
seeds: [0]
resolution: 16
batch_size: 32
budget: {steps: 20}
eval: {every: 10, n_fake: 16, n_real: 64, metrics: [fid]}
log: {every: 10, samples_every: 1000, checkpoint_every: 10}
tune:
  space:
    batch_size: {choice: [32]}
    latent_dim: {choice: [100]}
    width: {choice: [8]}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One statistics cache for the module: the reference features are computed once."""
    return tmp_path_factory.mktemp("cache")


def tune(folder: Path, cache: Path, *args: str, suite: str = TINY) -> subprocess.CompletedProcess:
    """`bench tune ... --suite tiny.yaml` in `folder`, through the CLI in this process."""
    (folder / "tiny.yaml").write_text(suite)
    sqlite_store(folder)  # the records' default store, ./mlflow.db, as an empty one
    return bench_cli("tune", *args, "--suite", "tiny.yaml", cwd=folder, env={"BENCH_CACHE": str(cache)})


def final_fid_only(suite: str, steps: int | None = None) -> str:
    """The suite with one FID, at the end of a trial, of 8 samples against 32 (and `steps` long): for tests that need
    no pruning. Still a real FID, which the study minimises; subprocesses compute it with the real Inception."""
    suite = suite.replace("eval: {every: 10, n_fake: 16, n_real: 64", "eval: {every: 0, n_fake: 8, n_real: 32")
    return suite if steps is None else suite.replace("budget: {steps: 20}", f"budget: {{steps: {steps}}}")


def in_encoder_space(suite: str) -> str:
    """The suite's FID measured as FD in the space of bench's digits encoder (encoder:digits, a real network, ~1000x
    cheaper than Inception on 2 CPU cores): for tests of worker processes, where what is scored does not matter."""
    return suite.replace("metrics: [fid]", 'metrics: [fid], features: "encoder:digits"')


def study_of(storage, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def states(study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


def ray_available() -> bool:
    """CI installs the Ray extra and sets BENCH_REQUIRE_RAY: there the second run below is always Ray's."""

    return bool(os.environ.get("BENCH_REQUIRE_RAY")) or REQUIREMENTS["ray"][0]()


@pytest.mark.slow
@pytest.mark.process
def test_a_study_run_twice_proposes_and_scores_the_same_also_as_ray_tasks(tmp_path, cache):
    """A study run sequentially, then again (as 2 Ray workers on a local Ray instance, where Ray is installed, as in
    CI): the same proposals and the same FIDs, at equal --threads; the records nested under the study's parent.
    Both in the digits encoder's space (in this process, and in the Ray workers), FID at the end of each trial."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    values = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        on_ray = run == "b" and ray_available()
        extra = ["--executor", "ray", "--parallel", "2", "--storage", "s.journal"] if on_ray else []
        done = tune(folder, cache, "dcgan", "--trials", "2", "--threads", "1", *extra,
                    suite=in_encoder_space(final_fid_only(TINY)))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        if on_ray:
            assert "ray: 2 tune workers on the cluster at local" in done.stdout
        storage = (JournalStorage(JournalFileBackend(str(folder / "s.journal"))) if on_ray
                   else f"sqlite:///{folder}/optuna.db")
        study = study_of(storage, "tiny-dcgan-digits")
        assert states(study) == ["COMPLETE"] * 2
        values.append(sorted((t.number, t.params, t.value) for t in study.get_trials()))

        # the records: one parent run with the study's settings, one nested run per trial, tagged with the study
        runs = mlflow_runs(folder, "tiny")
        parents = [r for r in runs if r.data.tags.get("bench.study_parent") == "tiny-dcgan-digits"]
        children = [r for r in runs if r.data.tags.get("bench.study") == "tiny-dcgan-digits"]
        assert len(parents) == 1 and len(children) == 2
        assert parents[0].data.params["objective"] == "fid_final" and parents[0].data.params["trials"] == "2"
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
        assert sorted(r.data.tags["bench.tune_trial"] for r in children) == ["0", "1"]
        assert all(r.data.tags["bench.status"] == "finished" for r in children)
    assert values[0] == values[1]


SPLIT = TINY.replace("    width: {choice: [8]}", "    width: {choice: [8]}\n    lr_d: {choice: [0.0001, 1.0e+20]}")


@pytest.mark.slow
def test_pruned_and_diverged_trials_are_recorded_and_the_study_goes_on(tmp_path, cache, tiny_inception):
    """lr_d = 1e20 makes D's loss NaN at once: that trial fails with its reason and the next one is proposed; with
    the median pruner starting after one trial, worse trials are stopped at their first evaluation."""
    suite = SPLIT.replace("tune:\n", "tune:\n  startup_trials: 1\n")
    done = tune(tmp_path, cache, "dcgan", "--trials", "6", "--seed", "3", suite=suite)
    assert done.returncode == 0, done.stdout + done.stderr
    study = study_of(f"sqlite:///{tmp_path}/optuna.db", "tiny-dcgan-digits")
    got = states(study)
    assert got.count("COMPLETE") + got.count("PRUNED") == 6
    assert "FAIL" in got and "PRUNED" in got, got
    failed = next(t for t in study.get_trials() if t.state.name == "FAIL")
    assert failed.params["lr_d"] == 1e20 and "became nan" in failed.user_attrs["failure"]
    runs = {r.data.tags["bench.tune_trial"]: r for r in mlflow_runs(tmp_path, "tiny")
            if "bench.tune_trial" in r.data.tags}
    assert runs[str(failed.number)].data.tags["bench.status"] == "failed"
    assert runs[str(failed.number)].info.status == "FAILED"
    pruned = next(t for t in study.get_trials() if t.state.name == "PRUNED")
    record = runs[str(pruned.number)]
    assert record.data.tags["bench.status"] == "pruned" and record.data.tags["bench.pruned_step"] == "10"
    assert "pruned at step 10" in done.stdout


@pytest.mark.slow
def test_per_method_studies_get_equal_budgets_and_the_best_exports_as_a_runnable_suite(tmp_path, cache,
                                                                                       tiny_inception):
    done = tune(tmp_path, cache, "--per-method", "--trials", "2", "--study", "fair", "--export", "best.yaml",
                suite=final_fid_only(TINY))
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("dcgan", "lsgan"):
        study = study_of(f"sqlite:///{tmp_path}/optuna.db", f"fair-{label}")
        assert states(study) == ["COMPLETE", "COMPLETE"]
        exported = yaml.safe_load((tmp_path / f"best-{label}.yaml").read_text())
        best = min(study.get_trials(), key=lambda t: t.value)
        assert exported["seeds"] == 5 and exported["methods"][0]["label"] == f"{label}-tuned"
        assert exported["methods"][0]["params"]["lr_g"] == best.params["lr_g"]
        dry = bench_cli("run", f"best-{label}.yaml", "--dry-run", cwd=tmp_path)
        assert dry.returncode == 0 and dry.stdout.count(" new ") == 5, dry.stderr
    # export later, from the stored study alone
    again = bench_cli("tune", "dcgan", "--suite", "tiny.yaml", "--study", "fair-dcgan", "--export", "later.yaml",
                      cwd=tmp_path)
    assert again.returncode == 0 and (tmp_path / "later.yaml").exists(), again.stderr
    report = bench_cli("report", "--suite", "tiny", "--out", "report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    tuning = (tmp_path / "report" / "tables" / "tuning.csv").read_text()
    assert "fair-dcgan" in tuning and "fair-lsgan" in tuning
    assert (tmp_path / "report" / "figures" / "budget.png").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_workers(folder: Path, cache: Path, storage: str, trials: int = 4) -> list[subprocess.CompletedProcess]:
    """Two `bench tune` commands at once on one study, a core each."""
    (folder / "tiny.yaml").write_text(in_encoder_space(final_fid_only(TINY)))
    sqlite_store(folder)
    command = [sys.executable, "-m", "bench", "tune", "dcgan", "--suite", "tiny.yaml", "--trials", str(trials),
               "--storage", storage, "--study", "shared", "--threads", "1"]
    env = {**os.environ, "BENCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    return [subprocess.CompletedProcess(p.args, p.returncode, out, err) for p, (out, err) in zip(procs, outputs,
                                                                                                   strict=True)]


def check_shared_study(folder: Path, storage, results, trials: int = 4) -> None:
    study = study_of(storage, "shared")
    trials_ = study.get_trials()
    finished = [t for t in trials_ if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == trials  # exactly what was asked, whoever ran them
    assert len({t.number for t in trials_}) == len(trials_)  # every trial number once
    assert all(t.user_attrs.get("surplus") or any(u.user_attrs.get("retry_of") == t.number for u in trials_)
               for t in trials_ if t.state.name == "FAIL")  # only races gave way, or lost trials were retried
    assert all("training on cpu" in r.stdout for r in results)  # both workers contributed
    runs = [r for r in mlflow_runs(folder, "tiny") if r.data.tags.get("bench.study") == "shared"]
    keys = [r.data.tags["bench.trial_key"] for r in runs]
    assert len(runs) == trials and len(set(keys)) == trials  # one MLflow run per finished trial
    assert {t.user_attrs["bench_key"] for t in finished} == set(keys)


@pytest.mark.slow
@pytest.mark.process
def test_parallel_workers_share_a_journal_file_study_and_a_dead_one_is_replaced(tmp_path, cache):
    """`--parallel 2`: two worker processes on one journal file; one is killed mid-trial: its trial is failed and
    queued again, a new worker resumes it from its checkpoint, and the study still ends with exactly 3 finished."""
    import signal
    import time

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    (tmp_path / "tiny.yaml").write_text(in_encoder_space(final_fid_only(TINY, steps=150)))  # ~3 s a trial: time to
    # find and kill
    sqlite_store(tmp_path)
    command = [sys.executable, "-m", "bench", "tune", "dcgan", "--suite", "tiny.yaml", "--trials", "3", "--parallel",
               "2", "--storage", "study.journal", "--study", "shared"]
    env = {**os.environ, "BENCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    victim, deadline = None, time.time() + 300
    while victim is None and time.time() < deadline:
        time.sleep(0.1)
        if not (tmp_path / "study.journal").exists() or not list((tmp_path / "runs" / "tiny").glob("*/checkpoint.pt")):
            continue
        for t in study_of(storage, "shared").get_trials():
            key = t.user_attrs.get("bench_key")
            if t.state.name == "RUNNING" and key and (tmp_path / "runs" / "tiny" / key / "checkpoint.pt").exists():
                victim = t
                break
    assert victim is not None
    os.kill(int(victim.user_attrs["bench_worker"].rpartition(":")[2]), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in out + err, out + err
    assert "parallel: 2 tune workers on this machine" in out
    assert f"{victim.user_attrs['bench_job']}: its worker process died (signal 9, SIGKILL)" in out
    assert f"trial #{victim.number} lost its worker: queued again" in out and "resuming on cpu" in out
    check_shared_study(tmp_path, storage, [subprocess.CompletedProcess(command, 0, out, err)], trials=3)
    trials = study_of(storage, "shared").get_trials()
    assert {t.user_attrs["bench_job"] for t in trials} == {"w1", "w2"}  # both workers proposed and trained
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == victim.number)
    assert retry.params == victim.params and retry.state.name == "COMPLETE"
    assert trials[victim.number].state.name == "FAIL"


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl as an ordinary user), stopped afterwards."""
    require("postgres")
    bindir = postgres_bindir()
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    as_user: list[str] = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root: run it as the package's postgres user
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "bench"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "bench",
                        "optuna"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://bench@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.process
def test_two_workers_share_a_postgresql_study(tmp_path, cache, postgres):
    results = two_workers(tmp_path, cache, postgres)
    check_shared_study(tmp_path, postgres, results)


@pytest.mark.parametrize("args, message", [
    (["gan9000", "--trials", "2"], "unknown method 'gan9000'; known:"),
    (["dcgan", "--trials", "0"], "--trials 0: a study needs at least 1 trial"),
    (["dcgan", "--trials", "2", "--storage", "nosuch://x"], "--storage nosuch://x: cannot open it"),
    (["dcgan", "--trials", "2", "--storage", "postgresql+psycopg2://u@127.0.0.1:9/db"], "cannot open it"),
    (["dcgan", "--trials", "2", "--objective", "best"], "--objective best: use one of"),
    (["--trials", "2"], "name one method to tune"),
    (["dcgan", "--trials", "2", "--parallel", "2"], "SQLite ('sqlite:///optuna.db') is one process's: give "
                                                    "--storage FILE.journal"),
    (["dcgan", "--trials", "2", "--executor", "ray", "--address", "10.1.2.3:6379", "--storage", "s.journal"],
     "workers on other machines cannot open the study storage 's.journal'"),
    (["dcgan", "--trials", "2", "--executor", "dask"], "--executor dask: unknown"),
    (["dcgan", "--trials", "2", "--storage", "postgresql://u@127.0.0.1:1/x"],  # psycopg2's, not psycopg 3's
     "--storage postgresql://u@127.0.0.1:1/x: cannot open it (connection refused)"),
    (["dcgan", "--trials", "2", "--storage", "mysql://u@127.0.0.1:1/x"],
     "--storage mysql://u@127.0.0.1:1/x: the database driver MySQLdb is not installed; bench ships PostgreSQL's"),
    (["dcgan", "--trials", "2", "--storage", "/proc/o.journal"],
     "--storage /proc/o.journal: cannot write a journal file there"),
])
def test_bad_input_is_one_line_and_exit_code_2_before_any_training(tmp_path, args, message):
    result = tune(tmp_path, tmp_path / "cache", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "training on" not in result.stdout and not (tmp_path / "runs").exists()


def test_one_worker_of_the_processes_executor_may_keep_the_default_sqlite_study(tmp_path):
    """`--executor parallel` without --parallel runs one worker, which SQLite serves: it was refused as if two shared
    it. Here the run goes on to the next check (an unreachable tracking server, refused in one line)."""
    for args in (["--executor", "parallel"], ["--executor", "parallel", "--parallel", "1"]):
        result = tune(tmp_path, tmp_path / "cache", "dcgan", "--trials", "2", *args, "--tracking-uri",
                      "http://127.0.0.1:9")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "SQLite" not in result.stderr and "http://127.0.0.1:9" in result.stderr, result.stderr
    refused = tune(tmp_path, tmp_path / "cache", "dcgan", "--trials", "2", "--executor", "parallel", "--parallel", "2")
    assert refused.returncode == 2 and "2 tune workers share the study" in refused.stderr, refused.stderr


def test_a_space_with_unknown_names_empty_ranges_or_impossible_distributions_is_refused(tmp_path):
    for space, message in [
        ("    colour: {choice: [1]}", "tune.space.colour: unknown hyperparameter for method 'dcgan'"),
        ("    lr_g: {log_uniform: [0.01, 0.001]}", "tune.space.lr_g.log_uniform: an empty range [0.01, 0.001]"),
        ("    critic_steps: {uniform: [1, 5]}", "'critic_steps' is an integer; use {int: [low, high]}"),
        ("    beta1: {choice: [2.0]}", "2.0 is not a value 'beta1' of method 'dcgan' can take"),
        ("    lr_d: {gaussian: [0, 1]}", "tune.space.lr_d: give one of log_uniform, uniform, int, choice"),
    ]:
        result = tune(tmp_path, tmp_path / "cache", "dcgan", "--trials", "2", suite=TINY + space + "\n")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr, result.stderr


@pytest.mark.slow
def test_a_study_pins_its_protocol_and_its_first_trial_is_the_default_configuration(tmp_path, cache, tiny_inception):
    """A resumed study is refused under another method, objective, budget or numerics (one line naming the first
    difference and the --set that restores it); --export writes the study's protocol, not the command line's; a
    study made before protocols were pinned is resumed with a warning."""
    import sqlite3

    suite = final_fid_only(TINY)
    first = tune(tmp_path, cache, "dcgan", "--trials", "1", "--study", "mine", "--set", "budget.steps=12", suite=suite)
    assert first.returncode == 0, first.stderr
    storage = f"sqlite:///{tmp_path}/optuna.db"
    (trial,) = study_of(storage, "mine").get_trials()
    assert trial.user_attrs["default"] is True
    assert trial.params == {"batch_size": 32, "beta1": 0.5, "beta2": 0.999, "latent_dim": 100, "lr_d": 2e-4,
                            "lr_g": 2e-4, "width": 8}  # DCGAN's defaults (Radford et al.) within the space
    for args, what in ((["lsgan", "--trials", "2"], "exists with another method dcgan (asked: lsgan)"),
                       (["dcgan", "--trials", "2", "--objective", "fid_best", "--set", "budget.steps=12"],
                        "exists with another objective fid_final (asked: fid_best)"),
                       (["dcgan", "--trials", "2"], "was created with budget.steps 12, this command gives 20: a "
                                                    "study's trials share one protocol; resume it with the study's "
                                                    "settings (--set budget.steps=12), or start another study"),
                       (["dcgan", "--trials", "2", "--set", "budget.epochs=3"],
                        "was created with budget.epochs unset, this command gives 3 (and 1 more: budget.steps)"),
                       (["dcgan", "--trials", "2", "--set", "budget.steps=12", "--threads", "1"],
                        "was created with numerics.threads 2, this command gives 1"),
                       (["dcgan", "--trials", "2", "--set", "budget.steps=12", "--set", "eval.n_fake=9"],
                        "was created with eval.n_fake 8, this command gives 9")):
        again = tune(tmp_path, cache, *args, "--study", "mine", suite=suite)
        assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
        assert f"study 'mine' {what}" in again.stderr, again.stderr
    assert len(study_of(storage, "mine").get_trials()) == 1  # nothing was proposed under another protocol
    exported = tune(tmp_path, cache, "dcgan", "--study", "mine", "--export", "best.yaml", suite=suite)
    assert exported.returncode == 0, exported.stderr
    written = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert written["budget"] == {"steps": 12, "epochs": None} and written["eval"]["n_fake"] == 8
    with sqlite3.connect(tmp_path / "optuna.db") as db:  # as a study made by an older bench
        db.execute("DELETE FROM study_user_attributes WHERE key IN ('bench.protocol', 'bench.suite')")
    old = tune(tmp_path, cache, "dcgan", "--trials", "1", "--study", "mine", suite=suite)
    assert old.returncode == 0, old.stderr
    assert "warning: study mine was created before bench pinned a study's protocol" in old.stdout


@pytest.mark.slow
@pytest.mark.process
def test_ctrl_c_stops_parallel_workers_checkpointed_and_the_same_command_resumes(tmp_path, cache):
    """Ctrl-C reaches the command and its worker processes: each running trial checkpoints, the command says how to
    resume in one line (exit 130), and the same command finishes the study, resuming those trials."""
    import signal
    import time

    (tmp_path / "tiny.yaml").write_text(in_encoder_space(final_fid_only(TINY, steps=200)))  # ~4 s a trial: stopped
    # half way
    sqlite_store(tmp_path)
    command = [sys.executable, "-m", "bench", "tune", "dcgan", "--suite", "tiny.yaml", "--trials", "2", "--parallel",
               "2", "--storage", "study.journal", "--study", "stop"]
    env = {**os.environ, "BENCH_CACHE": str(cache)}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's foreground job
    deadline = time.time() + 300
    while time.time() < deadline and len(list((tmp_path / "runs" / "tiny").glob("*/run.json"))) < 2:
        time.sleep(0.05)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in out + err, (out, err)
    assert err.strip().splitlines()[-1].startswith("interrupted:") and "the same command resumes" in err
    stopped = [line for line in out.splitlines() if "stopped and checkpointed at step" in line]
    assert len(stopped) == 2, out  # which trial stopped where, for each worker
    again = run_bench(*command[3:], cwd=tmp_path, env={"BENCH_CACHE": str(cache)})
    assert again.returncode == 0 and "Traceback" not in again.stdout + again.stderr, again.stdout + again.stderr
    assert "resuming on cpu" in again.stdout
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = study_of(JournalStorage(JournalFileBackend(str(tmp_path / "study.journal"))), "stop")
    assert [t.state.name for t in study.get_trials()].count("COMPLETE") == 2


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.inception
def test_a_worker_killed_mid_trial_leaves_no_zombie_the_next_one_resumes_its_trial(tmp_path, cache, tiny_inception):
    """On a journal file there are no heartbeats: a running trial whose bench trial is unlocked lost its worker."""
    import signal
    import time

    (tmp_path / "tiny.yaml").write_text(final_fid_only(TINY, steps=100))
    sqlite_store(tmp_path)
    command = [sys.executable, "-m", "bench", "tune", "dcgan", "--suite", "tiny.yaml", "--trials", "2", "--storage",
               "study.journal", "--study", "killed"]
    env = {**os.environ, "BENCH_CACHE": str(cache)}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs" / "tiny").glob("*/checkpoint.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = bench_cli(*command[3:], cwd=tmp_path, env={"BENCH_CACHE": str(cache)})  # the next worker, a plain one
    assert again.returncode == 0, again.stdout + again.stderr
    assert "lost its worker: queued again" in again.stdout and "resuming on cpu" in again.stdout
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = study_of(JournalStorage(JournalFileBackend(str(tmp_path / "study.journal"))), "killed")
    by_state = {t.number: t.state.name for t in study.get_trials()}
    assert by_state[0] == "FAIL" and list(by_state.values()).count("COMPLETE") == 2
    retry = next(t for t in study.get_trials() if t.user_attrs.get("retry_of") == 0)
    assert retry.params == study.get_trials()[0].params and retry.state.name == "COMPLETE"


@pytest.mark.slow
def test_trials_that_finish_without_the_objective_stop_the_study_instead_of_spinning(tmp_path, monkeypatch,
                                                                                     tiny_inception):
    """A finished trial with no objective value (as when a worker ran other code than the study's) counts as a
    failure: three in a row stop the study in one line; before, each was retried with a new proposal, forever."""
    import bench.tune.study as study_module

    monkeypatch.setattr(study_module, "objective_value", lambda evaluations, objective: None)
    done = tune(tmp_path, tmp_path / "cache", "dcgan", "--trials", "2", suite=final_fid_only(TINY, steps=2))
    assert done.returncode == 2 and "trials all failed" in done.stderr, done.stdout + done.stderr
    study = study_of(f"sqlite:///{tmp_path}/optuna.db", "tiny-dcgan-digits")
    assert states(study) == ["FAIL"] * 3
    assert all("logged no fid_final" in t.user_attrs["failure"] for t in study.get_trials())
