"""A suite's run: check every trial first, send records left pending, hand one job per trial to an executor, and
tally how each ended. Finished trials are skipped, interrupted ones resume, a trial another process holds is waited
for at the end, and a failure of one trial never stops the others (bench.trial runs each one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.batches import DataCache
from bench.errors import BenchError, Interrupted
from bench.executors import Context, Placement, make_executor, slot_device
from bench.interrupts import ctrl_c_stops_training
from bench.preflight import check_runs_folder, check_trials
from bench.progress import Console
from bench.recorder import pending_folders, replay
from bench.runs import Outcome, RunOptions, trial_dir, trial_lock, trial_status
from bench.suite import Trial
from bench.tracking import open_store
from bench.trial import record_failure, run_trial, skip


@dataclass
class SuiteResult:
    counts: Counter
    pending: list[Path]  # trial folders whose records could not be sent
    failed: list[str]  # one line per failed trial

    @property
    def exit_code(self) -> int:
        """0 when every selected trial is finished and recorded; 1 otherwise (failed, or records pending)."""
        return 1 if (self.counts["failed"] or self.counts["skipped_failed"] or self.pending) else 0


def prepare(trials: list[Trial], options: RunOptions, say: Callable[[str], None] = print) -> DataCache:
    """Everything checkable before training: trials, runs folder, tracking store; then send pending records."""
    data = DataCache(options.data_root)
    largest_checkpoint = check_trials(trials, data, options.device)
    for suite in sorted({t.suite for t in trials}):
        check_runs_folder(options.runs_root, suite, largest_checkpoint)
        if options.tracking_uri is not None:
            store = open_store(options.tracking_uri, suite)
            say(f"records: {options.tracking_uri}, experiment '{suite}' (artifacts in {store.artifact_location})")
            _send_pending(options.runs_root, suite, say)
    return data


def _send_pending(runs_root: Path, suite: str, say: Callable[[str], None]) -> None:
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
class TrialJob:
    """One trial as an executor's job: `run_trial` in the job's slot, its lost worker recorded as a failure."""

    trial: Trial
    options: RunOptions
    prefix: str  # [3/15]
    wait: bool = False  # another process held it: wait for its lock, then train it unless that one finished it

    @property
    def name(self) -> str:
        t = self.trial
        return f"{self.prefix} {t.key} {t.label} {t.dataset.label} seed={t.seed}".strip()

    @property
    def cpus(self) -> int:
        return self.trial.numerics.threads

    def __call__(self, ctx: Context) -> Outcome:
        options = replace(self.options, device=slot_device(ctx.slot, self.trial.device, self.options.device))
        data = ctx.cache.setdefault("data", DataCache(options.data_root))
        try:
            return run_trial(self.trial, options, data, ctx.console, ctx.say, self.prefix, ctx.should_stop,
                             wait=self.wait)
        except BenchError as err:  # e.g. a device this worker cannot use: the trial fails, the rest goes on
            outcome = record_failure(self.trial, options, str(err))
            ctx.say(f"{self.name}: {outcome.summary}")
            return outcome

    def lost(self, why: str, say: Callable[[str], None]) -> Outcome:
        outcome = record_failure(self.trial, self.options, why, worker_died=True)
        say(f"{self.name}: {outcome.summary}")
        return outcome

    def follow_up(self, outcome: Outcome) -> TrialJob | None:
        return replace(self, wait=True) if outcome.status == "busy" else None


def run_trials(trials: list[Trial], options: RunOptions, say: Callable[[str], None] | None = None,
               console: Console | None = None, placement: Placement | None = None) -> SuiteResult:
    """Check everything, then train every trial that is not done, where `placement` says (here one after another
    by default); the records are the same whoever trains a trial.

    A trial another process is training is deferred to the end and waited for, then trained here if that
    process died before finishing it: every trial ends trained exactly once, whoever trains it.
    """
    console = console or Console(live=False)
    say = say or console.say
    placement = placement or Placement()
    executor = make_executor(placement, options.device, {t.device for t in trials}, console, say,
                             quiet=options.quiet_workers, tracking_uri=options.tracking_uri)
    data = prepare(trials, options, say)
    if executor.in_process:
        executor.cache["data"] = data  # loaded by the checks: the trials here train on it
    counts: Counter = Counter()
    pending, failed = [], []

    def tally(job: TrialJob, outcome: Outcome) -> None:
        counts[outcome.status] += 1
        if outcome.records_pending:
            pending.append(trial_dir(job.trial, options.runs_root))
        if outcome.status in ("failed", "skipped_failed"):
            t = job.trial
            failed.append(f"{t.key} {t.label} {t.dataset.label} seed={t.seed}: {outcome.summary}")

    jobs = []
    for i, trial in enumerate(trials, 1):  # what is done is told here, not sent to a worker (nor counted running)
        job = TrialJob(trial, options, f"[{i}/{len(trials)}]")
        if (skipped := skip(trial_status(trial, options.runs_root), options, job.name, say)) is not None:
            tally(job, skipped)
        else:
            jobs.append(job)
    with ctrl_c_stops_training() as stop_requested, executor:
        stopped = executor.run(jobs, tally, stop_requested)
    console.done()
    if stopped or stop_requested():
        raise Interrupted(_interrupted(stopped, counts, len(trials), executor.in_process, say))
    return SuiteResult(counts, pending, failed)


def _interrupted(stopped: list[str], counts: Counter, total: int, local: bool, say: Callable[[str], None]) -> str:
    """What Ctrl-C left: the one trial it stopped (local), each trial it stopped and a count (workers)."""
    if local and stopped:
        return stopped[0]
    if local:
        return (f"interrupted between trials: {counts['finished']} trained in this run, each one kept; rerun the "
                "same command to go on")
    for line in stopped:
        say(line)
    return (f"interrupted: {sum(counts.values())} of {total} trials ended in this run, each one kept; trials that "
            "were running checkpointed; rerun the same command to resume")
