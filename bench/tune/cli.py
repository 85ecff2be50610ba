"""The `bench tune` command (registered by bench.cli)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import BenchError, Interrupted

# Without --suite, a study uses the quickstart's protocol: digits at 16 px, 25 epochs, FID and KID of 128 samples
# against 512 training images, evaluated every 110 steps so the pruner has intermediate values to compare.
DEFAULT_BASE = {
    "name": "tune", "methods": ["dcgan"], "datasets": ["digits"], "seeds": [0], "resolution": 16,
    "batch_size": 64, "budget": {"epochs": 25},
    "eval": {"every": 110, "n_fake": 128, "n_real": 512, "metrics": ["fid", "kid"]},
    "log": {"every": 10, "samples_every": 1000, "checkpoint_every": 110},
}


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
    objective: Annotated[str | None, typer.Option(help="fid_final, fid_best or kid_final [suite tune.objective, "
                                                       "fid_final]")] = None,
    pruner: Annotated[str | None, typer.Option(help="median, hyperband or none [suite tune.pruner, median]")] = None,
    seed: Annotated[int, typer.Option(help="seed of the sampler and of every trial")] = 0,
    set_: Annotated[list[str], typer.Option("--set", help="override a suite value: dotted.path=value")] = [],  # noqa: B006
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N (overrides the suite)")] = None,
    data_root: Annotated[Path | None, typer.Option(envvar="BENCH_DATA", help="dataset root [./data]")] = None,
    runs_dir: Annotated[Path, typer.Option(envvar="BENCH_RUNS", help="checkpoints and trial state")] = Path("runs"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI [env MLFLOW_TRACKING_URI, suite, "
                                                          "sqlite:///mlflow.db]")] = None,
    parallel: Annotated[int | None, typer.Option(help="tune workers at once (processes here, or Ray tasks) "
                                                      "[1; with --executor ray: the cluster's slots]")] = None,
    per_gpu: Annotated[int, typer.Option(help="workers sharing one GPU")] = 1,
    executor: Annotated[str | None, typer.Option(help="local | parallel | ray [local; parallel with --parallel "
                                                      "N > 1; ray with --address]")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (auto, ray://host:10001); "
                                                     "default: a local Ray instance")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads per trial [all cores; N workers: "
                                                          "cores / N]")] = None,
) -> None:
    """An Optuna search over one method's hyperparameters; every trial is a bench trial (same records, checkpoints
    and resume as `bench run`), pruned on its intermediate FID. Start the same command on several machines with a
    shared --storage to share the study."""
    from bench.suite import DEVICE_PATTERN, load_raw, load_suite

    if device is not None and not DEVICE_PATTERN.match(device):
        raise BenchError(f"--device {device}: unknown device; allowed: auto, cpu, cuda, cuda:N, mps")
    if trials is not None and trials < 1:
        raise BenchError(f"--trials {trials}: a study needs at least 1 trial")
    if export_seeds < 1:
        raise BenchError(f"--export-seeds {export_seeds}: at least 1 seed")
    for value, allowed, flag in ((objective, ("fid_final", "fid_best", "kid_final"), "--objective"),
                                 (pruner, ("median", "hyperband", "none"), "--pruner")):
        if value is not None and value not in allowed:
            raise BenchError(f"{flag} {value}: use one of {', '.join(allowed)}")
    if (parallel is not None and parallel < 1) or per_gpu < 1:
        raise BenchError(f"--parallel {parallel} --per-gpu {per_gpu}: give the number of tune workers and how many "
                         "share one GPU (each 1 or more)")
    executor = executor or ("ray" if address else "parallel" if (parallel or 1) > 1 or per_gpu > 1 else "local")
    if executor not in ("local", "parallel", "ray"):
        raise BenchError(f"--executor {executor}: unknown; use local, parallel (--parallel N) or ray")
    if per_method == (method is not None):
        raise BenchError("name one method to tune (`bench tune wgan`), or give --per-method with --suite")
    base = load_suite(suite, set_) if suite else load_raw(
        {**DEFAULT_BASE, "methods": [method or "dcgan"]}, set_, "the default protocol (bench tune without --suite)")
    specs = base.methods if per_method else [_method(base, method)]
    n = trials or base.tune.trials
    if n is None and export is None:
        raise BenchError("--trials N: how many trials the study should hold (or tune.trials in the suite)")
    studies = []
    for spec in specs:
        label = spec.label or spec.name
        data = _dataset(base, spec, dataset)
        name = (f"{study}-{label}" if per_method else study) if study else f"{base.name}-{label}-{data.name}"
        studies.append(_settings(base, spec, data, name, n or 0, objective, pruner, seed))
    from bench.tune.study import open_storage

    optuna_storage, shown = open_storage(storage)
    if n is None:  # export an existing study without running it
        for settings in studies:
            _export(base, settings, optuna_storage, export, export_seeds)
        return
    placement = Placement(executor, parallel, per_gpu, address, storage)
    run_studies(base, studies, optuna_storage, shown, device, data_root, runs_dir, tracking_uri, threads, placement)
    if export is not None:
        for settings in studies:
            out = export if len(studies) == 1 else export.with_name(f"{export.stem}-{settings.label}{export.suffix}")
            _export(base, settings, optuna_storage, out, export_seeds)


def _method(base, name: str):
    from bench.methods import METHODS
    from bench.suite import MethodSpec

    for spec in base.methods:
        if name in (spec.label, spec.name):
            return spec
    if name not in METHODS:
        raise BenchError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return MethodSpec(name=name)


def _dataset(base, spec, name: str | None):
    from bench.data import DATASETS
    from bench.suite import DatasetSpec

    allowed = [d for d in base.datasets if spec.datasets is None or d.name in spec.datasets]
    if name is None:
        return allowed[0]
    for d in allowed:
        if d.name == name:
            return d
    if name not in DATASETS:
        raise BenchError(f"--dataset {name}: unknown dataset; known: {', '.join(sorted(DATASETS))}")
    return DatasetSpec(name=name)


def _settings(base, spec, data, name, n, objective, pruner, seed):
    from bench.methods import get_method
    from bench.tune.space import method_space
    from bench.tune.study import StudySettings

    label = spec.label or spec.name
    overrides = {**base.tune.space, **base.tune.spaces.get(label, {})}
    space = method_space(spec.name, get_method(spec.name).Hyper, overrides, "tune.space")
    return StudySettings(name=name, method=spec, dataset=data, trials=n, objective=objective or base.tune.objective,
                         pruner=pruner or base.tune.pruner, seed=seed, space=space)


@dataclass
class Placement:
    """Where a study's workers run (bench/tune/workers.py): here, in `parallel` processes, or as Ray tasks."""

    executor: str = "local"
    parallel: int | None = None  # workers; None: 1 here, the cluster's slots on Ray
    per_gpu: int = 1
    address: str | None = None
    storage: str | None = None  # the --storage text the workers open


