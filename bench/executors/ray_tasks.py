"""The Ray executor (`--executor ray [--address ADDR] [--per-gpu K]`): every job a Ray core task.

- A task asks for 1 CPU and, when the jobs train on CUDA, 1/K of a GPU (`--per-gpu K` puts K on one GPU; Ray's
  resources are scheduling labels, so each must keep to its share of the GPU's memory). A trial computes with its
  numerics.threads, here as anywhere.
- No retries by Ray: a worker that dies costs only its job, whose `lost` says what that means.
- The workers write the records themselves, so the tracking store must be reachable from them: with a cluster
  given by `--address`, a local SQLite file or folder is refused (start an MLflow server, pass its http:// URI);
  the runs folder must be shared storage too (the same path on every node).
- Without `--address`, a local Ray instance is started with this machine's CPUs and stopped at the end.
Ray is an optional extra (`uv sync --extra ray`), imported only here, when an executor is opened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from bench import devices, numerics
from bench.errors import BenchError, Interrupted
from bench.executors.base import Context, Job, JobCounter, Placement, Slot, cpu_per_gpu
from bench.progress import Console


def import_ray():
    """The ray module, or one line saying how to install it."""
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


def check_ray(address: str | None, timeout: float = 5.0) -> None:
    """Before anything starts: Ray is installed, and a Ray head answers at `address` within `timeout` s (Ray's own
    client retries an address where nothing answers for minutes). Answering is a TCP connection and, unless Ray
    runs with TLS, a gRPC server's reply to the HTTP/2 preface: a port that accepts connections (a proxy, another
    service) but speaks no gRPC is not a cluster."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except ValueError:  # in sys.modules without a spec
        found = False
    if not found:
        import_ray()  # its one line: how to install it
    if address in (None, "auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--address {address}: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379), "
                         "ray://HOST:10001, or auto")
    why = _grpc_answer(host.strip("[]"), int(port), timeout, tls=bool(os.environ.get("RAY_USE_TLS")))
    if why is not None:
        raise BenchError(f"--address {address}: no Ray cluster answers at {host}:{port} ({why}); start it with "
                         "`ray start --head` there, check the address, or drop --address for a local Ray instance")


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame


