"""Run a suite's trials: skip the finished, resume the interrupted, lock each trial so that two `bench run`
processes never train the same one, record every trial in MLflow, and go on when one fails.

Local state per trial lives in runs/<suite>/<key>/: checkpoint.pt, status.json, run.json (the MLflow run id), lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.checkpoint import CHECKPOINT_NAME, default_runs_root
from bench.data import ImageSet, load_dataset
from bench.files import write_atomic
from bench.suite import Trial

log = logging.getLogger(__name__)
_warned: set[str] = set()  # evaluation warnings are the same for every trial of a suite: say each once


@dataclass
class RunOptions:
    runs_root: Path = default_runs_root()
    data_root: Path | None = None
    tracking_uri: str | None = None  # resolved; None = no MLflow (tests, perf)
    device: str | None = None  # overrides the suite's
    retry_failed: bool = False
    cache_dir: Path | None = None


def trial_dir(trial: Trial, runs_root: Path) -> Path:
    return runs_root / trial.suite / trial.key


def trial_status(trial: Trial, runs_root: Path) -> str:
    """finished | failed | interrupted (has a checkpoint) | new."""
    folder = trial_dir(trial, runs_root)
    status_file = folder / "status.json"
    if status_file.exists():
        return json.loads(status_file.read_text())["status"]
    return "interrupted" if (folder / CHECKPOINT_NAME).exists() else "new"


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True).encode()))


@contextmanager
def trial_lock(folder: Path) -> Iterator[bool]:
    """An exclusive, non-blocking flock; the OS drops it when the holder dies, even by SIGKILL."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DataCache:
    """Each (dataset, split, resolution) is loaded once per suite run and shared by its trials."""

    def __init__(self, data_root: Path | None):
        self.data_root, self.sets = data_root, {}

    def get(self, trial: Trial) -> ImageSet:
        d = trial.dataset
        key = (d.name, d.split, trial.resolution, repr(sorted(d.options.items())))
        if key not in self.sets:
            self.sets[key] = load_dataset(d.name, trial.resolution, d.split, self.data_root, **d.options)
        return self.sets[key]


def run_trials(trials: list[Trial], options: RunOptions, say: Callable[[str], None] = print) -> dict[str, int]:
    """Train every trial that is not done. Returns counts per outcome."""
    from bench.train import resolve_device

    counts = {"finished": 0, "failed": 0, "skipped": 0, "busy": 0}
    data = DataCache(options.data_root)
    for trial in trials:  # a missing dataset stops the run before any training, not half-way through
        if trial_status(trial, options.runs_root) not in ("finished", "failed"):
            data.get(trial)
    for i, trial in enumerate(trials, 1):
        prefix = f"[{i}/{len(trials)}] {trial.key} {trial.label} {trial.dataset.name} seed={trial.seed}"
        status = trial_status(trial, options.runs_root)
        if status == "finished" or (status == "failed" and not options.retry_failed):
            say(f"{prefix}: already {status}, skipped" + (" (--retry-failed reruns it)" if status == "failed" else ""))
            counts["skipped"] += 1
            continue
        folder = trial_dir(trial, options.runs_root)
        with trial_lock(folder) as acquired:
            if not acquired:
                say(f"{prefix}: being trained by another process, skipped")
                counts["busy"] += 1
                continue
            status = trial_status(trial, options.runs_root)  # it may have finished while we waited
            if status == "finished":
                say(f"{prefix}: already finished, skipped")
                counts["skipped"] += 1
                continue
            device = resolve_device(options.device or trial.device)
            say(f"{prefix}: {'resuming' if status == 'interrupted' else 'training'} on {device}")
            outcome = train_trial(trial, data.get(trial), device, folder, options)
            counts[outcome["status"]] += 1
            say(f"{prefix}: {outcome['summary']}")
    return counts