def run_studies(base, studies, optuna_storage, shown, device, data_root, runs_dir, tracking_uri, threads=None,
                placement: Placement | None = None) -> None:
    from bench.progress import Console
    from bench.runner import RunOptions, prepare
    from bench.suite import make_trial
    from bench.tracking import resolve_tracking_uri
    from bench.train import total_steps
    from bench.tune.records import close_parent, parent_run
    from bench.tune.space import describe
    from bench.tune.study import Worker, counts, load_or_create, make_pruner, run_worker

    placement = placement or Placement()
    uri = resolve_tracking_uri(tracking_uri, base.tracking_uri)
    options = RunOptions(runs_root=runs_dir, data_root=data_root, device=device, tracking_uri=uri, threads=threads)
    if placement.executor != "local":
        from bench.tune.workers import check_shared_storage

        check_shared_storage(placement.storage, placement.parallel or 2, placement.executor, placement.address, uri)
    console = Console()
    # everything checkable before training: the default trial of each study, the runs folder, the tracking store
    defaults = [make_trial(base, s.method, s.dataset, s.seed) for s in studies]
    data = prepare(defaults, options, console.say)
    for settings, default in zip(studies, defaults, strict=True):
        if settings.objective == "kid_final" and "kid" not in base.eval.metrics:
            raise BenchError("--objective kid_final: the suite's eval.metrics lacks kid; add it")
        steps = total_steps(default, len(data.get(default)))
        if settings.pruner != "none" and not base.eval.every:
            console.say("warning: eval.every is 0, so trials report no intermediate FID and nothing is pruned; "
                        "set eval.every (e.g. --set eval.every=100)")
        pruner = make_pruner(settings.pruner, base.eval.every, steps, base.tune.startup_trials)
        study = load_or_create(settings, optuna_storage, pruner)
        parent = parent_run(uri, base.name, settings.name, {
            "method": settings.method.name, "label": settings.label, "dataset": settings.dataset.name,
            "objective": settings.objective, "pruner": settings.pruner, "sampler": f"TPE(seed={settings.seed})",
            "trials": settings.trials, "storage": shown, "space": describe(settings.space)})
        console.say(f"study {settings.name} in {shown}: {settings.label} on {settings.dataset.name}, "
                    f"{settings.trials} trials, {settings.objective}, pruner {settings.pruner}; space: "
                    f"{describe(settings.space)}")
        start = time.perf_counter()
        if placement.executor == "local":
            from bench.runner import ctrl_c_stops_training

            with ctrl_c_stops_training() as stop_requested:  # Ctrl-C: the trial checkpoints, the next run resumes it
                worker = Worker(base, settings, options, console, console.say, data, parent,
                                should_stop=stop_requested)
                run_worker(worker, study)
            trained, who = worker.trained, "this worker trained"
        else:
            pruner_args = (settings.pruner, base.eval.every, steps, base.tune.startup_trials)
            trained, n = _run_workers(base, settings, placement, pruner_args, options, parent, default, console,
                                      study)
            who = f"its {n} workers trained"
        c = counts(study)
        seconds = time.perf_counter() - start
        done = c["COMPLETE"] + c["PRUNED"]
        console.say(f"study {settings.name}: {c['COMPLETE']} finished, {c['PRUNED']} pruned "
                    f"({c['PRUNED'] / max(done, 1):.0%}), {c['FAIL']} failed; {who} {trained} "
                    f"in {seconds / 60:.1f} min" + (f" ({seconds / trained:.0f} s per trial)" if trained else ""))
        if c["COMPLETE"]:
            best = study.best_trial
            console.say(f"  best: {settings.objective} {best.value:.4g} at trial #{best.number}: "
                        + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in best.params.items()))
            close_parent(uri, parent, {"best_value": best.value, "best_trial": best.number,
                                       "finished": c["COMPLETE"], "pruned": c["PRUNED"], "failed": c["FAIL"]})


