"""Where trials run. Every executor calls the same `run_trial` (bench/runner.py), so the records (MLflow, runs
folder, checkpoints) are the same whoever runs a trial; they differ only in where it runs.

- `local` (bench/runner.py `run_trials`): one trial after another in this process.
- `parallel` (`--parallel N [--per-gpu K]`): N worker processes on this machine. Each worker owns a slot: on
  GPUs, worker i uses GPU i // K (K workers share a GPU); on the CPU each gets cores // N threads. A worker takes
  the next queued trial when it is free. A worker that dies (out of memory killer, SIGKILL) fails only its trial,
  which keeps its checkpoint and is resumed by the next run; a new worker takes its slot.
- `ray` (`--executor ray [--address ADDR]`): bench/ray_executor.py.

Workers send one line when a trial starts and one when it ends, which this process prints above the summary it
keeps (done / running / queued, ETA) on the terminal's status line, or prints after each trial in a log.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait

from bench.errors import BenchError, Interrupted
from bench.progress import Console, duration
from bench.suite import Trial


@dataclass
class Slot:
    device: str | None  # cuda:N for a GPU slot; None: the trial's own device (the CPU, or a named device)
    threads: int | None  # torch intra-op threads on the CPU


def plan_slots(parallel: int, per_gpu: int, device: str | None, trials: list[Trial]) -> list[Slot]:
    """N slots over the visible GPUs (K per GPU) when the trials train on CUDA, else over the CPU cores."""
    import torch

    if parallel < 1:
        raise BenchError(f"--parallel {parallel}: give the number of trials to run at once (1 or more)")
    if per_gpu < 1:
        raise BenchError(f"--per-gpu {per_gpu}: give how many trials share one GPU (1 or more)")
    names = {device or t.device for t in trials}
    on_cuda = any(n == "cuda" or (n == "auto" and torch.cuda.is_available()) for n in names)
    if on_cuda:
        gpus = torch.cuda.device_count()
        if parallel > gpus * per_gpu:
            raise BenchError(f"--parallel {parallel} with --per-gpu {per_gpu} needs {-(-parallel // per_gpu)} GPUs; "
                             f"this machine shows {gpus}: use --per-gpu {-(-parallel // max(gpus, 1))} or a smaller "
                             "--parallel")
        return [Slot(f"cuda:{i // per_gpu}", None) for i in range(parallel)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return [Slot(None, max(1, cores // parallel)) for _ in range(parallel)]


def slot_device(slot: Slot, trial: Trial, override: str | None) -> str | None:
    """A GPU slot places a trial that trains on CUDA (without a GPU index of its own) on the slot's GPU."""
    name = override or trial.device
    if slot.device is not None and name in ("cuda", "auto"):
        return slot.device
    return override


# the worker process ---------------------------------------------------------------------------------------------

def _worker(conn: Connection, slot: Slot, options) -> None:
    """Run the trials this process is sent until it is sent None. Ctrl-C reaches every process of the terminal's
    group: here it asks the running trial to checkpoint and stop, as in the local executor."""
    from bench.preflight import DataCache
    from bench.runner import ctrl_c_stops_training, run_trial

    data = DataCache(options.data_root)
    console = Console(live=False, milestones=False)
    def say(line: str) -> None:  # through the parent, which prints it above its status line
        if not options.quiet_workers:
            conn.send((None, "line", line))
    with ctrl_c_stops_training(quiet=True) as stop_requested:
        while (job := conn.recv()) is not None:
            index, trial, prefix, wait_for_lock = job
            opts = replace(options, device=slot_device(slot, trial, options.device),
                           threads=options.threads or slot.threads)
            try:
                outcome = run_trial(trial, opts, data, console, say, prefix, stop_requested,
                                    wait=wait_for_lock)
                conn.send((index, "outcome", outcome))
            except Interrupted as stop:
                conn.send((index, "interrupted", str(stop)))
                return
            except BenchError as err:  # e.g. a device this worker cannot use: the trial fails, the rest goes on
                from bench.runner import Outcome

                conn.send((index, "outcome", Outcome("failed", f"FAILED: {err}")))


@dataclass
class _Worker:
    process: mp.Process
    conn: Connection
    slot: Slot
    job: tuple | None = None  # (index, trial, prefix, wait) being run
    started: float = 0.0


