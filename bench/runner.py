"""Run a suite's trials: check them all first, skip the finished, resume the interrupted, lock each trial so two
`bench run` processes never train the same one, record every trial in MLflow, and go on when one fails.

`run_trial` is self-contained: it takes the trial's lock, trains, records and catches every failure of the trial
(recorded as failed with its reason, its checkpoint kept). `run_trials` is the local executor around it.
Local state per trial lives in runs/<suite>/<key>/: checkpoint.pt, status.json, run.json (the MLflow run id),
lock, error.txt (the traceback of a failure) and pending/ (records the store could not take yet).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.checkpoint import CHECKPOINT_NAME, default_runs_root
from bench.errors import BenchError, Interrupted
from bench.files import write_atomic
from bench.preflight import DataCache, check_runs_folder, check_trials, clean_stale_temporaries
from bench.progress import Console, StepProgress
from bench.suite import Trial

log = logging.getLogger(__name__)
_warned: set[str] = set()  # evaluation warnings are the same for every trial of a suite: say each once


@dataclass
class RunOptions:
    runs_root: Path = field(default_factory=default_runs_root)
    data_root: Path | None = None
    tracking_uri: str | None = None  # resolved; None = no MLflow (tests, perf)
    device: str | None = None  # overrides the suite's
    retry_failed: bool = False
    cache_dir: Path | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)  # added to each trial's MLflow run (bench tune's)
    # called with (step, metric values) after each evaluation; may raise bench.train.TrialPruned (bench tune)
    on_evaluation: Callable[[int, dict[str, float]], None] | None = None
    resume_pruned: bool = True  # bench run resumes a pruned trial; bench tune leaves it pruned
    # CPU threads a trial computes with (None: PyTorch's default, all cores). PyTorch splits reductions by thread,
    # so on the CPU the same trial with the same thread count gives the same numbers, whichever executor runs it
    threads: int | None = None
    quiet_workers: bool = False  # worker processes print nothing (bench perf suite: only its table)


@dataclass
class Outcome:
    """How one trial ended in this process."""

    status: str  # finished | failed | pruned | skipped (already finished) | skipped_failed | skipped_pruned | busy
    summary: str = ""
    records_pending: str | None = None  # why the MLflow records are still on disk, if they are
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteResult:
    counts: Counter
    pending: list[Path]  # trial folders whose records could not be sent
    failed: list[str]  # one line per failed trial

    @property
    def exit_code(self) -> int:
        """0 when every selected trial is finished and recorded; 1 otherwise (failed, or records pending)."""
        return 1 if (self.counts["failed"] or self.counts["skipped_failed"] or self.pending) else 0


def trial_dir(trial: Trial, runs_root: Path) -> Path:
    return runs_root / trial.suite / trial.key


def trial_status(trial: Trial, runs_root: Path) -> str:
    """finished | failed | interrupted (has a checkpoint) | new."""
    folder = trial_dir(trial, runs_root)
    try:
        return json.loads((folder / "status.json").read_text())["status"]
    except FileNotFoundError:
        return "interrupted" if (folder / CHECKPOINT_NAME).exists() else "new"
    except (ValueError, KeyError):  # a torn or hand-edited file: the trial is not known to be done
        return "interrupted" if (folder / CHECKPOINT_NAME).exists() else "new"


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True, default=str).encode()))


@contextmanager
def trial_lock(folder: Path, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """An exclusive flock; the OS drops it when the holder dies, even by SIGKILL. When another process holds it:
    False at once, or, given `on_wait`, that is called and the lock waited for."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                yield False
                return
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# the suite ------------------------------------------------------------------------------------------------------

def prepare(trials: list[Trial], options: RunOptions, say: Callable[[str], None] = print) -> DataCache:
    """Everything checkable before training: trials, runs folder, tracking store; then send pending records."""
    data = DataCache(options.data_root)
    largest_checkpoint = check_trials(trials, data, options.device)
    for suite in sorted({t.suite for t in trials}):
        check_runs_folder(options.runs_root, suite, largest_checkpoint)
        if options.tracking_uri is not None:
            from bench.tracking import open_store

            store = open_store(options.tracking_uri, suite)
            say(f"records: {options.tracking_uri}, experiment '{suite}' (artifacts in {store.artifact_location})")
            _send_pending(options.runs_root, suite, say)
    return data


