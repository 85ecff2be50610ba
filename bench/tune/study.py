"""An Optuna study over one method of a suite, each proposal a bench trial trained by `bench.trial.run_trial`.

- Storage: `sqlite:///optuna.db` by default (one process); a file path that is not a URL is a JournalStorage file
  (several processes on one machine; optuna-dashboard reads it); any SQLAlchemy URL (PostgreSQL) for several
  machines, with heartbeats: a worker that dies leaves its trial stale, Optuna fails it and queues it again
  (RetryHeartbeatStaleTrialCallback), and the retry resumes the same bench trial from its checkpoint. On a journal
  file, a running trial whose bench trial lock is free has lost its worker: it is failed and queued again the same way.
- `trials` counts finished and pruned trials of the study, whoever ran them. Workers check before each proposal,
  and a proposal that finds the study already full among the trials numbered before it gives way (recorded FAIL,
  user attr `surplus`, never trained): parallel workers end with exactly that many.
- Records: every bench trial is tagged `bench.study` and `bench.tune_trial` and nested under one MLflow parent run
  per study that carries the study's settings. Pruned trials are `bench.status = pruned` with their step.
- Determinism: a seeded TPE sampler; run sequentially on the CPU, a study proposes the same parameters and gets the
  same values every time (parallel workers are not order-deterministic: Optuna's own position).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from bench.batches import DataCache
from bench.errors import BenchError, Interrupted
from bench.results import HEADLINE, objective_key, objective_value
from bench.runs import Outcome, RunOptions, read_status, trial_dir, trial_lock
from bench.streams import tpe_seed
from bench.suite import DatasetSpec, MethodSpec, Suite, make_trial
from bench.tracking import reason
from bench.train import TrialPruned, total_steps
from bench.trial import run_trial
from bench.tune.protocol import PROTOCOL_ATTR, SUITE_ATTR, check_resume

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///optuna.db"
HEARTBEAT_SECONDS = 60


class Surplus(Exception):  # noqa: N818 - a proposal that found the study full; Optuna records it FAIL
    pass


class TrialFailure(Exception):  # noqa: N818 - the bench trial failed; Optuna records it FAIL, the study goes on
    pass


@dataclass
class StudySettings:
    name: str
    method: MethodSpec
    dataset: DatasetSpec
    trials: int
    objective: str = HEADLINE
    pruner: str = "median"
    seed: int = 0
    space: dict[str, Any] = field(default_factory=dict)  # name -> Distribution
    protocol: dict[str, Any] = field(default_factory=dict)  # what the study pins (bench.tune.protocol)
    suite: dict[str, Any] = field(default_factory=dict)  # the suite it is created from, stored for --export
    default: dict[str, Any] = field(default_factory=dict)  # the default configuration, its first trial

    @property
    def label(self) -> str:
        return self.method.label or self.method.name

    def identity(self) -> dict[str, str]:
        """What a study is, stored in it: resuming it with another method, dataset or objective is refused."""
        return {"method": self.method.name, "label": self.label, "dataset": self.dataset.name,
                "objective": self.objective}


def quiet_optuna():
    """Optuna's own log lines and experimental-feature warnings off: bench says how each trial went."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(text: str | None):
    """(Optuna storage, the text shown to users without credentials); one-line errors for the usual mistakes."""
    quiet_optuna()
    text = text or DEFAULT_STORAGE
    if "://" not in text:  # a journal file: several processes on one machine
        path = Path(text).expanduser()
        if path.exists() and path.is_dir():
            raise BenchError(f"--storage {text}: is a folder; give a journal file path, or a database URL")
        if not path.parent.is_dir():
            raise BenchError(f"--storage {text}: the folder {path.parent} does not exist")
        try:
            return JournalStorage(JournalFileBackend(str(path))), str(path)
        except OSError as err:
            raise BenchError(f"--storage {text}: cannot write a journal file there ({err.strerror or err}); give a "
                             "path in a folder you can write, e.g. --storage studies.journal") from None
    shown = _redacted(text)
    text = _with_driver(text)

    def connect():
        return RDBStorage(text, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=3 * HEARTBEAT_SECONDS,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                          engine_kwargs=_engine_kwargs(text))

    try:
        try:
            storage = connect()
        except Exception as err:  # workers starting together on a fresh database race to create its tables
            if not any(s in str(err) for s in ("already exists", "duplicate key", "UniqueViolation")):
                raise
            time.sleep(2)  # the other worker has made them by now
            storage = connect()
    except ImportError as err:
        missing = err.name or getattr(err.__cause__, "name", None) or "its driver"
        if text.startswith("postgresql+psycopg2"):
            raise BenchError(f"--storage {shown}: PostgreSQL's driver psycopg2 is not installed; `uv sync` installs "
                             "it") from None
        raise BenchError(f"--storage {shown}: the database driver {missing} is not installed; bench ships "
                         "PostgreSQL's (postgresql+psycopg2://USER@HOST/DB), SQLite (sqlite:///FILE.db) and journal "
                         f"files; for another database install its SQLAlchemy driver ({missing})") from None
    except Exception as err:  # sqlalchemy.exc.ArgumentError, OperationalError, optuna's own
        raise BenchError(f"--storage {shown}: cannot open it ({reason(err)}); give sqlite:///FILE.db, a journal "
                         "file path, or postgresql+psycopg2://USER@HOST/DB") from None
    return storage, shown


