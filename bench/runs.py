"""A trial's folder and what a run of it is given and gives back.

runs/<suite>/<key>/ holds checkpoint.pt, status.json (finished, failed or pruned, with the details), run.json (the
MLflow run id), lock (held by the process training it), error.txt (the traceback of a failure) and pending/
(records the tracking store could not take yet).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.checkpoint import CHECKPOINT_NAME, default_runs_root
from bench.files import write_atomic
from bench.suite import Trial


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
    quiet_workers: bool = False  # worker processes print nothing (bench perf suite: only its table)


@dataclass
class Outcome:
    """How one trial ended in this process."""

    status: str  # finished | failed | pruned | skipped (already finished) | skipped_failed | skipped_pruned | busy
    summary: str = ""
    records_pending: str | None = None  # why the MLflow records are still on disk, if they are
    details: dict[str, Any] = field(default_factory=dict)


def trial_dir(trial: Trial, runs_root: Path) -> Path:
    return runs_root / trial.suite / trial.key


def trial_status(trial: Trial, runs_root: Path) -> str:
    """finished | failed | pruned | interrupted (has a checkpoint) | new."""
    folder = trial_dir(trial, runs_root)
    try:
        return json.loads((folder / "status.json").read_text())["status"]
    except FileNotFoundError:
        return "interrupted" if (folder / CHECKPOINT_NAME).exists() else "new"
    except (ValueError, KeyError):  # a torn or hand-edited file: the trial is not known to be done
        return "interrupted" if (folder / CHECKPOINT_NAME).exists() else "new"


def read_status(folder: Path) -> dict[str, Any]:
    """status.json of a trial folder ({} when there is none)."""
    try:
        return json.loads((folder / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True, default=str).encode()))


def checkpoint_step(folder: Path) -> int | None:
    """The step of the trial's checkpoint, or None when it has none (or an unreadable one)."""
    import torch  # a checkpoint is a torch file; only this reads one

    path = folder / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["step"])
    except Exception:
        return None


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


def clean_stale_temporaries(folder: Path) -> None:
    """A process killed mid-write leaves `.<name>.*.tmp`; whoever holds the trial's lock may remove them."""
    for path in folder.glob(".*.tmp"):
        try:
            path.unlink()
        except OSError:
            pass
