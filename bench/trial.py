"""One trial end to end: skip it if done, take its lock, resume or start it, record it, and turn every way it can
end into an Outcome. Every executor (here, worker processes, Ray tasks) and the tuner call `run_trial`, so a trial's
records do not depend on who ran it.
"""

from __future__ import annotations

import errno
import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import devices, numerics
from bench.batches import DataCache
from bench.checkpoint import CHECKPOINT_NAME
from bench.errors import BenchError, Interrupted
from bench.evaluation import log_summary, make_evaluator
from bench.files import write_atomic
from bench.methods import get_method
from bench.preflight import heldout_split
from bench.progress import Console, StepProgress
from bench.recorder import TrialRecorder
from bench.results import console_keys
from bench.runs import (
    Outcome,
    RunOptions,
    checkpoint_step,
    clean_stale_temporaries,
    trial_dir,
    trial_lock,
    trial_status,
    write_json_atomic,
)
from bench.suite import Trial
from bench.tracking import environment
from bench.train import Trainer, TrainingStopped, TrialDiverged, TrialPruned


def run_trial(trial: Trial, options: RunOptions, data: DataCache | None = None, console: Console | None = None,
              say: Callable[[str], None] | None = None, prefix: str = "", should_stop: Callable[[], bool] = bool,
              wait: bool = False) -> Outcome:
    """Train one trial unless it is done or another process holds it; every failure becomes an Outcome."""
    console = console or Console(live=False)
    say = say or console.say
    data = data or DataCache(options.data_root)
    name = f"{prefix} {trial.key} {trial.label} {trial.dataset.label} seed={trial.seed}".strip()
    folder = trial_dir(trial, options.runs_root)
    status = trial_status(trial, options.runs_root)
    if (skipped := skip(status, options, name, say)) is not None:
        return skipped
    with trial_lock(folder, (lambda: say(f"{name}: waiting for the other process that is training it"))
                    if wait else None) as acquired:
        if not acquired:
            say(f"{name}: being trained by another process; coming back to it at the end")
            return Outcome("busy")
        status = trial_status(trial, options.runs_root)  # it may have finished while we waited
        if (skipped := skip(status, options, name, say)) is not None:
            return skipped
        clean_stale_temporaries(folder)
        device = devices.resolve(options.device or trial.device)
        resuming = (folder / CHECKPOINT_NAME).exists()  # interrupted, or failed and retried
        say(f"{name}: {'resuming' if resuming else 'training'} on {device}")
        short = f"{prefix} {trial.label} {trial.dataset.label} s{trial.seed}".strip()
        # translation trials see held-out inputs in their grids and evaluations (the reference split's pairs)
        held_out = data.get(trial, trial.eval.reference_split) if _translates(trial) else None
        if trial.log.heldout_scores:  # real images D never trains on, for its train/held-out output gap
            held_out = data.get(trial, heldout_split(trial, data.data_root))
        outcome = _train(trial, data.get(trial), device, folder, options, console, short, should_stop, held_out)
        say(f"{name}: {outcome.summary}")
        return outcome


def skip(status: str, options: RunOptions, name: str, say: Callable[[str], None]) -> Outcome | None:
    """The outcome of a trial this run does not train (finished, pruned, failed without --retry-failed), or None."""
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
    return get_method(trial.method).task == "translation"