def _send_pending(runs_root: Path, suite: str, say: Callable[[str], None]) -> None:
    from bench.recorder import pending_folders, replay

    folders = pending_folders(runs_root, suite)
    failures = []
    for folder in folders:
        with trial_lock(folder) as acquired:  # a trial being trained elsewhere still writes its journal
            if acquired and (why := replay(folder)) is not None:
                failures.append((folder, why))
    if folders:
        say(f"sent the pending records of {len(folders) - len(failures)} of {len(folders)} trials")
    if failures:
        folder, why = failures[0]
        raise BenchError(f"the records kept in {folder / 'pending'} cannot be sent ({why}); fix the store, then "
                         "rerun; nothing was trained")


@dataclass
class Placement:
    """Where trials run (bench/executors.py): `local` one after another here; `parallel` in `parallel` worker
    processes (`per_gpu` of them on each GPU); `ray` as Ray tasks on the cluster at `address`."""

    executor: str = "local"  # local | parallel | ray
    parallel: int = 1
    per_gpu: int = 1
    address: str | None = None


def run_trials(trials: list[Trial], options: RunOptions, say: Callable[[str], None] | None = None,
               console: Console | None = None, placement: Placement | None = None) -> SuiteResult:
    """Check everything, then train every trial that is not done: here one after another (the local executor),
    or through the executor `placement` names; the records are the same.

    A trial another process is training is deferred to the end and waited for, then trained here if that
    process died before finishing it: every trial ends trained exactly once, whoever trains it.
    """
    console = console or Console(live=False)
    say = say or console.say
    placement = placement or Placement()
    executor = None
    if placement.executor == "parallel":
        from bench.executors import ParallelExecutor, plan_slots

        executor = ParallelExecutor(plan_slots(placement.parallel, placement.per_gpu, options.device, trials),
                                    options, console)
    elif placement.executor == "ray":
        from bench.ray_executor import RayExecutor

        executor = RayExecutor(placement, options, console, trials)
    elif placement.executor != "local":
        raise BenchError(f"--executor {placement.executor}: unknown; use local, parallel (--parallel N) or ray")
    data = prepare(trials, options, say)
    counts: Counter = Counter()
    pending, failed = [], []
    if executor is not None:
        jobs = [(i, trial, f"[{i}/{len(trials)}]") for i, trial in enumerate(trials, 1)]
        with ctrl_c_stops_training() as stop_requested:
            executor.run(jobs, lambda trial, outcome: _tally(outcome, trial, counts, pending, failed, options),
                         stop_requested)
        console.done()
        return SuiteResult(counts, pending, failed)
    deferred = []
    with ctrl_c_stops_training() as stop_requested:
        for i, trial in enumerate(trials, 1):
            outcome = run_trial(trial, options, data, console, say, f"[{i}/{len(trials)}]", stop_requested)
            if outcome.status == "busy":
                deferred.append((i, trial))
                continue
            _tally(outcome, trial, counts, pending, failed, options)
            _check_stop(stop_requested, counts)
        for i, trial in deferred:
            outcome = run_trial(trial, options, data, console, say, f"[{i}/{len(trials)}]", stop_requested,
                                wait=True)
            _tally(outcome, trial, counts, pending, failed, options)
            _check_stop(stop_requested, counts)
    console.done()
    return SuiteResult(counts, pending, failed)


def _tally(outcome: Outcome, trial: Trial, counts: Counter, pending: list, failed: list,
           options: RunOptions) -> None:
    counts[outcome.status] += 1
    if outcome.records_pending:
        pending.append(trial_dir(trial, options.runs_root))
    if outcome.status in ("failed", "skipped_failed"):
        failed.append(f"{trial.key} {trial.label} {trial.dataset.name} seed={trial.seed}: {outcome.summary}")


def _check_stop(stop_requested: Callable[[], bool], counts: Counter) -> None:
    if stop_requested():
        raise Interrupted(f"interrupted between trials: {counts['finished']} trained in this run, each one kept; "
                          "rerun the same command to go on")