class ParallelExecutor:
    """Runs trials in N worker processes; calls `on_outcome(trial, outcome)` as each ends, in completion order."""

    def __init__(self, slots: list[Slot], options, console: Console):
        self.slots, self.options, self.console = slots, options, console
        self.context = mp.get_context("spawn")  # a clean interpreter: no CUDA state or locks from this one
        self._said = 0  # trials done when the summary was last printed (logs print it once per trial)

    def _start(self, slot: Slot) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, slot, self.options), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent, slot)

    def run(self, jobs: list[tuple[int, Trial, str]], on_outcome: Callable, stop_requested: Callable[[], bool]) -> None:
        queue = [(i, t, p, False) for i, t, p in jobs]
        deferred: list[tuple] = []
        workers = [self._start(slot) for slot in self.slots[:max(1, len(queue))]]
        durations: list[float] = []
        interrupted: list[str] = []
        total, done = len(queue), 0

        def dispatch(worker: _Worker) -> None:
            if stop_requested() or interrupted:
                return
            source = queue or deferred  # trials busy elsewhere are waited for last
            if source:
                index, trial, prefix, _ = source.pop(0)
                job = (index, trial, prefix, source is deferred)
                try:
                    worker.conn.send(job)
                except (BrokenPipeError, OSError):  # it died while idle: a fresh worker takes its slot and the job
                    worker.process.join(1)
                    fresh = self._start(worker.slot)
                    workers[workers.index(worker)] = worker = fresh
                    worker.conn.send(job)
                worker.job, worker.started = job, time.perf_counter()

        try:
            for worker in workers:
                dispatch(worker)
            while any(w.job for w in workers):
                wait([w.conn for w in workers if w.job] + [w.process.sentinel for w in workers if w.job],
                     timeout=1.0)
                for worker in list(workers):
                    if worker.job is None:
                        continue
                    index, trial, prefix, _ = worker.job
                    kind = None
                    while worker.conn.poll():
                        try:
                            _, kind, value = worker.conn.recv()
                        except (EOFError, OSError):
                            kind, value = "died", None
                        if kind != "line":
                            break
                        self.console.say(value)
                        kind = None
                    if kind is None:  # no outcome yet: still training, unless the process is gone
                        if worker.process.is_alive():
                            continue
                        kind, value = "died", None
                    worker.job, took = None, time.perf_counter() - worker.started
                    if kind == "interrupted":
                        interrupted.append(value)
                        continue
                    if kind == "died":
                        worker.process.join(1)
                        code = worker.process.exitcode
                        why = (f"signal {-code}" if code is not None and code < 0 else f"exit code {code}")
                        value = lost_worker(trial, prefix, f"its worker process died ({why})", self.options,
                                            self.console)
                        workers[workers.index(worker)] = worker = self._start(worker.slot)
                    if value.status == "busy":
                        deferred.append((index, trial, prefix, True))
                    else:
                        done += 1
                        durations.append(took)
                        on_outcome(trial, value)
                    dispatch(worker)
                self._summary(total, done, workers, queue, deferred, durations)
        finally:
            self.console.done()
            for worker in workers:
                try:
                    worker.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            for worker in workers:
                worker.process.join(10)
                if worker.process.is_alive():
                    worker.process.kill()
        if interrupted or stop_requested():
            raise Interrupted(f"interrupted: {done} of {total} trials ended in this run, each one kept; trials "
                              "that were running checkpointed; rerun the same command to resume")

    def _summary(self, total: int, done: int, workers: list[_Worker], queue: list, deferred: list,
                 durations: list[float]) -> None:
        running = sum(1 for w in workers if w.job)
        waiting = len(queue) + len(deferred)
        text = f"parallel: {done}/{total} done, {running} running, {waiting} queued"
        if durations:
            mean = sum(durations) / len(durations)
            ahead = sum(max(0.0, mean - (time.perf_counter() - w.started)) for w in workers if w.job)
            eta = (waiting * mean + ahead) / max(len(workers), 1)
            text += f", ETA {duration(eta)}"
        if self.console.live:
            self.console.status(text)
        elif done != self._said:
            self._said = done
            self.console.say(text)


def lost_worker(trial: Trial, prefix: str, why: str, options, console: Console):
    """The outcome of a trial whose worker died (any executor): failed for this run, said at once, its MLflow run
    marked KILLED; its checkpoint stays, so the next run resumes it."""
    from bench.runner import Outcome

    outcome = Outcome("failed", f"FAILED: {why}; the trial keeps its last checkpoint and the next run resumes it",
                      details={"worker_died": True})
    console.say(f"{prefix} {trial.key} {trial.label} {trial.dataset.name} seed={trial.seed}: {outcome.summary}")
    _mark_killed(trial, options)
    return outcome


def _mark_killed(trial: Trial, options) -> None:
    """A worker that died left its MLflow run RUNNING: mark it KILLED (best effort; the resumed trial re-opens it)."""
    if options.tracking_uri is None:
        return
    from bench.recorder import read_run_id
    from bench.runner import trial_dir

    run_id = read_run_id(trial_dir(trial, options.runs_root))
    if run_id is None:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(options.tracking_uri)
        client.set_tag(run_id, "bench.status", "interrupted")
        client.set_terminated(run_id, "KILLED")
    except Exception:  # noqa: BLE001 - the run is re-opened on resume either way
        pass
