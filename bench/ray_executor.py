"""The Ray executor (`bench run SUITE --executor ray [--address ADDR] [--per-gpu K]`): every trial a Ray core task
that calls the same `run_trial` as the local executor, so the records are the same.

- A task asks for 1 CPU and, when the trials train on CUDA, 1/K of a GPU (`--per-gpu K` puts K trials on one GPU;
  Ray's resources are scheduling labels, so each trial must keep to its share of the GPU's memory).
- No retries by Ray: a worker that dies fails only its trial, which keeps its checkpoint; the next `bench run`
  resumes it (from any executor).
- The workers write the records themselves, so the tracking store must be reachable from them: with a cluster
  given by `--address`, a local SQLite file or folder is refused (start an MLflow server, pass its http:// URI);
  the runs folder must be shared storage too (the same path on every node).
- Without `--address`, a local Ray instance is started with this machine's CPUs and stopped at the end.
Ray is an optional extra (`uv sync --extra ray`), imported only here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

from bench.errors import BenchError, Interrupted
from bench.executors import Slot, lost_worker, slot_device
from bench.progress import Console, duration
from bench.suite import Trial


def _ray():
    # Ray's `uv run` hook (read when Ray is imported) would make every worker `uv run` an environment of its own,
    # without this extra and so without Ray, and upload the working folder: bench's workers use the interpreter of
    # their node, which has bench installed
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray, an optional extra: run `uv sync --extra ray` (or pip install "
                         "'ray>=2.40'), then the same command") from None
    return ray


def _remote_trial(trial: Trial, options, prefix: str, device: str | None):
    """Runs on a Ray worker: one trial, its outcome back (Interrupted too, as an outcome)."""
    from bench.progress import Console
    from bench.runner import Outcome, run_trial

    console = Console(live=False, milestones=False)
    try:
        return run_trial(trial, replace(options, device=device), None, console, console.say, prefix)
    except Interrupted as stop:
        return Outcome("interrupted", str(stop))
    except BenchError as err:
        return Outcome("failed", f"FAILED: {err}")


class RayExecutor:
    def __init__(self, placement, options, console: Console, trials: list[Trial]):
        self.ray = _ray()
        self.address, self.per_gpu, self.options, self.console = placement.address, placement.per_gpu, options, console
        uri = options.tracking_uri or ""
        if self.address and not _is_local(self.address) and not uri.startswith(("http://", "https://")):
            raise BenchError(f"--executor ray --address {self.address}: the workers on other machines cannot write "
                             f"to the tracking store '{uri or 'none'}' of this one; start an MLflow server "
                             "(`mlflow server --host 0.0.0.0`) and pass --tracking-uri http://HOST:5000")
        if self.per_gpu < 1:
            raise BenchError(f"--per-gpu {self.per_gpu}: give how many trials share one GPU (1 or more)")
        import torch

        names = {options.device or t.device for t in trials}
        self.on_cuda = any(n.startswith("cuda") or (n == "auto" and torch.cuda.is_available()) for n in names)
        self.threads = options.threads or 1

    def run(self, jobs: list[tuple[int, Trial, str]], on_outcome: Callable, stop_requested: Callable[[], bool]) -> None:
        from bench.runner import Outcome

        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=True,
                         configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise BenchError(f"--executor ray: cannot reach the Ray cluster at {self.address or 'local'} "
                                 f"({str(err).splitlines()[0][:200]}); start it with `ray start --head` or drop "
                                 "--address for a local one") from None
        gpus = (1.0 / self.per_gpu) if self.on_cuda else 0
        resources = ray.cluster_resources()
        slots = int(resources.get("GPU", 0) * self.per_gpu) if self.on_cuda else int(resources.get("CPU", 1))
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_remote_trial)
        options = replace(self.options, threads=self.threads)
        gpu_slot = Slot("cuda" if self.on_cuda else None, None)
        running: dict = {}
        queue = list(jobs)
        durations: list[float] = []
        total, done, interrupted = len(jobs), 0, []
        try:
            while queue or running:
                if stop_requested() and queue:
                    queue.clear()  # nothing new starts; the running ones are asked to stop below
                    for ref in running:
                        ray.cancel(ref)  # a KeyboardInterrupt in the task: it checkpoints what it has
                while queue:  # Ray queues tasks itself; submitting all at once lets it fill the cluster
                    index, trial, prefix = queue.pop(0)
                    device = slot_device(gpu_slot, trial, options.device)  # Ray picks the GPU: it is cuda:0
                    running[task.remote(trial, options, prefix, device)] = (index, trial, prefix, time.perf_counter())
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    index, trial, prefix, started = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.TaskCancelledError:
                        outcome = Outcome("interrupted", "cancelled")
                    except ray.exceptions.RayError as err:  # the worker died (WorkerCrashedError, OOM, node lost)
                        reason = str(err).strip().splitlines()[0][:200]
                        outcome = lost_worker(trial, prefix, f"its Ray worker died ({type(err).__name__}: {reason})",
                                              self.options, self.console)
                    if outcome.status == "interrupted":
                        interrupted.append(outcome.summary)
                        continue
                    done += 1
                    durations.append(time.perf_counter() - started)
                    on_outcome(trial, outcome)
                    self._summary(total, done, max(slots, 1), durations)
        finally:
            self.console.done()
            if started_here:
                ray.shutdown()
        if interrupted or stop_requested():
            raise Interrupted(f"interrupted: {done} of {total} trials ended in this run, each one kept; trials "
                              "that were running checkpointed; rerun the same command to resume")

    def _summary(self, total: int, done: int, slots: int, durations: list[float]) -> None:
        mean = sum(durations) / len(durations)
        left = total - done
        text = f"ray: {done}/{total} done, {min(left, slots)} running, {max(left - slots, 0)} queued"
        if left:
            text += f", ETA {duration(mean * -(-left // slots))}"
        self.console.say(text)


def _is_local(address: str) -> bool:
    return address in ("auto", "local") or any(h in address for h in ("127.0.0.1", "localhost"))
