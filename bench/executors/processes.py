"""The processes executor (`--parallel N [--per-gpu K]`): N spawned worker processes on this machine, each in a
slot (bench.executors.base.plan_slots: on GPUs worker i uses GPU i // K; on the CPU each trial computes with its
numerics.threads).
A worker takes the next queued job when it is free. A worker that dies (the out-of-memory killer, SIGKILL) costs
only its job, whose `lost` says what that means; a fresh process takes the slot for the next job.

Workers send their lines through a pipe; this process prints them above the status line it keeps (done / running
/ queued and an ETA, or the caller's own status), so a terminal is never written by two processes at once.
Ctrl-C reaches every process of the terminal's group: each worker's running job checkpoints and stops, and says
where it stopped.

CPU workers that together ask for more threads than the machine has cores wait passively (OMP_WAIT_POLICY=PASSIVE,
unless the user set it): torch's threads otherwise spin for the next parallel region on cores another worker needs.
Two 550-step cdcgans side by side on 2 cores (2 threads each): 164 s each spinning, 21 s passive; alone, one takes
14 s spinning and 77 s passive, so a worker with the cores to itself keeps the default. No number changes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from bench import numerics
from bench.errors import Interrupted
from bench.executors.base import Context, Job, JobCounter, Slot
from bench.interrupts import TERM_GRACE, ctrl_c_stops_training, terminated
from bench.progress import Console


def _worker_main(conn: Connection, slot: Slot, quiet: bool) -> None:
    """Run the jobs this process is sent until it is sent None."""
    numerics.command_defaults()  # as the command that started it: torch's portable settings for the data it loads
    console = Console(live=False, milestones=False)

    def say(line: str) -> None:  # through the parent, which prints it above its status line
        if not quiet:
            conn.send(("line", line))

    # the parent says it once; a worker's SIGTERM deadline ends before the parent's, so the parent hears how it ended
    with ctrl_c_stops_training(quiet=True, grace=TERM_GRACE / 2) as stop_requested:
        ctx = Context(slot, say, console, stop_requested)
        while (job := conn.recv()) is not None:
            try:
                conn.send(("result", job(ctx)))
            except Interrupted as stop:
                conn.send(("interrupted", str(stop)))
                return
            except KeyboardInterrupt:  # stopped at once outside a trial's steps (SIGTERM's deadline, a 2nd Ctrl-C)
                conn.send(("interrupted", f"{job.name}: stopped at once"))
                return


def oversubscribed(slots: list[Slot]) -> bool:
    """Whether the CPU workers' threads (numerics.threads each, bench's default) outnumber this process's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return sum(slot.device is None for slot in slots) * numerics.DEFAULT_THREADS > cores


@dataclass
class _Worker:
    slot: Slot
    process: mp.Process | None = None
    conn: Connection | None = None
    job: Job | None = None
    started: float = 0.0


class ProcessExecutor:
    def __init__(self, slots: list[Slot], console: Console, quiet: bool = False):
        self.slots, self.console, self.quiet = slots, console, quiet
        self.context = mp.get_context("spawn")  # a clean interpreter: no CUDA state or locks from this one
        self.passive = oversubscribed(slots) and "OMP_WAIT_POLICY" not in os.environ

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc) -> None:
        pass

    in_process = False

    @property
    def live_status(self) -> bool:
        return self.console.live

    def capacity(self) -> int:
        return len(self.slots)

    def workers_line(self, n: int, what: str) -> str | None:
        return f"parallel: {n} {what} on this machine"

    def _start(self, worker: _Worker) -> None:
        parent, child = self.context.Pipe()
        worker.process = self.context.Process(target=_worker_main, args=(child, worker.slot, self.quiet),
                                              daemon=True)
        if self.passive:  # read by the worker's OpenMP runtime when its torch loads; this process's has read its own
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            worker.process.start()
        finally:
            if self.passive:
                del os.environ["OMP_WAIT_POLICY"]
        child.close()
        worker.conn = parent

    def run(self, jobs: list[Job], on_result: Callable[[Job, Any], None], stop_requested: Callable[[], bool],
            status: Callable[[], None] | None = None) -> list[str]:
        queue, follow_ups = list(jobs), []
        workers = [_Worker(slot) for slot in self.slots[:max(1, len(queue))]]
        counter = JobCounter(self.console, "parallel", len(queue))
        stopped: list[str] = []

        def dispatch(worker: _Worker) -> None:
            source = queue or follow_ups  # follow-ups (trials busy elsewhere, to wait for) go last
            if stop_requested() or stopped or not source:
                return
            job = source.pop(0)
            if worker.process is None:
                self._start(worker)
            try:
                worker.conn.send(job)
            except (BrokenPipeError, OSError):  # it died while idle: a fresh process takes the slot and the job
                worker.process.join(1)
                self._start(worker)
                worker.conn.send(job)
            worker.job, worker.started = job, time.perf_counter()

        forwarded = False
        try:
            for worker in workers:
                dispatch(worker)
            while any(w.job for w in workers):
                if terminated() and not forwarded:  # SIGTERM reached this process alone: pass it on
                    forwarded = True
                    for w in workers:
                        if w.process is not None and w.process.is_alive():
                            w.process.terminate()
                busy = [w for w in workers if w.job]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
                for worker in busy:
                    kind, value = self._receive(worker)
                    if kind is None:  # still running
                        continue
                    job, took = worker.job, time.perf_counter() - worker.started
                    worker.job = None
                    if kind == "interrupted":
                        stopped.append(value)
                        continue
                    if kind == "died":
                        worker.process.join(1)
                        code = worker.process.exitcode
                        why = _death(code)
                        value = job.lost(f"its worker process died ({why})", self.console.say)
                        worker.process, worker.conn = None, None  # a fresh one starts with the next job
                    if (follow := job.follow_up(value)) is not None:
                        follow_ups.append(follow)
                    else:
                        counter.ended(took, value)
                        on_result(job, value)
                    dispatch(worker)
                if status is not None:
                    status()
                else:
                    counter.show([w.started for w in workers if w.job], len(queue) + len(follow_ups), len(workers))
        finally:
            self.console.done()
            self._stop(workers)
        return stopped

    def _receive(self, worker: _Worker) -> tuple[str | None, Any]:
        """("result" | "interrupted" | "died", value), printing the lines that came first; (None, None) while the
        job runs."""
        while worker.conn.poll():
            try:
                kind, value = worker.conn.recv()
            except (EOFError, OSError):
                return "died", None
            if kind != "line":
                return kind, value
            self.console.say(value)
        if worker.process.is_alive():
            return None, None
        return "died", None

    def _stop(self, workers: list[_Worker]) -> None:
        for worker in workers:
            if worker.conn is not None:
                try:
                    worker.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for worker in workers:
            if worker.process is not None:
                worker.process.join(10)
                if worker.process.is_alive():
                    worker.process.kill()


def _death(code: int | None) -> str:
    """How a worker process ended, as people read it: `signal 9, SIGKILL` or `exit code 1`."""
    if code is not None and code < 0:
        try:
            return f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