def _train(trial: Trial, data, device: torch.device, folder: Path, options: RunOptions, console: Console,
           short: str, should_stop: Callable[[], bool], held_out=None) -> Outcome:
    recorder = _open_recorder(trial, folder, device, options)
    progress = None
    try:
        evaluate = (make_evaluator(trial, recorder, device, options, console, short, held_out)
                    if trial.eval.metrics else None)
        translating = _translates(trial)
        trainer = Trainer(trial, data, device, folder, tracker=recorder, evaluate=evaluate,
                          grid_data=held_out if translating else None, held_out=None if translating else held_out)
        progress = StepProgress(console, short, trainer.total)

        def show(step: int, total: int, means: dict[str, float], images_per_s: float) -> None:
            losses = " ".join(f"{k} {v:.3f}" for k, v in means.items())
            progress.update(step, f"{images_per_s:.0f} img/s, {losses}")

        result = trainer.run(progress=show, should_stop=should_stop)
    except (TrainingStopped, KeyboardInterrupt) as stop:
        step = stop.step if isinstance(stop, TrainingStopped) else None
        _finish(recorder, "killed", {"bench.status": "interrupted"})
        kept = checkpoint_step(folder)
        where = (f"stopped and checkpointed at step {step}" if step is not None and step == kept else
                 f"stopped; its last checkpoint (step {kept}) is kept" if kept else "stopped before its first "
                 "checkpoint")
        raise Interrupted(f"interrupted: {trial.label} on {trial.dataset.label} (trial {trial.key}) {where}; "
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
        return _failed(trial, folder, recorder, _describe_failure(err), checkpoint_step(folder))
    finally:
        console.done()
    summary = {"steps": result.steps, **{k: round(v, 4) for k, v in result.final_losses.items()}}
    final = result.evaluations[-1] if result.evaluations else {}
    for name in console_keys():
        if name in final:
            summary[name] = round(final[name], 2)
    if recorder is not None:
        log_summary(recorder, result.evaluations)
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
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    if isinstance(err, torch.cuda.OutOfMemoryError) or isinstance(err, MemoryError):
        return f"out of memory ({type(err).__name__}); lower batch_size or width, or use a larger device"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return f"disk full ({err.filename or 'writing'}); free space and rerun to resume from the checkpoint"
    if isinstance(err, BenchError):
        return text
    return f"{type(err).__name__}: {text} (traceback in error.txt of the trial's runs folder)"


def _finish(recorder, status: str, tags: dict[str, Any]) -> str | None:
    """Close the trial's MLflow run; returns why its records are still on disk, or None when all were sent."""
    if recorder is None:
        return None
    recorder.set_tags(tags)
    recorder.finish(status)
    return recorder.close()


def _trial_tags(trial: Trial, options: RunOptions) -> dict[str, str]:
    return {"bench.suite": trial.suite, "bench.trial_key": trial.key, "bench.method": trial.method,
            "bench.label": trial.label, "bench.dataset": trial.dataset.label, "bench.seed": str(trial.seed),
            "bench.status": "running", "bench.task": "translation" if _translates(trial) else "generation",
            # the whole config, so `bench reproduce` can re-train the trial from the record alone
            "bench.config": json.dumps(trial.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
            **options.extra_tags}


def _recorder(trial: Trial, folder: Path, options: RunOptions, device: str) -> TrialRecorder:
    """The trial's MLflow run, opened (re-opened when it has one) with its tags; a new one gets its params and
    config."""
    name = f"{trial.label}-{trial.dataset.label}-s{trial.seed}-{trial.key}"
    recorder = TrialRecorder(options.tracking_uri, trial.suite, folder, name, _trial_tags(trial, options))
    if not recorder.resumed:
        hidden = {"key", "suite", "method", "label", "dataset", "seed"}
        recorder.log_params({**{k: v for k, v in trial.flat().items() if k not in hidden}, "device": device})
        recorder.log_json(trial.model_dump(mode="json"), "config.json")
    return recorder


def _open_recorder(trial: Trial, folder: Path, device: torch.device, options: RunOptions):
    if options.tracking_uri is None:
        return None
    recorder = _recorder(trial, folder, options, str(device))
    with numerics.trial_numerics(trial.numerics, device):  # as the trial computes
        here = numerics.fingerprint(device)
        env = environment(device) if not recorder.resumed else None
    if not recorder.resumed:
        recorder.log_json(env, "environment.json")
        recorder.set_tags({f"fingerprint.{k}": v for k, v in here.items()})  # what decided the bits (bench/numerics)
    elif (recorded := recorder.tags_with_prefix("fingerprint.")) and \
            (changed := numerics.differences(recorded, here)):
        recorder.set_tags({"fingerprint.resumed_with": "; ".join(changed)[:5000]})
    recorder.set_tags({"bench.status": "running", **options.extra_tags})
    return recorder


def record_failure(trial: Trial, options: RunOptions, why: str, worker_died: bool = False) -> Outcome:
    """The outcome of a trial that failed outside its training (its worker died, nobody asked it to stop, on any
    executor; or it could not start: a device or dataset the worker cannot use): failed, in status.json and in its
    MLflow run (made now if there was none), with the reason, so that the next run skips it as failed instead of
    taking it for new; its checkpoint, if it wrote one, stays for `--retry-failed`."""
    folder = trial_dir(trial, options.runs_root)
    folder.mkdir(parents=True, exist_ok=True)
    step = checkpoint_step(folder)
    recorder = None
    if options.tracking_uri is not None:
        try:
            recorder = _recorder(trial, folder, options, options.device or trial.device)
        except BenchError as err:  # the store is what failed: status.json still says so
            why += f" (no MLflow record: {err})"
    outcome = _failed(trial, folder, recorder, why, step)
    if worker_died:
        outcome.details["worker_died"] = True
    kept = (f"its checkpoint at step {step} is kept: `--retry-failed` resumes it from there" if step else
            "it wrote no checkpoint: `--retry-failed` trains it from the start")
    outcome.summary = f"FAILED: {why}; {kept}"
    if outcome.records_pending:
        outcome.summary += f" (records kept on disk: {outcome.records_pending})"
    return outcome