@contextmanager
def ctrl_c_stops_training(quiet: bool = False) -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the running trial to checkpoint after its current step and stop; a second one stops
    at once (the steps since the last checkpoint are then lost). Only the main thread can take signals. `quiet`:
    say nothing (parallel workers: the parent says it once)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = threading.Event()

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if not quiet:
            os.write(2, b"\nstopping after this step (Ctrl-C again to stop at once and lose the steps since the "
                        b"last checkpoint)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


# one trial ------------------------------------------------------------------------------------------------------

def run_trial(trial: Trial, options: RunOptions, data: DataCache | None = None, console: Console | None = None,
              say: Callable[[str], None] | None = None, prefix: str = "", should_stop: Callable[[], bool] = bool,
              wait: bool = False) -> Outcome:
    """Train one trial unless it is done or another process holds it; every failure becomes an Outcome."""
    console = console or Console(live=False)
    say = say or console.say
    data = data or DataCache(options.data_root)
    name = f"{prefix} {trial.key} {trial.label} {trial.dataset.name} seed={trial.seed}".strip()
    folder = trial_dir(trial, options.runs_root)
    status = trial_status(trial, options.runs_root)
    if (skipped := _skip(status, options, name, say)) is not None:
        return skipped
    with trial_lock(folder, (lambda: say(f"{name}: waiting for the other process that is training it"))
                    if wait else None) as acquired:
        if not acquired:
            say(f"{name}: being trained by another process; coming back to it at the end")
            return Outcome("busy")
        status = trial_status(trial, options.runs_root)  # it may have finished while we waited
        if (skipped := _skip(status, options, name, say)) is not None:
            return skipped
        clean_stale_temporaries(folder)
        from bench.train import resolve_device

        device = resolve_device(options.device or trial.device)
        if options.threads:
            torch.set_num_threads(options.threads)
        resuming = (folder / CHECKPOINT_NAME).exists()  # interrupted, or failed and retried
        say(f"{name}: {'resuming' if resuming else 'training'} on {device}")
        short = f"{prefix} {trial.label} {trial.dataset.name} s{trial.seed}".strip()
        # translation trials see held-out inputs in their grids and evaluations (the reference split's pairs)
        held_out = data.get(trial, trial.eval.reference_split) if _translates(trial) else None
        outcome = _train(trial, data.get(trial), device, folder, options, console, short, should_stop, held_out)
        say(f"{name}: {outcome.summary}")
        return outcome


def _skip(status: str, options: RunOptions, name: str, say: Callable[[str], None]) -> Outcome | None:
    if status == "finished":
        say(f"{name}: already finished, skipped")
        return Outcome("skipped", "already finished")
    if status == "pruned" and not options.resume_pruned:
        say(f"{name}: already pruned, skipped")
        return Outcome("skipped_pruned", "pruned in an earlier run")
    if status == "failed" and not options.retry_failed:
        say(f"{name}: already failed, skipped (--retry-failed trains it again)")
        return Outcome("skipped_failed", "failed in an earlier run (--retry-failed trains it again)")
    return None


def _translates(trial: Trial) -> bool:
    from bench.methods import get_method

    return get_method(trial.method).task == "translation"


def _train(trial: Trial, data, device: torch.device, folder: Path, options: RunOptions, console: Console,
           short: str, should_stop: Callable[[], bool], held_out=None) -> Outcome:
    from bench.train import Trainer, TrainingStopped, TrialDiverged, TrialPruned

    recorder = _open_recorder(trial, folder, device, options)
    progress = None
    try:
        evaluate = (make_evaluator(trial, recorder, device, options, console, short, held_out)
                    if trial.eval.metrics else None)
        trainer = Trainer(trial, data, device, folder, tracker=recorder, evaluate=evaluate, grid_data=held_out)
        progress = StepProgress(console, short, trainer.total)

        def show(step: int, total: int, means: dict[str, float], images_per_s: float) -> None:
            losses = " ".join(f"{k} {v:.3f}" for k, v in means.items())
            progress.update(step, f"{images_per_s:.0f} img/s, {losses}")

        result = trainer.run(progress=show, should_stop=should_stop)
    except (TrainingStopped, KeyboardInterrupt) as stop:
        step = stop.step if isinstance(stop, TrainingStopped) else None
        _finish(recorder, "killed", {"bench.status": "interrupted"})
        kept = _checkpoint_step(folder)
        where = (f"stopped and checkpointed at step {step}" if step is not None and step == kept else
                 f"stopped; its last checkpoint (step {kept}) is kept" if kept else "stopped before its first "
                 "checkpoint")
        raise Interrupted(f"interrupted: {trial.label} on {trial.dataset.name} (trial {trial.key}) {where}; "
                          "finished trials are kept; rerun the same command to resume") from None
    except TrialDiverged as failure:
        return _failed(trial, folder, recorder, failure.reason, failure.step)
    except TrialPruned as pruned:
        evaluations = [*trainer.evaluations, {"step": pruned.step, **pruned.values}]
        details = {"status": "pruned", "step": pruned.step, "reason": pruned.reason, "evaluations": evaluations}
        write_json_atomic(folder / "status.json", details)
        records = _finish(recorder, "finished", {"bench.status": "pruned", "bench.pruned_step": pruned.step})
        return Outcome("pruned", f"pruned at step {pruned.step} ({pruned.reason})", records, details)
    except Exception as err:  # any other failure of this trial: recorded, the suite goes on
        text = "".join(traceback.format_exception(err)).encode()
        write_atomic(folder / "error.txt", lambda f: f.write(text))
        return _failed(trial, folder, recorder, _describe_failure(err), _checkpoint_step(folder))
    finally:
        console.done()
    summary = {"steps": result.steps, **{k: round(v, 4) for k, v in result.final_losses.items()}}
    final = result.evaluations[-1] if result.evaluations else {}
    for name in ("fid", "intra_fid", "fid_a2b", "fid_b2a"):
        if name in final:
            summary[name] = round(final[name], 2)
    if recorder is not None:
        _log_summary(recorder, result.evaluations)
        recorder.log_file(folder / CHECKPOINT_NAME, "checkpoint")
    outcome = Outcome("finished", "finished: " + ", ".join(f"{k}={v}" for k, v in summary.items()),
                      details={"steps": result.steps, "losses": result.final_losses,
                               "evaluations": result.evaluations})
    write_json_atomic(folder / "status.json", {"status": "finished", **outcome.details})
    outcome.records_pending = _finish(recorder, "finished", {"bench.status": "finished"})
    if outcome.records_pending:
        outcome.summary += f" (records kept on disk: {outcome.records_pending})"
    return outcome


def _failed(trial: Trial, folder: Path, recorder, reason: str, step: int | None) -> Outcome:
    details = {"status": "failed", "reason": reason, "step": step}
    write_json_atomic(folder / "status.json", details)
    pending = _finish(recorder, "failed", {"bench.status": "failed", "bench.failure_reason": reason,
                                           "bench.failure_step": step if step is not None else ""})
    at = f" at step {step}" if step is not None else ""
    return Outcome("failed", f"FAILED{at}: {reason}", pending, details)


def _describe_failure(err: Exception) -> str:
    """One line for a trial's failure: what happened and, for the usual causes, what to do."""
    import errno

    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    if isinstance(err, torch.cuda.OutOfMemoryError) or isinstance(err, MemoryError):
        return f"out of memory ({type(err).__name__}); lower batch_size or width, or use a larger device"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return f"disk full ({err.filename or 'writing'}); free space and rerun to resume from the checkpoint"
    if isinstance(err, BenchError):
        return text
    return f"{type(err).__name__}: {text} (traceback in error.txt of the trial's runs folder)"


def _checkpoint_step(folder: Path) -> int | None:
    path = folder / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["step"])
    except Exception:
        return None