def _run_workers(base, settings, placement: Placement, pruner_args, options, parent, default, console, study):
    """(trials trained, workers) of a study run by `placement`'s workers; a worker's error is one BenchError."""
    import torch

    from bench.executors import plan_slots
    from bench.tune import workers as w

    name = options.device or default.device
    on_cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())

    def make_jobs(n: int):
        slots = plan_slots(min(n, settings.trials), placement.per_gpu, options.device, [default])
        return w.worker_jobs(base, settings, placement.storage, pruner_args, options, parent, default, slots)

    if placement.executor == "parallel":
        jobs = make_jobs(placement.parallel or 1)
        console.say(f"parallel: {len(jobs)} tune workers on this machine")
        results = w.run_parallel(jobs, console.say, w.StudyProgress(study, settings.trials, console, console.live))
    else:
        from bench.executors import Slot

        def ray_jobs(n: int):  # Ray places each worker (and its GPU); threads: one per task's CPU unless given
            n = min(n, settings.trials)
            return w.worker_jobs(base, settings, placement.storage, pruner_args, options, parent, default,
                                 [Slot("cuda" if on_cuda else None, options.threads or 1)] * n)

        results = w.run_ray(ray_jobs, placement.parallel, placement.address, placement.per_gpu, on_cuda, console.say,
                            w.StudyProgress(study, settings.trials, console, False))  # Ray prints lines itself
    console.done()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise BenchError(errors[0])
    if any(r.get("interrupted") for r in results):
        raise Interrupted("interrupted: the running trials checkpointed; the same command resumes the study")
    return sum(r.get("trained", 0) for r in results), len(results)


def _export(base, settings, optuna_storage, out: Path, seeds: int) -> None:
    import optuna

    from bench.tune.export import export_suite

    try:
        study = optuna.load_study(study_name=settings.name, storage=optuna_storage)
    except KeyError:
        raise BenchError(f"--export: no study '{settings.name}' in the storage; run it first (give --trials)") \
            from None
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not completed:
        raise BenchError(f"--export: study '{settings.name}' has no finished trial yet")
    best = min(completed, key=lambda t: (t.value, t.number))
    dataset = settings.dataset.model_dump(mode="json")
    path = export_suite(base, settings.label, settings.method.name, dataset, best.params, settings.name, best.value,
                        settings.objective, best.number, seeds, out)
    typer.echo(f"wrote {path}: the best of study {settings.name} ({settings.objective} {best.value:.4g}, trial "
               f"#{best.number}) with {seeds} seeds; run it with `bench run {path}`")