def _grpc_answer(host: str, port: int, timeout: float, tls: bool = False) -> str | None:
    """None when a gRPC server answers at host:port (its first frame is SETTINGS); else why not, in a few words."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if tls:
                return None
            sock.sendall(H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    return "the connection was closed without a gRPC answer"
                head += chunk
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except OSError as err:
        return err.strerror or str(err)
    return None if head[3] == 4 else "something answers there, but not a gRPC server"


def is_local_address(address: str | None) -> bool:
    """Whether a Ray address is this machine (or a Ray instance started here)."""
    return address is None or address in ("auto", "local") or any(h in address for h in ("127.0.0.1", "localhost"))


def check_remote_store(address: str | None, tracking_uri: str | None) -> None:
    """Workers on other machines write the records: a local store is refused in one line."""
    uri = tracking_uri or ""
    if not is_local_address(address) and not uri.startswith(("http://", "https://")):
        raise BenchError(f"--executor ray --address {address}: the workers on other machines cannot write to the "
                         f"tracking store '{uri or 'none'}' of this one; start an MLflow server "
                         "(`mlflow server --host 0.0.0.0`) and pass --tracking-uri http://HOST:5000")


def _run_task(job: Job, slot: Slot) -> tuple[str, Any]:
    """Runs on a Ray worker: the job, and ("result", value) or ("interrupted", what it said) back."""
    numerics.command_defaults()  # as a bench command: torch's portable settings for the data it loads
    console = Console(live=False, milestones=False)
    try:
        return "result", job(Context(slot, console.say, console, bool))
    except Interrupted as stop:
        return "interrupted", str(stop)
    except KeyboardInterrupt:  # ray.cancel between two steps of the job's own
        return "interrupted", f"{job.name}: cancelled"


class RayExecutor:
    def __init__(self, placement: Placement, device: str | None, device_names: set[str], console: Console,
                 tracking_uri: str | None = None):
        self.ray = import_ray()
        check_remote_store(placement.address, tracking_uri)
        if placement.per_gpu < 1:
            raise BenchError(f"--per-gpu {placement.per_gpu}: give how many trials share one GPU (1 or more)")
        self.address, self.per_gpu, self.console = placement.address, placement.per_gpu, console
        self.parallel = placement.parallel  # None: as many at once as the cluster fits
        names = {device} if device else set(device_names)
        self.on_cuda = any(devices.trains_on_cuda(n) for n in names)
        if self.per_gpu > 1 and not self.on_cuda:
            raise cpu_per_gpu(self.per_gpu, names)
        if indexed := sorted(n for n in names if n.startswith("cuda:")):  # the task would look for GPU N among its 1
            raise BenchError(f"--executor ray with device {indexed[0]}: Ray picks each task's GPU and shows it to the "
                             "task as cuda:0, so a GPU index names none; give --device cuda (and limit a node's GPUs "
                             "with CUDA_VISIBLE_DEVICES before `ray start`)")
        check_ray(self.address)  # last: the one check that waits on the network
        self.started_here = False

    def __enter__(self) -> RayExecutor:
        ray = self.ray
        if not ray.is_initialized():
            # the tasks' interpreters must pin the CPU numerics before torch loads, as this one did
            env = {k: v for k, v in os.environ.items() if k in numerics.PORTABLE_ENV or k == numerics.MODE_VARIABLE}
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=True, configure_logging=False,
                         runtime_env={"env_vars": env})
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise BenchError(f"--executor ray: cannot reach the Ray cluster at {self.address or 'local'} "
                                 f"({str(err).splitlines()[0][:200]}); start it with `ray start --head` or drop "
                                 "--address for a local one") from None
            self.started_here = True
        return self

    def __exit__(self, *exc) -> None:
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False

    in_process, live_status = False, False  # the workers' lines come through Ray's own log: plain status lines

    def workers_line(self, n: int, what: str) -> str | None:
        return f"ray: {n} {what} on the cluster at {self.address or 'local'}"

    def capacity(self) -> int:
        """Jobs at once: --parallel, else the cluster's slots (GPUs x K for CUDA jobs, else its CPUs over the
        threads a trial computes with by default)."""
        resources = self.ray.cluster_resources()
        slots = int(resources.get("GPU", 0) * self.per_gpu) if self.on_cuda else \
            int(resources.get("CPU", 1)) // numerics.DEFAULT_THREADS
        return max(min(slots, self.parallel or slots), 1)

    def _most_cpus(self) -> int:
        """The CPUs a task may reserve: on a CPU job the most one node has (more would wait forever); 1 beside a
        GPU job's share of a GPU."""
        if self.on_cuda:
            return 1
        return max(1, int(max((n["Resources"].get("CPU", 0) for n in self.ray.nodes() if n.get("Alive")),
                              default=1)))

    def run(self, jobs: list[Job], on_result: Callable[[Job, Any], None], stop_requested: Callable[[], bool],
            status: Callable[[], None] | None = None) -> list[str]:
        ray = self.ray
        task = ray.remote(max_retries=0)(_run_task)
        gpus = (1.0 / self.per_gpu) if self.on_cuda else 0
        most = self._most_cpus()  # a CPU job reserves its threads: two 2-thread trials never share 2 cores
        slot = Slot("cuda" if self.on_cuda else None)  # Ray picks the GPU: it is the task's cuda:0
        slots = self.capacity()
        running: dict = {}
        queue = list(jobs)
        counter = JobCounter(self.console, "ray", len(jobs), live=False)  # Ray's own lines come between
        stopped: list[str] = []
        cancelled = False
        while queue or running:
            if stop_requested() and not cancelled:
                cancelled = True
                queue.clear()  # nothing new starts; the running ones are asked to stop
                for ref in running:
                    ray.cancel(ref)  # a KeyboardInterrupt in the task: it checkpoints what it has
            while queue and (self.parallel is None or len(running) < self.parallel):
                job = queue.pop(0)  # Ray queues what it has no room for; --parallel caps what is submitted
                running[task.options(num_cpus=min(job.cpus, most), num_gpus=gpus).remote(job, slot)] = \
                    (job, time.perf_counter())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                job, started = running.pop(ref)
                try:
                    kind, value = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    kind, value = "interrupted", f"{job.name}: cancelled"
                except ray.exceptions.RayError as err:  # the worker died (WorkerCrashedError, OOM, node lost)
                    reason = str(err).strip().splitlines()[0][:200]
                    kind, value = "result", job.lost(f"its Ray worker died ({type(err).__name__}: {reason})",
                                                     self.console.say)
                if kind == "interrupted":
                    stopped.append(value)
                    continue
                if (follow := job.follow_up(value)) is not None:
                    if not stop_requested():
                        queue.append(follow)
                    continue
                counter.ended(time.perf_counter() - started, value)
                on_result(job, value)
                if status is None:  # Ray queues what it has no slot for: the first `slots` are running
                    starts = [s for _, s in running.values()]
                    counter.show(starts[:slots], len(starts[slots:]) + len(queue), slots)
            if status is not None:
                status()
        self.console.done()
        return stopped
