"""The `bench` command line. User errors print one line and exit with code 2; nothing else is caught."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from bench import cli_options as opt
from bench import devices, numerics
from bench.data.cli import app as data_app
from bench.errors import BenchError, Interrupted
from bench.metrics.cache import default_cache_dir
from bench.metrics.cli import encoder_app, fid_command, memorization_command
from bench.metrics.perf import perf_fid_command
from bench.report.cli import report_command
from bench.sampling import sample_command
from bench.tune.cli import tune_command

app = typer.Typer(help="Reproducible comparative studies of GANs.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)
perf_app = typer.Typer(help="Benchmarks that print speed figures.", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(perf_app, name="perf")


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print bench's version (and git commit, when known) and exit")] = False,
) -> None:
    """Reproducible comparative studies of GANs."""
    if ctx.invoked_subcommand and "--help" not in sys.argv[1:]:  # a command runs: torch's settings for it (not help)
        numerics.command_defaults()


def version_line() -> str:
    """`bench 0.1.0 (git 0f7be1e, modified)`: the package version and, in a git checkout, the commit it runs."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"bench {version('bench')}"
    except PackageNotFoundError:
        text = "bench (version unknown: not installed as a package)"
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return text
    if commit.returncode == 0 and commit.stdout.strip():
        text += f" (git {commit.stdout.strip()}{', modified' if dirty.stdout.strip() else ''})"
    return text


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/quickstart.yaml")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the trials and their status, train nothing")] = False,
    only: Annotated[list[str], typer.Option("--only", help="KEY=VALUE trial filter; repeat a key for OR")] = [],  # noqa: B006
    set_: opt.SetValues = [],  # noqa: B006
    device: opt.Device = None,
    data_root: opt.DataRoot = None,
    runs_dir: opt.RunsDir = Path("runs"),
    tracking_uri: opt.TrackingUri = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="train failed trials again")] = False,
    parallel: opt.Parallel = None,
    per_gpu: opt.PerGpu = 1,
    executor: opt.Executor = None,
    address: opt.Address = None,
    threads: opt.Threads = None,
) -> None:
    """Train every trial of a suite that is not finished; resume interrupted ones."""
    # the runner and its records load when a suite runs, not for every `bench` command (--help, flag errors)
    from bench.batches import DataCache
    from bench.preflight import check_trials
    from bench.progress import Console
    from bench.runner import run_trials
    from bench.runs import RunOptions, trial_status
    from bench.suite import expand, load_suite, select
    from bench.tracking import resolve_tracking_uri

    opt.check_device(device)
    placement = opt.placement(executor, parallel, per_gpu, address)
    spec = load_suite(suite, opt.with_threads(set_, threads))
    trials = select(expand(spec), only)
    if not trials:
        raise BenchError(f"{suite}: no trial matches the --only filters {only}")
    uri = resolve_tracking_uri(tracking_uri, spec.tracking_uri)
    if dry_run:
        check_trials(trials, DataCache(data_root), device)  # what would stop a real run half-way stops it here
        from bench.executors import make_executor  # loaded when a suite runs, as the runner

        make_executor(placement, device, {t.device for t in trials}, Console(), tracking_uri=uri)  # not started
        typer.echo(f"suite {spec.name}: {len(trials)} trials")
        for t in trials:
            params = " ".join(f"{k}={v}" for k, v in sorted(t.params.items()))
            typer.echo(f"{t.key}  {trial_status(t, runs_dir):<11}  {t.label:<10} {t.dataset.label:<12} "
                       f"seed={t.seed:<3} {params}")
        return
    options = RunOptions(runs_root=runs_dir, data_root=data_root, device=device, retry_failed=retry_failed,
                         tracking_uri=uri)
    result = run_trials(trials, options, console=Console(), placement=placement)
    counts = result.counts
    parts = [f"{counts['finished']} trained", f"{counts['skipped']} already finished"]
    if counts["failed"]:
        parts.append(f"{counts['failed']} FAILED")
    if counts["skipped_failed"]:
        parts.append(f"{counts['skipped_failed']} failed earlier and skipped (--retry-failed trains them again)")
    typer.echo(f"suite {spec.name}: {len(trials)} trials: " + ", ".join(parts) + f"; records in {options.tracking_uri}")
    for line in result.failed:
        typer.echo(f"  failed: {line}")
    if result.pending:
        typer.echo(f"  the records of {len(result.pending)} trials could not be sent to {options.tracking_uri}; "
                   f"they are kept in {result.pending[0] / 'pending'} (and the like) and are sent by the next "
                   f"`bench run {suite}`, once the store is back")
    raise typer.Exit(result.exit_code)