def _with_driver(url: str) -> str:
    """A bare postgresql:// (or postgres://) URL with the driver bench installs: SQLAlchemy 2.1 maps it to psycopg
    3, which is not a dependency."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # several processes queue on SQLite's lock instead of failing
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}


def _redacted(url: str) -> str:
    """A URL as it may be printed and recorded: no password."""

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def make_sampler(seed: int):
    """TPE whose random stream is seeded by (seed, trial number): a study run alone proposes the same parameters
    every time, and workers running at once propose different ones (one shared seed would make their random
    start-up trials identical)."""

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        def __init__(self):
            self.inner = optuna.samplers.TPESampler(seed=seed)

        def before_trial(self, study, trial):
            self.inner = optuna.samplers.TPESampler(seed=tpe_seed(seed, trial.number))
            self.inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.inner.after_trial(study, trial, state, values)

    return TrialSeededTPE()


def make_pruner(kind: str, eval_every: int, total_steps: int, startup_trials: int = 5):
    """Median (Optuna's default rule: stop a trial whose intermediate value is worse than the median of earlier
    trials at that step, once `startup_trials` have finished) or Hyperband (Li et al. 2018; resource = steps)."""

    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, eval_every), max_resource=max(total_steps, 2),
                                              reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)


def load_or_create(settings: StudySettings, storage, pruner):
    """The study by name: created with its identity and protocol (its first trial queued: the method's default
    configuration), or resumed when both match (one line naming the first difference if not). A study made before
    protocols were pinned has no protocol to check: `pinned(study)` is False."""

    try:
        study = optuna.create_study(study_name=settings.name, storage=storage, direction="minimize",
                                    sampler=make_sampler(settings.seed), pruner=pruner, load_if_exists=True)
    except Exception as err:
        raise BenchError(f"study '{settings.name}': the storage refused it ({reason(err)})") from None
    recorded = {k: study.user_attrs.get(f"bench.{k}") for k in settings.identity()}
    if not any(recorded.values()):
        for k, v in settings.identity().items():
            study.set_user_attr(f"bench.{k}", v)
        study.set_user_attr(PROTOCOL_ATTR, settings.protocol)
        study.set_user_attr(SUITE_ATTR, settings.suite)
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial(settings.default, user_attrs={"default": True})
        return study
    differ = {k: (recorded[k], v) for k, v in settings.identity().items() if recorded[k] != v}
    if differ:
        shown = ", ".join(f"{k} {was} (asked: {now})" for k, (was, now) in differ.items())
        raise BenchError(f"study '{settings.name}' exists with another {shown}; choose another --study name")
    if pinned(study):
        check_resume(settings.name, study.user_attrs[PROTOCOL_ATTR], settings.protocol)
    return study


def pinned(study) -> bool:
    return PROTOCOL_ATTR in study.user_attrs


def counts(study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


@dataclass
class Worker:
    """Runs proposals of one study in this process until the study holds its trials."""

    suite: Suite
    settings: StudySettings
    options: RunOptions
    console: Any
    say: Callable[[str], None]
    data: DataCache  # shared by the study's trials
    parent_run_id: str | None = None
    owner: str | None = None  # the worker's name under `bench tune --parallel/--executor ray`
    should_stop: Callable[[], bool] = bool  # Ctrl-C was pressed: the running trial checkpoints and stops
    trained: int = 0
    failed_in_a_row: int = 0

    def objective(self, trial) -> float:
        self._give_way_if_full(trial)
        point = {name: dist.suggest(trial, name) for name, dist in sorted(self.settings.space.items())}
        bench_trial = make_trial(self.suite, self.settings.method, self.settings.dataset, self.settings.seed, point)
        trial.set_user_attr("bench_worker", f"{socket.gethostname()}:{os.getpid()}")
        if self.owner:
            trial.set_user_attr("bench_job", self.owner)
        trial.set_user_attr("bench_key", bench_trial.key)
        tags = {"bench.study": self.settings.name, "bench.tune_trial": str(trial.number)}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        key = objective_key(self.settings.objective)

        last = total_steps(bench_trial, len(self.data.get(bench_trial)))

        def report(step: int, values: dict[str, float]) -> None:
            if key not in values:
                return
            trial.report(values[key], step)
            if step < last and trial.should_prune():  # at the last step the trial is done: nothing to save
                raise TrialPruned(step, f"{key} {values[key]:.2f} at step {step}: the pruner stopped it", values)

        options = replace(self.options, extra_tags=tags, on_evaluation=report, resume_pruned=False)
        prefix = f"[{self.settings.name} #{trial.number}]"
        self.say(f"{prefix} " + " ".join(f"{k}={_short(v)}" for k, v in point.items()))
        # wait=True: a proposal another worker is already training (the same parameters) is waited for, not redone
        try:
            outcome: Outcome = run_trial(bench_trial, options, self.data, self.console, self.say, prefix,
                                         self.should_stop, wait=True)
        except Interrupted:  # Ctrl-C: the bench trial checkpointed; queue its parameters so the next run resumes it
            trial.study.enqueue_trial(point, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
            raise
        if outcome.status in ("finished", "skipped"):
            self.trained += outcome.status == "finished"
            value = objective_value(_evaluations(outcome, bench_trial, self.options), self.settings.objective)
            if value is None:  # a failure like any other: a study of value-less trials stops, it does not spin
                self.failed_in_a_row += 1
                trial.set_user_attr("failure", f"the trial logged no {self.settings.objective}")
                raise TrialFailure(f"the trial logged no {self.settings.objective}; add it to eval.metrics")
            self.failed_in_a_row = 0
            return value
        self.failed_in_a_row = self.failed_in_a_row + 1 if outcome.status in ("failed", "skipped_failed") else 0
        if outcome.status in ("pruned", "skipped_pruned"):
            self.trained += outcome.status == "pruned"
            raise optuna.TrialPruned(outcome.summary)
        trial.set_user_attr("failure", outcome.summary)
        raise TrialFailure(outcome.summary)

    def _give_way_if_full(self, trial) -> None:
        """Exactly `trials` trials: a proposal numbered after the study is full (a race between workers) is not run."""

        ahead = study_trials(trial.study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                                           TrialState.WAITING))
        if sum(t.number < trial.number for t in ahead) >= self.settings.trials:
            trial.set_user_attr("surplus", True)
            raise Surplus()


def study_trials(study, states):
    return study.get_trials(deepcopy=False, states=states)


def _evaluations(outcome, bench_trial, options) -> list[dict]:
    """A trial's evaluations: from this run, or from status.json when it had finished before."""
    if "evaluations" in outcome.details:
        return outcome.details["evaluations"]
    return read_status(trial_dir(bench_trial, options.runs_root)).get("evaluations", [])


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def retry_lost_trials(study, runs_root: Path, suite: str, say: Callable[[str], None], owner: str | None = None) -> None:
    """On storages without heartbeats (journal files): a RUNNING trial whose bench trial is not locked by any
    process lost its worker; fail it and queue its parameters again (the retry resumes from the checkpoint).
    `owner`: a worker of `bench tune --parallel/--executor ray` that died; its running trial is retried on any
    storage (a database's heartbeats would do it only after their grace period)."""
    if owner is None and isinstance(study._storage, optuna.storages.RDBStorage):  # heartbeats do this there
        return
    for frozen in study_trials(study, (TrialState.RUNNING,)):
        key = frozen.user_attrs.get("bench_key")
        if not key or not _worker_gone(frozen, owner):
            continue
        folder = runs_root / suite / key
        with trial_lock(folder) as free:
            if not free:
                continue
            try:
                study._storage.set_trial_state_values(frozen._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number}, skip_if_exists=False)
            say(f"trial #{frozen.number} lost its worker: queued again (it resumes from its checkpoint)")