def _finish(recorder, status: str, tags: dict[str, Any]) -> str | None:
    """Close the trial's MLflow run; returns why its records are still on disk, or None when all were sent."""
    if recorder is None:
        return None
    recorder.set_tags(tags)
    recorder.finish(status)
    return recorder.close()


def _open_recorder(trial: Trial, folder: Path, device: torch.device, options: RunOptions):
    if options.tracking_uri is None:
        return None
    from bench.recorder import TrialRecorder
    from bench.tracking import environment

    tags = {"bench.suite": trial.suite, "bench.trial_key": trial.key, "bench.method": trial.method,
            "bench.label": trial.label, "bench.dataset": trial.dataset.name, "bench.seed": str(trial.seed),
            "bench.status": "running", "bench.task": "translation" if _translates(trial) else "generation",
            **options.extra_tags}
    recorder = TrialRecorder(options.tracking_uri, trial.suite, folder,
                             f"{trial.label}-{trial.dataset.name}-s{trial.seed}-{trial.key}", tags)
    if not recorder.resumed:
        hidden = {"key", "suite", "method", "label", "dataset", "seed"}
        recorder.log_params({**{k: v for k, v in trial.flat().items() if k not in hidden}, "device": str(device)})
        recorder.log_json(trial.model_dump(mode="json"), "config.json")
        recorder.log_json(environment(device), "environment.json")
    recorder.set_tags({"bench.status": "running", **options.extra_tags})
    return recorder


