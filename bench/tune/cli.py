"""The `bench tune` command (registered by bench.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench import cli_options as opt
from bench.results import HEADLINE, objectives


def tune_command(
    method: Annotated[str | None, typer.Argument(help="method (or a method label of --suite); omit with "
                                                      "--per-method")] = None,
    suite: Annotated[Path | None, typer.Option(help="suite whose protocol (budget, data, evaluation) trials use "
                                                    "[the quickstart's, on digits]")] = None,
    dataset: Annotated[str | None, typer.Option(help="dataset of the suite to tune on [its first]")] = None,
    trials: Annotated[int | None, typer.Option(help="finished or pruned trials the study should hold "
                                                    "[suite tune.trials]")] = None,
    storage: Annotated[str | None, typer.Option(help="sqlite:///FILE.db (one process), a journal file path "
                                                     "(processes on one machine) or a database URL (machines) "
                                                     "[sqlite:///optuna.db]")] = None,
    study: Annotated[str | None, typer.Option(help="study name; the same name resumes it, on any worker "
                                                   "[<suite>-<method>-<dataset>]")] = None,
    per_method: Annotated[bool, typer.Option("--per-method", help="one study per method of the suite, equal "
                                                                  "budgets")] = False,
    export: Annotated[Path | None, typer.Option(help="write the best configuration as a suite (FILE.yaml)")] = None,
    export_seeds: Annotated[int, typer.Option(help="seeds of the exported suite")] = 5,
    objective: Annotated[str | None, typer.Option(help=f"{', '.join(objectives())} [suite tune.objective, "
                                                       f"{HEADLINE}]")] = None,
    pruner: Annotated[str | None, typer.Option(help="median, hyperband or none [suite tune.pruner, median]")] = None,
    seed: Annotated[int, typer.Option(help="seed of the sampler and of every trial")] = 0,
    set_: opt.SetValues = [],  # noqa: B006
    device: opt.Device = None,
    data_root: opt.DataRoot = None,
    runs_dir: opt.RunsDir = Path("runs"),
    tracking_uri: opt.TrackingUri = None,
    parallel: opt.Parallel = None,
    per_gpu: opt.PerGpu = 1,
    executor: opt.Executor = None,
    address: opt.Address = None,
    threads: opt.Threads = None,
) -> None:
    """An Optuna search over one method's hyperparameters; every trial is a bench trial (same records, checkpoints
    and resume as `bench run`), pruned on its intermediate FID. Start the same command on several machines with a
    shared --storage to share the study."""
    opt.check_device(device)
    placement = opt.placement(executor, parallel, per_gpu, address)
    # the studies load Optuna, MLflow and the runner when the command runs, not for every `bench` command
    from bench.tune.studies import TuneRequest, tune

    tune(TuneRequest(method=method, suite=suite, dataset=dataset, trials=trials, storage=storage, study=study,
                     per_method=per_method, export=export, export_seeds=export_seeds, objective=objective,
                     pruner=pruner, seed=seed, set_=tuple(opt.with_threads(set_, threads)), device=device,
                     data_root=data_root, runs_dir=runs_dir, tracking_uri=tracking_uri, placement=placement))
