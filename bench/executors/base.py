"""What every executor shares: where a job may run (a Slot: its GPU, planned by one rule), what a
job gets there (a Context) and what a job is (Job: run somewhere, and told in the parent when its worker died).

A job is picklable: the processes and Ray executors send it to a worker. It runs there as `job(ctx)` and returns
a picklable result, or raises Interrupted when Ctrl-C stopped it (after putting its work in order). In the parent,
`job.lost(why)` gives the result of a job whose worker died, and `job.follow_up(result)` a job to run once the
queue is empty (a trial another process was training, to wait for; a tune worker whose study is still short).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bench import devices
from bench.errors import BenchError
from bench.progress import Console, duration


@dataclass
class Placement:
    """Where jobs run: `local` one after another here; `parallel` in `parallel` worker processes (`per_gpu` of them
    on each GPU); `ray` as Ray tasks on the cluster at `address` (`parallel`: how many, where that is a choice)."""

    executor: str = "local"  # local | parallel | ray
    parallel: int | None = None  # None: 1 here; with Ray, as many as the cluster has slots
    per_gpu: int = 1
    address: str | None = None

    def capped(self, jobs: int) -> Placement:
        """At most `jobs` workers: no more processes (or Ray tasks asked for) than there is work."""
        if self.executor == "local" or (self.executor == "ray" and self.parallel is None):
            return self
        return replace(self, parallel=min(self.parallel or 1, jobs))

    def most_workers(self) -> int | None:
        """How many workers can run at once: 1 locally, --parallel (else 1) in processes; None where the cluster
        decides (Ray without --parallel: as many as it has slots)."""
        if self.executor == "local":
            return 1
        if self.executor == "ray":
            return self.parallel
        return self.parallel or 1


@dataclass(frozen=True)
class Slot:
    """Where one job runs at a time. CPU threads are not the slot's: a trial computes with its numerics.threads
    (part of its numbers), whoever runs it."""

    device: str | None  # cuda:N for a GPU slot ("cuda" on Ray, which picks the GPU); None: the job's own device


@dataclass
class Context:
    """What a job gets where it runs."""

    slot: Slot
    say: Callable[[str], None]  # a permanent line (in a worker process it travels through the parent)
    console: Console  # for progress lines
    should_stop: Callable[[], bool]  # Ctrl-C was pressed: checkpoint after this step and stop
    cache: dict[str, Any] = field(default_factory=dict)  # shared by the jobs one worker runs (datasets)


class Job(Protocol):
    name: str  # how lines about the job start
    cpus: int  # the CPU threads it computes with (numerics.threads): what Ray reserves for it on a CPU node

    def __call__(self, ctx: Context) -> Any: ...

    def lost(self, why: str, say: Callable[[str], None]) -> Any: ...

    def follow_up(self, result: Any) -> Job | None: ...


class Executor(Protocol):
    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...

    in_process: bool  # jobs run here, one after another, sharing this process's cache (the local executor)
    live_status: bool  # a refreshed status line suits its workers' output (processes on a terminal; not Ray's log)

    def capacity(self) -> int:
        """How many jobs run at once."""
        ...

    def workers_line(self, n: int, what: str) -> str | None:
        """The line announcing `n` workers of `what` ("tune workers"), or None where there are none to announce."""
        ...

    def run(self, jobs: list[Job], on_result: Callable[[Job, Any], None], stop_requested: Callable[[], bool],
            status: Callable[[], None] | None = None) -> list[str]:
        """Run every job (and their follow-ups), calling `on_result(job, result)` in the parent as each ends;
        returns what the jobs that Ctrl-C stopped said (empty when none was). `status`, when given, is called
        every second or so instead of the executor's own done/running/queued line."""
        ...


def plan_slots(parallel: int | None, per_gpu: int, device: str | None, device_names: set[str]) -> list[Slot]:
    """N slots over the GPUs (K per GPU) when the jobs train on CUDA, else N on the CPU. A device named `cuda:N`
    (by --device, or by every trial) confines the slots to that GPU."""
    parallel = parallel or 1
    if parallel < 1:
        raise BenchError(f"--parallel {parallel}: give the number of trials to run at once (1 or more)")
    if per_gpu < 1:
        raise BenchError(f"--per-gpu {per_gpu}: give how many trials share one GPU (1 or more)")
    names = {device} if device else set(device_names)
    if any(devices.trains_on_cuda(n) for n in names):
        named = {n for n in names if n.startswith("cuda:")}
        gpus = devices.gpu_indices(next(iter(named))) if len(named) == 1 and len(names) == 1 else \
            devices.gpu_indices("cuda")
        if parallel > len(gpus) * per_gpu:
            shown = f"GPU {gpus[0]} alone" if len(named) == 1 and len(names) == 1 else f"{len(gpus)} GPUs"
            raise BenchError(f"--parallel {parallel} with --per-gpu {per_gpu} needs {-(-parallel // per_gpu)} GPUs; "
                             f"the trials have {shown}: use --per-gpu {-(-parallel // max(len(gpus), 1))} or a "
                             "smaller --parallel")
        return [Slot(f"cuda:{gpus[i // per_gpu]}") for i in range(parallel)]
    if per_gpu > 1:
        raise cpu_per_gpu(per_gpu, names)
    return [Slot(None) for _ in range(parallel)]


def cpu_per_gpu(per_gpu: int, names: set[str]) -> BenchError:
    """--per-gpu K > 1 where no trial trains on a GPU: said, not ignored."""
    shown = ", ".join(sorted(n or "auto" for n in names)) or "auto"
    return BenchError(f"--per-gpu {per_gpu}: the trials train on the CPU (device {shown}), where there is no GPU to "
                      "share; drop --per-gpu and give --parallel N for N trials at once")


def slot_device(slot: Slot, name: str, override: str | None) -> str | None:
    """The device a job's trial trains on in `slot`: a GPU slot takes a trial that trains on CUDA without a GPU
    index of its own (`cuda` or `auto`); otherwise the --device override, if any, stands (a trial's own `cuda:N`
    is where plan_slots put its slots)."""
    chosen = override or name
    if slot.device is not None and chosen in ("cuda", "auto"):
        return slot.device
    return override


class JobCounter:
    """The executor's own status: done / running / queued and an ETA from the mean duration so far; on a terminal a
    live line, in a log a line whenever another job has ended."""

    def __init__(self, console: Console, label: str, total: int, live: bool | None = None):
        self.console, self.label, self.total = console, label, total
        self.live = console.live if live is None else live
        self.done, self.failed, self.durations, self._said = 0, 0, [], 0

    def ended(self, seconds: float, result: Any = None) -> None:
        """A job ended; a result whose status is `failed` (a trial's Outcome) is counted as failed, not done."""
        if getattr(result, "status", None) == "failed":
            self.failed += 1
        else:
            self.done += 1
        self.durations.append(seconds)

    def show(self, running: list[float], queued: int, slots: int) -> None:
        """`running`: the start times (perf_counter) of the running jobs."""
        failed = f", {self.failed} failed" if self.failed else ""
        text = (f"{self.label}: {self.done}/{self.total} done{failed}, {len(running)} running, {queued} "
                "queued")
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
            now = time.perf_counter()
            ahead = sum(max(0.0, mean - (now - started)) for started in running)
            text += f", ETA {duration((queued * mean + ahead) / max(slots, 1))}"
        if self.live:
            self.console.status(text)
        elif self.done + self.failed != self._said:
            self._said = self.done + self.failed
            self.console.say(text)