def make_evaluator(trial: Trial, tracker, device: torch.device, options: RunOptions, console: Console | None = None,
                   name: str = "", held_out=None):
    """The closure the loop calls at each evaluation step: metrics from bench.metrics, logged with protocol."""
    from bench.metrics import Reference, evaluate_generator

    spec = trial.eval
    if spec.reference_stats:
        reference = Reference(dataset=f"stats:{spec.reference_stats}", resolution=trial.resolution)
    else:
        reference = Reference(dataset=trial.dataset.name, split=spec.reference_split, resolution=trial.resolution,
                              n=spec.n_real, options=dict(trial.dataset.options), data_root=options.data_root)
    weights = Path(spec.inception_weights) if spec.inception_weights else None

    def evaluate(method, step: int) -> dict[str, float]:
        bars: dict[str, StepProgress] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if console is not None:
                bar = bars.setdefault(phase, StepProgress(console, f"{name} step {step}, {phase}", total, "images"))
                bar.update(done)

        values: dict[str, float] = {}
        metrics = [m for m in spec.metrics if m != "intra_fid"]
        if method.task == "translation":
            from bench.metrics.translation import evaluate_translation

            result = evaluate_translation(method.translate, method.directions, {"a": held_out.a, "b": held_out.b},
                                          held_out.paired, reference, n=spec.n_fake, mode=spec.mode, device=device,
                                          cache_dir=options.cache_dir, metrics=tuple(metrics), progress=progress)
            values.update(_record(result, tracker, step))
            metrics = []
        if metrics:
            rng = torch.Generator(device).manual_seed(trial.seed + 1_000_003)  # same latents at every evaluation
            result = evaluate_generator(lambda n: method.sample(n, rng), spec.n_fake, reference, metrics=metrics,
                                        mode=spec.mode, device=device, cache_dir=options.cache_dir,
                                        inception_weights=weights, progress=progress)
            values.update(_record(result, tracker, step))
        if "intra_fid" in spec.metrics:
            values.update(_intra_fid(method, trial, reference, tracker, step, device, options, progress))
        if options.on_evaluation is not None:
            options.on_evaluation(step, values)
        return values

    return evaluate


def _record(result, tracker, step: int) -> dict[str, float]:
    """Log an evaluation's values with its protocol, warnings (each said once) and what was unavailable."""
    for message in result.warnings:
        if message not in _warned:
            log.warning("%s", message)
            _warned.add(message)
    if tracker is not None:
        tracker.log_metrics(result.values, step=step)
        tracker.set_tags({f"eval.{k}": v for k, v in result.protocol.items()})
        if result.unavailable:
            tracker.set_tags({f"eval.unavailable.{k}": v for k, v in result.unavailable.items()})
        if result.warnings:
            tracker.set_tags({"eval.warnings": " | ".join(result.warnings)})
    return dict(result.values)


def _intra_fid(method, trial: Trial, reference, tracker, step: int, device, options: RunOptions,
               progress) -> dict[str, float]:
    """Per-class FID of a conditional method; for others it is recorded as unavailable, with the reason."""
    from bench.metrics import evaluate_per_class

    if not getattr(method, "conditional", False) or reference.dataset.startswith("stats:"):
        why = ("the method is not conditional" if not getattr(method, "conditional", False) else
               "eval.reference_stats holds no per-class statistics")
        if tracker is not None:
            tracker.set_tags({"eval.unavailable.intra_fid": why})
        return {}
    rng = torch.Generator(device).manual_seed(trial.seed + 2_000_003)  # the same latents at every evaluation

    def sample(label: int, n: int) -> torch.Tensor:
        return method.sample(n, rng, labels=torch.full((n,), label, dtype=torch.long))

    classes = list(method.shape.classes) or [str(c) for c in range(method.shape.n_classes)]
    result = evaluate_per_class(sample, trial.eval.n_per_class, reference, classes, mode=trial.eval.mode,
                                device=device, cache_dir=options.cache_dir, progress=progress)
    return _record(result, tracker, step)


def _log_summary(tracker, evaluations: list[dict]) -> None:
    if not evaluations:
        return
    final = evaluations[-1]
    summary: dict[str, float] = {}
    if "fid" in final:
        best = min((e for e in evaluations if "fid" in e), key=lambda e: (e["fid"], e["step"]))
        summary.update(fid_final=final["fid"], fid_best=best["fid"], fid_best_step=best["step"])
        tracker.set_tags({"eval.best_step": best["step"], "eval.final_step": final["step"]})
    if "kid_mean" in final:
        summary["kid_final"] = final["kid_mean"]
    if "intra_fid" in final:
        summary["intra_fid_final"] = final["intra_fid"]
    for name in ("fid_a2b", "fid_b2a", "kid_a2b_mean", "kid_b2a_mean", "l1_a2b", "psnr_a2b", "ssim_a2b"):
        if name in final:  # translation: each direction's final value
            summary[f"{name.removesuffix('_mean')}_final"] = final[name]
    tracker.log_metrics(summary, step=final["step"])