@app.command()
def reproduce(
    target: Annotated[str, typer.Argument(help="a report folder (reports/quickstart), a trial key (or unique "
                                                "prefix) or an MLflow run id")],
    only: Annotated[list[str], typer.Option("--only", help="KEY=VALUE trial filter, as bench run's")] = [],  # noqa: B006
    steps: Annotated[int | None, typer.Option(help="re-train this many steps (compare their losses) [to the end, "
                                                   "then the metrics too]")] = None,
    tolerance: Annotated[float, typer.Option(help="relative tolerance [0: bit-identical; CUDA promises no more "
                                                  "than the same GPU model]")] = 0.0,
    seeds: Annotated[bool, typer.Option("--seeds", help="re-train every seed of a report's cells to the end and "
                                                        "check its conclusions (each cell's mean inside its "
                                                        "interval, the best row, the significance calls), where "
                                                        "the bits cannot be the same")] = False,
    tracking_uri: opt.TrackingUri = None,
    device: opt.Device = None,
    data_root: opt.DataRoot = None,
) -> None:
    """Re-train recorded trials from their recorded config and compare every logged loss (and the final metrics)
    with the record: `identical`, or the first step where they part and which numerics differ. With --seeds, say
    whether a report's conclusions hold. Writes nothing into the store or a runs folder."""
    opt.check_device(device)
    if seeds:
        if steps is not None or tolerance:
            raise BenchError("--seeds trains every trial to the end and compares the report's statistics, not its "
                             "bits: drop --steps and --tolerance")
        from bench.conclusions import check_seeds  # the trainer and the report's statistics load only here

        raise typer.Exit(check_seeds(target, only, device, data_root, say=typer.echo))
    # the trainer and the records load when trials are re-trained, not for every `bench` command
    from bench.reproduce import reproduce as run

    raise typer.Exit(run(target, only, steps, tolerance, tracking_uri, device, data_root, say=typer.echo))


@app.command("ls")
def list_registry(what: Annotated[str, typer.Argument(help="methods or datasets")],
                  name: Annotated[str | None, typer.Argument(help="with methods: one method's hyperparameters")] = None
                  ) -> None:
    """List what a registry holds, one line each; `bench ls methods NAME`: a method's hyperparameters, their
    defaults and what they do."""
    if what == "methods":
        from bench.methods import METHODS, get_method  # the methods' registry: only for the listing asked for

        if name is not None:
            for field, info in get_method(name).Hyper.model_fields.items():
                typer.echo(f"{field:<22} {info.default!s:<24} {info.description or ''}".rstrip())
            return
        wide = max(map(len, METHODS))
        for key in sorted(METHODS):
            typer.echo(f"{key:<{wide}} {METHODS[key].description}")
    elif what == "datasets":
        from bench.data import DATASETS  # the methods' registry: only for the listing asked for

        for name in sorted(DATASETS):
            typer.echo(f"{name:<14} {DATASETS[name].description}")
    else:
        raise BenchError(f"bench ls {what}: unknown registry; use `bench ls methods` or `bench ls datasets`")


@perf_app.command("train")
def perf_train(
    methods: Annotated[str, typer.Option(help="comma-separated methods")] = "dcgan,wgan-gp,stylegan",
    resolutions: Annotated[str, typer.Option(help="comma-separated resolutions")] = "32,64",
    paths: Annotated[str | None, typer.Option(help="comma-separated fast paths: fp32, channels_last, bf16, compile, "
                                                   "all [GPU: every one; CPU: fp32,channels_last]")] = None,
    batch_size: int = 64, steps: int = 30, warmup: int = 5, repeats: int = 3, device: str = "auto", width: int = 64,
) -> None:
    """Steps/s, images/s and TFLOP/s of bench's loop with each fast path, beside a plain hand-written PyTorch loop
    (same nets, same device)."""
    from bench.perf import perf_train as measure  # the nets and the loops: only when the benchmark runs

    try:
        sizes = [int(r) for r in resolutions.split(",")]
    except ValueError:
        raise BenchError(f"--resolutions {resolutions}: give comma-separated numbers, e.g. 32,64") from None
    if min(steps, repeats) < 1 or warmup < 1:
        raise BenchError("--steps, --warmup and --repeats: each 1 or more")
    measure([m.strip() for m in methods.split(",")], sizes, paths.split(",") if paths else None, batch_size, steps,
            warmup, repeats, device, width, say=typer.echo)


@perf_app.command("suite")
def perf_suite(
    trials: int = 8, steps: int = 200, resolution: int = 32, batch_size: int = 64, width: int = 32,
    parallel: int = 2, per_gpu: int = 4, device: str = "auto",
) -> None:
    """Trials/hour of an 8-trial suite: sequential vs --parallel (vs --per-gpu on a GPU)."""
    from bench.perf import perf_suite as measure  # the runner: only when the benchmark runs

    measure(trials, steps, resolution, batch_size, width, parallel, [per_gpu], device, say=typer.echo)


