"""Where jobs run: here one after another (`local`), in worker processes on this machine (`processes`), or as Ray
tasks (`ray_tasks`). Executors are generic over a job (bench.executors.base.Job): `bench run` gives them one job
per trial, `bench tune` one per tune worker, so both share one process pool, one Ray loop, one lost-worker rule and
one slot rule. `make_executor` picks one from a Placement."""

from __future__ import annotations

from bench.errors import BenchError
from bench.executors.base import Context, Executor, Job, Placement, Slot, plan_slots, slot_device
from bench.executors.local import LocalExecutor
from bench.executors.processes import ProcessExecutor
from bench.executors.ray_tasks import RayExecutor, check_ray, import_ray, is_local_address
from bench.progress import Console


def make_executor(placement: Placement, device: str | None, device_names: set[str], console: Console,
                  say=None, cache: dict | None = None, quiet: bool = False, tracking_uri: str | None = None
                  ) -> Executor:
    """The executor a Placement names. `device`: the --device override; `device_names`: the devices the jobs'
    trials ask for (GPU slots are planned when any trains on CUDA); `say` and `cache`: the local executor's lines
    and what is loaded already; `quiet`: worker processes print nothing; `tracking_uri`: where Ray's workers
    write records (a local store is refused for a remote cluster)."""
    if placement.executor == "local":
        return LocalExecutor(console, say, cache=cache)
    if placement.executor == "parallel":
        return ProcessExecutor(plan_slots(placement.parallel, placement.per_gpu, device, device_names), console,
                               quiet)
    if placement.executor == "ray":
        return RayExecutor(placement, device, device_names, console, tracking_uri)
    raise BenchError(f"--executor {placement.executor}: unknown; use local, parallel (--parallel N) or ray")


def check_reachable(placement: Placement) -> None:
    """What a Placement needs that is checked in seconds, before any data or store is prepared: a Ray head that
    answers (the other executors need nothing outside this machine)."""
    if placement.executor == "ray":
        check_ray(placement.address)


def on_other_machines(placement: Placement) -> bool:
    """Whether its workers may run on other machines (Ray at a non-local address): they cannot open this one's files."""
    return placement.executor == "ray" and not is_local_address(placement.address)


__all__ = ["Context", "Executor", "Job", "LocalExecutor", "Placement", "ProcessExecutor", "RayExecutor", "Slot",
           "check_reachable", "import_ray", "is_local_address", "make_executor", "on_other_machines", "plan_slots",
           "slot_device"]
