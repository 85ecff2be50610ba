"""`bench tune ... --parallel N [--per-gpu K]` and `bench tune ... --executor ray [--address ADDR]`: N tune workers
on one study, each the same `run_worker` loop as a `bench tune` started by hand, sharing the study through its
storage (so the study ends with exactly `trials` finished or pruned trials, whoever ran them).

- `parallel`: N spawned processes on this machine, in the slots of `bench run --parallel` (GPU i // K, or
  cores / N threads each). The storage must be shareable between processes: a journal file or a database URL.
- `ray`: N Ray tasks (1 CPU and 1/K GPU each; N defaults to the cluster's slots, at most `trials`). Workers on
  other machines must reach the storage and the tracking store: with a remote `--address`, a database URL and an
  MLflow server are required.
- A worker that dies fails only its running trial: its Optuna trial is failed and its parameters queued again
  (the retry resumes the bench trial from its checkpoint), and a new worker takes the slot while the study is short.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from typing import Any

from bench.errors import BenchError, Interrupted


@dataclass
class WorkerJob:
    """All a tune worker needs, picklable: it opens the storage and the data itself."""

    base: Any  # bench.suite.Suite
    settings: Any  # bench.tune.study.StudySettings
    storage: str | None  # the --storage text
    pruner: tuple  # make_pruner's arguments
    options: Any  # bench.runner.RunOptions of the worker's slot
    parent_run_id: str | None
    name: str  # how its lines are prefixed: "w1"


def tune_worker(job: WorkerJob, send: Callable[[str], None] | None = None,
                should_stop: Callable[[], bool] = bool) -> dict:
    """Runs in a worker process or Ray task: proposals of the study until it is full. Returns what it did. Its
    lines go to `send` (the parent prints them above its status line), else to this process's stdout."""
    from bench.preflight import DataCache
    from bench.progress import Console
    from bench.tune.study import Worker, load_or_create, make_pruner, open_storage, run_worker

    console = Console(live=False, milestones=False)
    send = send or console.say

    def say(line: str) -> None:
        send(f"{job.name} {line}")

    try:
        storage, _ = open_storage(job.storage)
        study = load_or_create(job.settings, storage, make_pruner(*job.pruner))
        worker = Worker(job.base, job.settings, job.options, console, say, DataCache(job.options.data_root),
                        job.parent_run_id, owner=job.name, should_stop=should_stop)
        try:
            run_worker(worker, study)
        except (Interrupted, KeyboardInterrupt):
            return {"trained": worker.trained, "interrupted": True}
        return {"trained": worker.trained}
    except KeyboardInterrupt:
        return {"trained": 0, "interrupted": True}
    except BenchError as err:
        return {"trained": 0, "error": str(err)}


def check_shared_storage(storage: str | None, workers: int, executor: str, address: str | None,
                         tracking_uri: str | None) -> None:
    """One line, before anything trains, when the workers could not share the study or write the records."""
    from bench.ray_executor import _is_local

    text = storage or "sqlite:///optuna.db"
    remote = executor == "ray" and address is not None and not _is_local(address)
    if remote:
        if "://" not in text or text.startswith("sqlite"):
            raise BenchError(f"--executor ray --address {address}: workers on other machines cannot open the study "
                             f"storage '{text}' of this one; give a database they can reach "
                             "(--storage postgresql+psycopg2://USER@HOST/DB)")
        if not (tracking_uri or "").startswith(("http://", "https://")):
            raise BenchError(f"--executor ray --address {address}: the workers on other machines cannot write to "
                             f"the tracking store '{tracking_uri or 'none'}' of this one; start an MLflow server "
                             "(`mlflow server --host 0.0.0.0`) and pass --tracking-uri http://HOST:5000")
    elif workers > 1 and text.startswith("sqlite"):
        raise BenchError(f"{workers} tune workers share the study through its storage, and SQLite ('{text}') is "
                         "one process's: give --storage FILE.journal (this machine) or a PostgreSQL URL (machines)")


def requeue_lost(job: WorkerJob, say: Callable[[str], None]) -> None:
    """After a worker died: fail its running trial and queue its parameters again (also on databases, whose
    heartbeats would do it only after their grace period)."""
    from bench.tune.study import load_or_create, make_pruner, open_storage, retry_lost_trials

    storage, _ = open_storage(job.storage)
    study = load_or_create(job.settings, storage, make_pruner(*job.pruner))
    retry_lost_trials(study, job.options.runs_root, job.base.name, say, owner=job.name)


def study_short(job: WorkerJob) -> bool:
    """Whether the study still needs trials that no worker is running."""
    from bench.tune.study import counts, load_or_create, make_pruner, open_storage

    storage, _ = open_storage(job.storage)
    c = counts(load_or_create(job.settings, storage, make_pruner(*job.pruner)))
    return c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] < job.settings.trials or bool(c["WAITING"])


# --parallel ------------------------------------------------------------------------------------------------------

def _process_main(conn, job: WorkerJob) -> None:
    from bench.runner import ctrl_c_stops_training

    # Ctrl-C reaches every process of the terminal's group: the running trial checkpoints after its step, its
    # parameters are queued again, and the worker returns (the parent says it once)
    with ctrl_c_stops_training(quiet=True) as stop_requested:
        result = tune_worker(job, lambda line: conn.send(("line", line)), stop_requested)
    conn.send(("result", result))