def _worker_gone(frozen, owner: str | None) -> bool:
    """Whether the worker of a RUNNING trial is gone: the named executor worker that died; else, for a worker
    process on this machine, whether that process still exists (a proposal not yet locked by a live worker is not
    lost); for another machine's, whether the trial has run for over a minute."""
    if owner is not None:
        return frozen.user_attrs.get("bench_job") == owner
    host, _, pid = str(frozen.user_attrs.get("bench_worker", "")).rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    started = frozen.datetime_start
    return started is None or (datetime.now() - started).total_seconds() > 60


def run_worker(worker: Worker, study) -> None:
    """Propose, train and record until the study holds `trials` finished or pruned trials."""
    n = worker.settings.trials
    retry_lost_trials(study, worker.options.runs_root, worker.suite.name, worker.say)
    while True:
        if worker.should_stop():
            raise Interrupted("interrupted between trials; the same command resumes the study")
        c = counts(study)
        done = c["COMPLETE"] + c["PRUNED"]
        if done >= n:
            return
        if done + c["RUNNING"] >= n and not c["WAITING"]:
            worker.say(f"study {worker.settings.name}: {done} of {n} trials done, the other {n - done} running "
                       "elsewhere; this worker stops")
            return
        study.optimize(worker.objective, n_trials=1, catch=(TrialFailure, Surplus), gc_after_trial=False)
        if worker.failed_in_a_row >= max(n, 3):
            raise BenchError(f"study {worker.settings.name}: the last {worker.failed_in_a_row} trials all failed "
                             "(see their reasons above); the search space probably makes every trial diverge: "
                             "narrow it in the suite's tune section")
