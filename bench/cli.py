"""The `bench` command line. User errors print one line and exit with code 2; nothing else is caught."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import BenchError

app = typer.Typer(help="Reproducible comparative studies of GANs.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
perf_app = typer.Typer(help="Benchmarks that print speed figures.", no_args_is_help=True)
app.add_typer(perf_app, name="perf")


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/quickstart.yaml")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the trials and their status, train nothing")] = False,
    only: Annotated[list[str], typer.Option("--only", help="KEY=VALUE trial filter; repeat a key for OR")] = [],  # noqa: B006
    set_: Annotated[list[str], typer.Option("--set", help="override a suite value: dotted.path=value")] = [],  # noqa: B006
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N (overrides the suite)")] = None,
    data_root: Annotated[Path | None, typer.Option(envvar="BENCH_DATA", help="dataset root [./data]")] = None,
    runs_dir: Annotated[Path, typer.Option(envvar="BENCH_RUNS", help="checkpoints and trial state")] = Path("runs"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI [env MLFLOW_TRACKING_URI, suite, "
                                                              "sqlite:///mlflow.db]")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="train failed trials again")] = False,
) -> None:
    """Train every trial of a suite that is not finished; resume interrupted ones."""
    from bench.runner import RunOptions, run_trials, trial_status
    from bench.suite import DEVICE_PATTERN, expand, load_suite, select
    from bench.tracking import resolve_tracking_uri

    if device is not None and not DEVICE_PATTERN.match(device):
        raise BenchError(f"--device {device}: unknown device; allowed: auto, cpu, cuda, cuda:N, mps")
    spec = load_suite(suite, set_)
    trials = select(expand(spec), only)
    if not trials:
        raise BenchError(f"{suite}: no trial matches the --only filters {only}")
    if dry_run:
        typer.echo(f"suite {spec.name}: {len(trials)} trials")
        for t in trials:
            params = " ".join(f"{k}={v}" for k, v in sorted(t.params.items()))
            typer.echo(f"{t.key}  {trial_status(t, runs_dir):<11}  {t.label:<10} {t.dataset.name:<12} "
                       f"seed={t.seed:<3} {params}")
        return
    options = RunOptions(runs_root=runs_dir, data_root=data_root, device=device, retry_failed=retry_failed,
                         tracking_uri=resolve_tracking_uri(tracking_uri, spec.tracking_uri))
    counts = run_trials(trials, options, say=typer.echo)
    typer.echo(f"suite {spec.name}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) +
               f"; records in {options.tracking_uri}")
    if counts["failed"]:
        raise typer.Exit(1)


@app.command("ls")
def list_registry(what: Annotated[str, typer.Argument(help="methods or datasets")]) -> None:
    """List what a registry holds, one line each."""
    if what == "methods":
        from bench.methods import METHODS

        for name in sorted(METHODS):
            typer.echo(f"{name:<14} {METHODS[name].description}")
    elif what == "datasets":
        from bench.data import DATASETS

        for name in sorted(DATASETS):
            typer.echo(f"{name:<14} {DATASETS[name].description}")
    else:
        raise BenchError(f"bench ls {what}: unknown registry; use `bench ls methods` or `bench ls datasets`")


@perf_app.command("train")
def perf_train(
    method: str = "dcgan", resolution: int = 64, batch_size: int = 64, steps: int = 30, warmup: int = 5,
    repeats: int = 3, device: str = "auto", width: int = 64,
) -> None:
    """Steps/s of bench's loop next to a plain hand-written PyTorch loop (same nets, same device)."""
    from bench.perf import perf_train as measure

    measure(method, resolution, batch_size, steps, warmup, repeats, device, width, say=typer.echo)


def _mount_extensions() -> None:
    from bench.data.cli import app as data_app
    from bench.metrics.cli import fid_command
    from bench.metrics.perf import perf_fid_command
    from bench.report.cli import report_command

    app.command("fid", help="FID (and KID, precision/recall, density/coverage) with its protocol.")(fid_command)
    app.command("report", help="Tables, statistics and plots from the MLflow records.")(report_command)
    app.add_typer(data_app, name="data")
    perf_app.command("fid", help="Images/s of bench's FID path vs clean-fid; cost of reference stats.")(
        perf_fid_command)


_mount_extensions()


def _click_errors():
    """Typer >= 0.20 vendors click as typer._click; older ones use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main() -> None:
    errors = _click_errors()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = app(standalone_mode=False)
    except BenchError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except errors.NoArgsIsHelpError as err:  # `bench` or `bench perf` alone: the help is the answer
        typer.echo(err.ctx.get_help() if err.ctx else str(err))
        sys.exit(0)
    except errors.UsageError as err:  # a bad flag or value, in one line like every other user error
        command = err.ctx.command_path if err.ctx else "bench"
        typer.echo(f"error: {command}: {err.format_message()} (see `{command} --help`)", err=True)
        sys.exit(2)
    except errors.Abort:
        typer.echo("interrupted: finished trials are kept; rerun the same command to resume", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished trials are kept; rerun the same command to resume", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