def run_parallel(jobs: list[WorkerJob], say: Callable[[str], None], tick: Callable[[], None] = lambda: None
                 ) -> list[dict]:
    """Each job in a spawned process; a process that dies is replaced while the study is short."""
    context = mp.get_context("spawn")

    def start(job: WorkerJob):
        parent, child = context.Pipe()
        process = context.Process(target=_process_main, args=(child, job), daemon=True)
        process.start()
        child.close()
        return process, parent

    running = {i: start(job) for i, job in enumerate(jobs)}
    results: list[dict] = []
    try:
        while running:
            wait([c for _, c in running.values()] + [p.sentinel for p, _ in running.values()], timeout=1.0)
            tick()
            for i, (process, conn) in list(running.items()):
                ended = False
                while conn.poll():
                    try:
                        kind, value = conn.recv()
                    except (EOFError, OSError):
                        break
                    if kind == "line":
                        say(value)
                    else:
                        results.append(value)
                        ended = True
                        break
                if ended:
                    process.join(10)
                    del running[i]
                    continue
                if process.is_alive():
                    continue
                process.join(1)
                del running[i]
                code = process.exitcode
                why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                say(f"{jobs[i].name} died ({why}); its running trial fails and is queued again")
                requeue_lost(jobs[i], say)
                if study_short(jobs[i]):
                    running[i] = start(jobs[i])
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them checkpoint and return
        for process, _ in running.values():
            process.join(60)
        raise Interrupted("interrupted: the running trials checkpointed; the same command resumes the study") \
            from None
    finally:
        for process, _ in running.values():
            if process.is_alive():
                process.kill()
    return results


# --executor ray --------------------------------------------------------------------------------------------------

def run_ray(make_jobs: Callable[[int], list[WorkerJob]], workers: int | None, address: str | None, per_gpu: int,
            on_cuda: bool, say: Callable[[str], None], tick: Callable[[], None] = lambda: None) -> list[dict]:
    """`workers` Ray tasks (None: one per slot of the cluster: GPUs x K on CUDA, else its CPUs)."""
    from bench.ray_executor import _ray

    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise BenchError(f"--executor ray: cannot reach the Ray cluster at {address or 'local'} "
                             f"({str(err).splitlines()[0][:200]}); start it with `ray start --head` or drop "
                             "--address for a local one") from None
    try:
        if workers is None:
            resources = ray.cluster_resources()
            workers = int(resources.get("GPU", 0) * per_gpu) if on_cuda else int(resources.get("CPU", 1))
        jobs = make_jobs(max(1, workers))
        say(f"ray: {len(jobs)} tune workers on the cluster at {address or 'local'}")
        task = ray.remote(num_cpus=1, num_gpus=(1.0 / per_gpu) if on_cuda else 0, max_retries=0)(tune_worker)
        running = {task.remote(job): job for job in jobs}
        results: list[dict] = []
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                tick()
                for ref in ready:
                    job = running.pop(ref)
                    try:
                        results.append(ray.get(ref))
                    except ray.exceptions.RayError as err:  # the worker died (crash, OOM, node lost)
                        reason = str(err).strip().splitlines()[0][:200]
                        say(f"{job.name}: its Ray worker died ({type(err).__name__}: {reason}); its running trial "
                            "fails and is queued again")
                        requeue_lost(job, say)
                        if study_short(job):
                            running[task.remote(job)] = job
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref)  # a KeyboardInterrupt in each task: its trial stops, its parameters are queued again
            ray.wait(list(running), num_returns=len(running), timeout=60)
            raise Interrupted("interrupted: the running trials stopped and keep their last checkpoint; the same "
                              "command resumes the study") from None
        return results
    finally:
        if started_here:
            ray.shutdown()


class StudyProgress:
    """What the workers of one study have done, read from its storage: on a terminal (`live`) a status line under
    the workers' lines, refreshed every few seconds; else a plain line whenever the count of ended trials changes."""

    def __init__(self, study, trials: int, console, live: bool):
        self.study, self.trials, self.console, self.live = study, trials, console, live
        self.start, self.last_read, self.said = time.perf_counter(), 0.0, -1

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self.last_read < (2.0 if self.live else 10.0):
            return
        self.last_read = now
        from bench.progress import duration
        from bench.tune.study import counts

        try:
            c = counts(self.study)
        except Exception:  # noqa: BLE001 - a storage hiccup costs one status line, never the study
            return
        done = c["COMPLETE"] + c["PRUNED"]
        text = (f"study {self.study.study_name}: {done}/{self.trials} done ({c['PRUNED']} pruned, {c['FAIL']} failed),"
                f" {c['RUNNING']} running")
        if done:
            text += f", ETA {duration((now - self.start) / done * max(self.trials - done, 0))}"
        if self.live:
            self.console.status(text)
        elif done != self.said:
            self.said = done
            self.console.say(text)


def worker_jobs(base, settings, storage, pruner, options, parent_run_id, default_trial, slots) -> list[WorkerJob]:
    """One job per slot (bench.executors.Slot: its GPU and threads)."""
    from bench.executors import slot_device

    return [WorkerJob(base, settings, storage, pruner,
                      replace(options, device=slot_device(slot, default_trial, options.device),
                              threads=options.threads or slot.threads), parent_run_id, f"w{i}")
            for i, slot in enumerate(slots, 1)]
