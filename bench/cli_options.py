"""The options `bench run` and `bench tune` share, written once with their help, and the one rule that turns
--executor, --parallel, --per-gpu and --address into a Placement. Imports only typer and leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.devices import check_name
from bench.errors import BenchError
from bench.executors.base import Placement

SetValues = Annotated[list[str], typer.Option("--set", help="override a suite value: dotted.path=value")]
Device = Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N (overrides the suite)")]
DataRoot = Annotated[Path | None, typer.Option(envvar="BENCH_DATA", help="dataset root [./data]")]
RunsDir = Annotated[Path, typer.Option(envvar="BENCH_RUNS", help="checkpoints and trial state")]
TrackingUri = Annotated[str | None, typer.Option(help="MLflow URI [env MLFLOW_TRACKING_URI, suite, "
                                                      "sqlite:///mlflow.db]")]
Parallel = Annotated[int | None, typer.Option(help="trials (bench tune: tune workers) at once: worker processes "
                                                   "here, or Ray tasks [1; bench tune on Ray: the cluster's slots]")]
PerGpu = Annotated[int, typer.Option(help="with --parallel or Ray: trials sharing one GPU")]
Executor = Annotated[str | None, typer.Option(help="local | parallel | ray [local; parallel with --parallel N > 1; "
                                                   "ray with --address]")]
Address = Annotated[str | None, typer.Option(help="Ray cluster address (auto, ray://host:10001); default: a local "
                                                  "Ray instance")]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads per trial: --set numerics.threads=T (part of "
                                                         "a trial's numbers and key) [the suite's "
                                                         "numerics.threads, 2]")]


def with_threads(set_: list[str], threads: int | None) -> list[str]:
    """--threads T is --set numerics.threads=T."""
    return [*set_, f"numerics.threads={threads}"] if threads is not None else list(set_)


def check_device(device: str | None) -> None:
    if device is not None:
        check_name(device)


def placement(executor: str | None, parallel: int | None, per_gpu: int, address: str | None) -> Placement:
    """Where the work runs: --executor if given; else Ray with --address, worker processes with --parallel N > 1
    or --per-gpu K > 1, here otherwise."""
    if (parallel is not None and parallel < 1) or per_gpu < 1:
        raise BenchError(f"--parallel {parallel} --per-gpu {per_gpu}: give the number of trials to run at once and "
                         "how many share one GPU (each 1 or more)")
    chosen = executor or ("ray" if address else "parallel" if (parallel or 1) > 1 or per_gpu > 1 else "local")
    if chosen not in ("local", "parallel", "ray"):
        raise BenchError(f"--executor {chosen}: unknown; use local, parallel (--parallel N) or ray")
    return Placement(chosen, parallel, per_gpu, address)
