"""Tune workers as an executor's jobs: `bench tune ... --parallel N [--per-gpu K]` runs N of them in worker
processes, `--executor ray` as Ray tasks, and a plain `bench tune` one here; each is the same `run_worker` loop
(bench.tune.study) sharing the study through its storage, so the study ends with exactly `trials` finished or
pruned trials, whoever ran them.

- Processes: the slots of `bench run --parallel` (GPU i // K on GPUs). The storage must be
  shareable between processes: a journal file or a database URL.
- Ray: N tasks (1 CPU and 1/K GPU each; N defaults to the cluster's slots, at most `trials`). Workers on other
  machines must reach the storage and the tracking store: with a remote `--address`, a database URL and an MLflow
  server are required.
- A worker that dies fails only its running trial: its Optuna trial is failed and its parameters queued again (the
  retry resumes the bench trial from its checkpoint), and a fresh worker takes the slot while the study is short.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.batches import DataCache
from bench.errors import BenchError, Interrupted
from bench.executors import Context, Placement, on_other_machines, slot_device
from bench.progress import duration
from bench.runs import RunOptions
from bench.suite import Suite
from bench.tune.study import (
    StudySettings,
    Worker,
    counts,
    load_or_create,
    make_pruner,
    open_storage,
    retry_lost_trials,
    run_worker,
)


@dataclass
class TuneJob:
    """One tune worker: proposals of the study until it is full. Picklable: it opens the storage itself."""

    base: Suite
    settings: StudySettings
    storage: str | None  # the --storage text
    pruner: tuple  # make_pruner's arguments
    options: RunOptions
    parent_run_id: str | None
    name: str = ""  # "w1" under --parallel / Ray (its lines start with it); "" for the worker of a plain bench tune

    @property
    def cpus(self) -> int:
        return self.base.numerics.threads

    def _study(self):
        storage, _ = open_storage(self.storage)
        return load_or_create(self.settings, storage, make_pruner(*self.pruner))

    def __call__(self, ctx: Context) -> dict[str, Any]:
        options = replace(self.options, device=slot_device(ctx.slot, self.base.device, self.options.device))
        say = (lambda line: ctx.say(f"{self.name} {line}")) if self.name else ctx.say
        try:
            data = ctx.cache.setdefault("data", DataCache(options.data_root))
            worker = Worker(self.base, self.settings, options, ctx.console, say, data, self.parent_run_id,
                            owner=self.name or None, should_stop=ctx.should_stop)
            run_worker(worker, self._study())
            return {"trained": worker.trained}
        except BenchError as err:
            return {"trained": 0, "error": str(err)}
        except KeyboardInterrupt:  # a second Ctrl-C between two trials
            raise Interrupted(f"{self.name or 'bench tune'}: stopped between trials") from None

    def lost(self, why: str, say: Callable[[str], None]) -> dict[str, Any]:
        """Its worker died: fail its running trial and queue its parameters again (also on databases, whose
        heartbeats would do it only after their grace period)."""
        say(f"{self.name}: {why}; its running trial fails and is queued again")
        retry_lost_trials(self._study(), self.options.runs_root, self.base.name, say, owner=self.name)
        return {"trained": 0, "lost": True}

    def follow_up(self, result: dict[str, Any]) -> TuneJob | None:
        """A fresh worker for a lost one, while the study still needs trials that no worker is running."""
        if not result.get("lost"):
            return None
        c = counts(self._study())
        short = c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] < self.settings.trials or bool(c["WAITING"])
        return self if short else None


def check_shared_storage(storage: str | None, placement: Placement, tracking_uri: str | None) -> None:
    """One line, before anything trains, when the workers could not share the study or write the records."""
    text = storage or "sqlite:///optuna.db"
    workers = placement.most_workers()  # None: a cluster's count, two or more
    address = placement.address
    if on_other_machines(placement):
        if "://" not in text or text.startswith("sqlite"):
            raise BenchError(f"--executor ray --address {address}: workers on other machines cannot open the study "
                             f"storage '{text}' of this one; give a database they can reach "
                             "(--storage postgresql+psycopg2://USER@HOST/DB)")
        if not (tracking_uri or "").startswith(("http://", "https://")):
            raise BenchError(f"--executor ray --address {address}: the workers on other machines cannot write to "
                             f"the tracking store '{tracking_uri or 'none'}' of this one; start an MLflow server "
                             "(`mlflow server --host 0.0.0.0`) and pass --tracking-uri http://HOST:5000")
    elif (workers is None or workers > 1) and text.startswith("sqlite"):
        raise BenchError(f"{workers or 'several'} tune workers share the study through its storage, and SQLite "
                         f"('{text}') is one process's: give --storage FILE.journal (this machine) or a PostgreSQL "
                         "URL (machines)")


class StudyProgress:
    """What the workers of one study have done, read from its storage: on a terminal (`live`) a status line under
    the workers' lines, refreshed every few seconds; else a plain line whenever the count of ended trials changes."""

    def __init__(self, study, trials: int, console, live: bool):
        self.study, self.trials, self.console, self.live = study, trials, console, live
        self.start, self.last_read, self.said = time.perf_counter(), 0.0, -1

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self.last_read < (2.0 if self.live else 10.0):
            return
        self.last_read = now
        try:
            c = counts(self.study)
        except Exception:  # noqa: BLE001 - a storage hiccup costs one status line, never the study
            return
        done = c["COMPLETE"] + c["PRUNED"]
        text = (f"study {self.study.study_name}: {done}/{self.trials} done ({c['PRUNED']} pruned, {c['FAIL']} failed),"
                f" {c['RUNNING']} running")
        if done:
            text += f", ETA {duration((now - self.start) / done * max(self.trials - done, 0))}"
        if self.live:
            self.console.status(text)
        elif done != self.said:
            self.said = done
            self.console.say(text)