@app.command()
def check(
    device: Annotated[str, typer.Option(help="cuda, cuda:N, cpu or auto")] = "auto",
    quick: Annotated[bool, typer.Option("--quick", help="small nets, 2 steps, no Inception: a CPU in ~1 minute")
                     ] = False,
    out: Annotated[Path, typer.Option(help="folder for check.json and check.md")] = Path("check"),
    budget: Annotated[float | None, typer.Option(help="seconds: rows not started by then are skipped, with that "
                                                      "reason [no limit]")] = None,
    numerics: Annotated[bool, typer.Option("--numerics", help="instead: hash every op bench's training calls on "
                                           "this CPU and diff it against the committed machines' (~40 s)")] = False,
    against: Annotated[list[Path] | None, typer.Option(help="with --numerics: another machine's numerics.json too")
                       ] = None,
) -> None:
    """Self-test of this machine: every method trains with every numerics path on the device, fp32 agrees with the
    CPU, deterministic runs repeat, and throughput, trials/hour and peak memory. Exit 1 names each failure."""
    from bench.check import run_check, run_numerics  # the training path: only when the check runs

    if numerics:
        raise typer.Exit(run_numerics(out, against or [], say=typer.echo))
    devices.check_name(device)
    raise typer.Exit(run_check(device, quick, out, budget, say=typer.echo))


def _mount_extensions() -> None:
    app.command("fid", help="FID (and KID, precision/recall, density/coverage) with its protocol.")(fid_command)
    app.command("memorization", help="Did a generator copy its training set? C_T, nearest-neighbour distances "
                                     "against held-out images, AuthPct, a verdict.")(memorization_command)
    app.command("report", help="Tables, statistics and plots from the MLflow records.")(report_command)
    app.command("sample", help="Images from a trained trial: a grid (x.png) or one PNG per image (a folder).")(
        sample_command)
    app.command("tune", help="An Optuna search over a method's hyperparameters, each trial a bench trial.")(
        tune_command)
    app.add_typer(data_app, name="data")
    app.add_typer(encoder_app, name="encoder")
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


INTERRUPTED = "interrupted: finished work is kept; rerun the same command to go on"


def main() -> None:
    """Run the app; turn every way it can end into an exit code and at most one line on stderr.

    User errors: 2. Interrupted: 130. A bug in bench: 1, one line naming the file that holds the traceback.
    """
    errors = _click_errors()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = app(standalone_mode=False, prog_name="bench")
    except BenchError as err:
        _fail(f"error: {err}", 2)
    except Interrupted as err:
        _fail(str(err), 130)
    except errors.NoArgsIsHelpError as err:  # `bench` or `bench perf` alone: the help is the answer
        typer.echo(err.ctx.get_help() if err.ctx else str(err))
        sys.exit(0)
    except errors.UsageError as err:  # a bad flag or value, in one line like every other user error
        command = err.ctx.command_path if err.ctx else "bench"
        _fail(f"error: {command}: {err.format_message()} (see `{command} --help`)", 2)
    except typer.Abort as err:  # end of input at a prompt; or a stop at once (SIGTERM's deadline) outside a trial
        if isinstance(err.__cause__, KeyboardInterrupt):
            _fail(INTERRUPTED, 130)
        _fail("aborted", 1)
    except BrokenPipeError:  # `bench ... | head -1`: the reader has gone; stop quietly, with typer's code for it
        _silence_stdout()
        sys.exit(1)
    except Exception as err:  # a bug in bench: one line, and the traceback where it can be read
        _fail(_internal_error(err), 1)
    if code == 130:  # typer turns Ctrl-C outside a suite run into exit code 130
        _fail(INTERRUPTED, 130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(line: str, code: int) -> None:
    try:
        typer.echo(line, err=True)
    except BrokenPipeError:
        pass
    sys.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _internal_error(err: Exception) -> str:
    """Save the traceback to a file (stderr with BENCH_DEBUG=1) and say where, in one line."""
    import os
    import time
    import traceback

    text = "".join(traceback.format_exception(err))
    summary = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    if os.environ.get("BENCH_DEBUG"):
        sys.stderr.write(text)
        return f"error: internal error ({summary}); this is a bug in bench, please report it with the traceback above"
    path = default_cache_dir() / "errors" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"bench {' '.join(sys.argv[1:])}\n\n{text}", encoding="utf-8")
        where = f"traceback in {path}"
    except OSError:
        where = "rerun with BENCH_DEBUG=1 for the traceback"
    return f"error: internal error ({summary}); this is a bug in bench, please report it ({where})"
