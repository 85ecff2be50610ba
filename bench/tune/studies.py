"""What `bench tune` does once its flags are parsed: the studies of a command (one method, or every method of a
suite with equal budgets), each run by its workers (bench.tune.workers on bench.executors), and `--export`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
import typer

from bench.data import DATASETS
from bench.errors import BenchError, Interrupted
from bench.executors import Placement, check_reachable, make_executor
from bench.interrupts import ctrl_c_stops_training
from bench.methods import METHODS, get_method
from bench.progress import Console
from bench.results import objectives
from bench.runner import prepare
from bench.runs import RunOptions
from bench.space import describe, method_space
from bench.suite import DatasetSpec, MethodSpec, load_raw, load_suite, make_trial
from bench.tracking import resolve_tracking_uri
from bench.train import total_steps
from bench.tune.export import export_suite
from bench.tune.protocol import SUITE_ATTR, default_point, protocol_of
from bench.tune.records import close_parent, parent_run
from bench.tune.study import StudySettings, counts, load_or_create, make_pruner, open_storage, pinned
from bench.tune.workers import StudyProgress, TuneJob, check_shared_storage

# Without --suite, a study uses the quickstart's protocol: digits at 16 px, 25 epochs, FID and KID of 128 samples
# against 512 training images, evaluated every 110 steps so the pruner has intermediate values to compare.
DEFAULT_BASE = {
    "name": "tune", "methods": ["dcgan"], "datasets": ["digits"], "seeds": [0], "resolution": 16,
    "batch_size": 64, "budget": {"epochs": 25},
    "eval": {"every": 110, "n_fake": 128, "n_real": 512, "metrics": ["fid", "kid"]},
    "log": {"every": 10, "samples_every": 1000, "checkpoint_every": 110},
}


@dataclass(frozen=True)
class TuneRequest:
    """What `bench tune` was asked, as its flags say it (bench/tune/cli.py); `tune` checks it."""

    method: str | None = None  # one method (label or name) to tune; None with per_method
    suite: Path | None = None  # the protocol (default: DEFAULT_BASE)
    dataset: str | None = None
    trials: int | None = None  # None: only --export an existing study
    storage: str | None = None
    study: str | None = None
    per_method: bool = False
    export: Path | None = None
    export_seeds: int = 5
    objective: str | None = None  # default: the suite's tune.objective
    pruner: str | None = None
    seed: int = 0
    set_: tuple[str, ...] = ()
    device: str | None = None
    data_root: Path | None = None
    runs_dir: Path = Path("runs")
    tracking_uri: str | None = None
    placement: Placement = field(default_factory=Placement)


def tune(request: TuneRequest) -> None:
    r = request
    method, trials, export, export_seeds, objective, pruner = (r.method, r.trials, r.export, r.export_seeds,
                                                               r.objective, r.pruner)
    if trials is not None and trials < 1:
        raise BenchError(f"--trials {trials}: a study needs at least 1 trial")
    if export_seeds < 1:
        raise BenchError(f"--export-seeds {export_seeds}: at least 1 seed")
    for value, allowed, flag in ((objective, tuple(objectives()), "--objective"),
                                 (pruner, ("median", "hyperband", "none"), "--pruner")):
        if value is not None and value not in allowed:
            raise BenchError(f"{flag} {value}: use one of {', '.join(allowed)}")
    if r.per_method == (method is not None):
        raise BenchError("name one method to tune (`bench tune wgan`), or give --per-method with --suite")
    base = load_suite(r.suite, list(r.set_)) if r.suite else load_raw(
        {**DEFAULT_BASE, "methods": [method or "dcgan"]}, list(r.set_),
        "the default protocol (bench tune without --suite)")
    specs = base.methods if r.per_method else [_method(base, method)]
    n = trials or base.tune.trials
    if n is None and export is None:
        raise BenchError("--trials N: how many trials the study should hold (or tune.trials in the suite)")
    studies = []
    for spec in specs:
        label = spec.label or spec.name
        data = _dataset(base, spec, r.dataset)
        name = (f"{r.study}-{label}" if r.per_method else r.study) if r.study else f"{base.name}-{label}-{data.name}"
        studies.append(_settings(base, spec, data, name, n or 0, objective, pruner, r.seed))
    optuna_storage, shown = open_storage(r.storage)
    if n is None:  # export an existing study without running it
        for settings in studies:
            _export(base, settings, optuna_storage, export, export_seeds)
        return
    run_studies(base, studies, optuna_storage, shown, r)
    if export is not None:
        for settings in studies:
            out = export if len(studies) == 1 else export.with_name(f"{export.stem}-{settings.label}{export.suffix}")
            _export(base, settings, optuna_storage, out, export_seeds)


def _method(base, name: str):
    for spec in base.methods:
        if name in (spec.label, spec.name):
            return spec
    if name not in METHODS:
        raise BenchError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return MethodSpec(name=name)


def _dataset(base, spec, name: str | None):
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
    label = spec.label or spec.name
    overrides = {**base.tune.space, **base.tune.spaces.get(label, {})}
    space = method_space(spec.name, get_method(spec.name).Hyper, overrides, "tune.space")
    default = make_trial(base, spec, data, seed)
    point, _ = default_point(default, space)
    return StudySettings(name=name, method=spec, dataset=data, trials=n, objective=objective or base.tune.objective,
                         pruner=pruner or base.tune.pruner, seed=seed, space=space,
                         protocol=protocol_of(default, space), default=point,
                         suite=base.model_dump(mode="json", exclude={"tune"}))


def run_studies(base, studies, optuna_storage, shown, request: TuneRequest) -> None:
    """Each study in turn, by the workers the request's placement names (one here by default); a summary line per
    study."""
    storage, placement = request.storage, request.placement
    uri = resolve_tracking_uri(request.tracking_uri, base.tracking_uri)
    options = RunOptions(runs_root=request.runs_dir, data_root=request.data_root, device=request.device,
                         tracking_uri=uri)
    check_shared_storage(storage, placement, uri)
    check_reachable(placement)  # in seconds, before the data and the store are prepared
    console = Console()
    # everything checkable before training: the default trial of each study, the runs folder, the tracking store
    defaults = [make_trial(base, s.method, s.dataset, s.seed) for s in studies]
    data = prepare(defaults, options, console.say)
    for settings, default in zip(studies, defaults, strict=True):
        metric = objectives()[settings.objective][0]
        if metric.name not in base.eval.metrics:
            raise BenchError(f"--objective {settings.objective}: the suite's eval.metrics lacks {metric.name}; add it")
        steps = total_steps(default, len(data.get(default)))
        if settings.pruner != "none" and not base.eval.every:
            console.say("warning: eval.every is 0, so trials report no intermediate FID and nothing is pruned; "
                        "set eval.every (e.g. --set eval.every=100)")
        pruner_args = (settings.pruner, base.eval.every, steps, base.tune.startup_trials)
        study = load_or_create(settings, optuna_storage, make_pruner(*pruner_args))
        if not pinned(study):
            console.say(f"warning: study {settings.name} was created before bench pinned a study's protocol: its "
                        "trials are not checked against this command's budget, data, evaluation and numerics")
        parent = parent_run(uri, base.name, settings.name, {
            "method": settings.method.name, "label": settings.label, "dataset": settings.dataset.name,
            "objective": settings.objective, "pruner": settings.pruner, "sampler": f"TPE(seed={settings.seed})",
            "trials": settings.trials, "storage": shown, "space": describe(settings.space)})
        console.say(f"study {settings.name} in {shown}: {settings.label} on {settings.dataset.name}, "
                    f"{settings.trials} trials, {settings.objective}, pruner {settings.pruner}; space: "
                    f"{describe(settings.space)}")
        start = time.perf_counter()
        job = TuneJob(base, settings, storage, pruner_args, options, parent)
        trained, workers = _run_workers(job, placement, default, console, study, data)
        who = f"its {workers} workers trained" if workers else "this worker trained"
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


def _run_workers(job: TuneJob, placement: Placement, default, console, study, data) -> tuple[int, int]:
    """(trials trained, workers: 0 for this process alone) of one study run by `placement`'s workers, each a copy of
    `job`; a worker's error is one BenchError; Ctrl-C is one Interrupted once every worker has put its trial in
    order."""
    trials = job.settings.trials
    placement = placement.capped(trials)  # no more workers than the study has trials
    executor = make_executor(placement, job.options.device, {default.device}, console, cache={"data": data},
                             tracking_uri=job.options.tracking_uri)
    results: list[dict] = []
    with ctrl_c_stops_training() as stop_requested, executor:
        n = min(placement.parallel or executor.capacity(), trials)
        if executor.in_process:
            jobs = [job]
        else:
            jobs = [replace(job, name=f"w{i}") for i in range(1, n + 1)]
            console.say(executor.workers_line(n, "tune workers"))
        progress = None if executor.in_process else StudyProgress(study, trials, console, executor.live_status)
        stopped = executor.run(jobs, lambda _, result: results.append(result), stop_requested, progress)
    console.done()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise BenchError(errors[0])
    if stopped or stop_requested():
        if executor.in_process:
            raise Interrupted(stopped[0] if stopped else "interrupted between trials; the same command resumes "
                              "the study")
        for line in stopped:
            console.say(line)
        raise Interrupted("interrupted: the running trials checkpointed; the same command resumes the study")
    return sum(r.get("trained", 0) for r in results), 0 if executor.in_process else len(jobs)


def _export(base, settings, optuna_storage, out: Path, seeds: int) -> None:
    try:
        study = optuna.load_study(study_name=settings.name, storage=optuna_storage)
    except KeyError:
        raise BenchError(f"--export: no study '{settings.name}' in the storage; run it first (give --trials)") \
            from None
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not completed:
        raise BenchError(f"--export: study '{settings.name}' has no finished trial yet")
    best = min(completed, key=lambda t: (t.value, t.number))
    stored = study.user_attrs.get(SUITE_ATTR)
    if stored is None:
        typer.echo(f"warning: study {settings.name} was created before bench stored a study's protocol: the export "
                   "takes it from this command's suite and --set flags", err=True)
    else:  # the protocol the study's trials ran under, whatever this command line says
        base = load_raw(stored, source=f"the suite stored in study {settings.name}")
        dataset = next((d for d in base.datasets if d.name == settings.dataset.name), settings.dataset)
        settings = replace(settings, dataset=dataset)
    dataset = settings.dataset.model_dump(mode="json")
    path = export_suite(base, settings.label, settings.method.name, dataset, best.params, settings.name, best.value,
                        settings.objective, best.number, seeds, out)
    typer.echo(f"wrote {path}: the best of study {settings.name} ({settings.objective} {best.value:.4g}, trial "
               f"#{best.number}) with {seeds} seeds; run it with `bench run {path}`")