def train_trial(trial: Trial, data: ImageSet, device: torch.device, folder: Path, options: RunOptions) -> dict:
    from bench.train import Trainer, TrialDiverged

    tracker = _open_tracker(trial, folder, device, options)
    evaluate = make_evaluator(trial, tracker, device, options) if trial.eval.metrics else None
    trainer = Trainer(trial, data, device, folder, tracker=tracker, evaluate=evaluate)
    try:
        result = trainer.run()
    except TrialDiverged as failure:
        outcome = {"status": "failed", "step": failure.step, "reason": failure.reason,
                   "summary": f"FAILED at step {failure.step}: {failure.reason}"}
        if tracker is not None:
            tracker.set_tags({"bench.status": "failed", "bench.failure_reason": failure.reason,
                              "bench.failure_step": failure.step})
            tracker.finish("failed")
        write_json_atomic(folder / "status.json", outcome)
        return outcome
    summary = {"steps": result.steps, **{k: round(v, 4) for k, v in result.final_losses.items()}}
    final = result.evaluations[-1] if result.evaluations else {}
    if "fid" in final:
        summary["fid"] = round(final["fid"], 2)
    if tracker is not None:
        _log_summary(tracker, result.evaluations)
        tracker.log_file(folder / CHECKPOINT_NAME, "checkpoint")
        tracker.set_tags({"bench.status": "finished"})
        tracker.finish("finished")
    outcome = {"status": "finished", "steps": result.steps, "losses": result.final_losses,
               "evaluations": result.evaluations,
               "summary": "finished: " + ", ".join(f"{k}={v}" for k, v in summary.items())}
    write_json_atomic(folder / "status.json", outcome)
    return outcome


def _open_tracker(trial: Trial, folder: Path, device: torch.device, options: RunOptions):
    if options.tracking_uri is None:
        return None
    from bench.tracking import MlflowTracker, environment

    run_file = folder / "run.json"
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.exists() else None
    tags = {"bench.suite": trial.suite, "bench.trial_key": trial.key, "bench.method": trial.method,
            "bench.label": trial.label, "bench.dataset": trial.dataset.name, "bench.seed": str(trial.seed),
            "bench.status": "running"}
    tracker = MlflowTracker(options.tracking_uri, trial.suite, run_id,
                            f"{trial.label}-{trial.dataset.name}-s{trial.seed}-{trial.key}", tags)
    write_json_atomic(run_file, {"run_id": tracker.run_id, "tracking_uri": options.tracking_uri})
    if not tracker.resumed:
        hidden = {"key", "suite", "method", "label", "dataset", "seed"}
        tracker.log_params({**{k: v for k, v in trial.flat().items() if k not in hidden}, "device": str(device)})
        tracker.log_json(trial.model_dump(mode="json"), "config.json")
        tracker.log_json(environment(device), "environment.json")
    tracker.set_tags({"bench.status": "running"})
    return tracker


def make_evaluator(trial: Trial, tracker, device: torch.device, options: RunOptions):
    """The closure the loop calls at each evaluation step: metrics from bench.metrics, logged with protocol."""
    from bench.metrics import Reference, evaluate_generator

    spec = trial.eval
    if spec.reference_stats:
        reference = Reference(dataset=f"stats:{spec.reference_stats}", resolution=trial.resolution)
    else:
        reference = Reference(dataset=trial.dataset.name, split=spec.reference_split, resolution=trial.resolution,
                              n=spec.n_real, options=dict(trial.dataset.options), data_root=options.data_root)
    weights = Path(spec.inception_weights) if spec.inception_weights else None

    def evaluate(method, generator, step: int, class_weights: torch.Tensor | None) -> dict[str, float]:
        rng = torch.Generator(device).manual_seed(trial.seed + 1_000_003)  # same latents at every evaluation
        def sample(n: int) -> torch.Tensor:
            return method.sample(generator, n, rng, class_weights)

        result = evaluate_generator(sample, spec.n_fake, reference, metrics=spec.metrics, mode=spec.mode,
                                    device=device, cache_dir=options.cache_dir, inception_weights=weights)
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

    return evaluate


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
    tracker.log_metrics(summary, step=final["step"])
