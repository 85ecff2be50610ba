"""A trial's MLflow records: sent while the store answers, kept on disk when it does not, never lost.

The Trainer and the runner call a TrialRecorder as they would MLflow. The first call that fails (the server went
away, the database is locked, its disk is full) turns the recorder offline for the rest of the trial: that call and
every later one go to `<trial folder>/pending/journal.jsonl` (artifact bytes beside it), and training goes on. When
the trial ends the journal is sent once more; whatever still cannot be sent stays on disk, and the next `bench run`
of the suite sends it before it trains anything (`replay`). Order is kept: a journal is replayed call by call.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from bench.files import write_atomic
from bench.tracking import MlflowTracker, png_grid, reason

log = logging.getLogger(__name__)

PENDING = "pending"
RUN_FILE = "run.json"


class Journal:
    """Calls that could not be sent, one JSON line each; the first line says where they were going."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "journal.jsonl"

    def exists(self) -> bool:
        return self.path.is_file()

    def start(self, header: dict[str, Any]) -> None:
        if not self.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write_lines([header])

    def append(self, op: str, **kwargs: Any) -> None:
        for key, value in list(kwargs.items()):
            if isinstance(value, bytes):  # artifact bytes live beside the journal, named by their position
                name = f"{sum(1 for _ in self.folder.glob('blob-*')):05d}-{Path(kwargs['artifact_path']).name}"
                (self.folder / f"blob-{name}").write_bytes(value)
                kwargs[key] = {"blob": f"blob-{name}"}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"op": op, **kwargs}, default=str) + "\n")

    def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        lines = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return lines[0], lines[1:]

    def keep_only(self, header: dict[str, Any], ops: list[dict[str, Any]]) -> None:
        """Rewrite the journal with the calls not sent yet; delete it (and its blobs) when none are left."""
        if not ops:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        self._write_lines([header, *ops])

    def blob(self, ref: dict[str, str]) -> bytes:
        return (self.folder / ref["blob"]).read_bytes()

    def _write_lines(self, lines: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(line, default=str) + "\n" for line in lines)
        write_atomic(self.path, lambda f: f.write(text.encode("utf-8")))


def read_run_id(folder: Path) -> str | None:
    path = folder / RUN_FILE
    try:
        return json.loads(path.read_text())["run_id"] if path.exists() else None
    except (ValueError, KeyError, OSError):
        return None


def _write_run_id(folder: Path, run_id: str, uri: str) -> None:
    text = json.dumps({"run_id": run_id, "tracking_uri": uri}, indent=2, sort_keys=True)
    write_atomic(folder / RUN_FILE, lambda f: f.write(text.encode()))


class TrialRecorder:
    """The records of one trial (see the module docstring); no method raises because the store failed."""

    def __init__(self, uri: str, experiment: str, folder: Path, run_name: str, tags: dict[str, str]):
        self.uri, self.experiment, self.folder = uri, experiment, folder
        self.journal = Journal(folder / PENDING)
        self.header = {"uri": uri, "experiment": experiment, "run_name": run_name, "tags": tags}
        self.live = None
        self.offline_reason: str | None = None
        self.resumed = False
        if self.journal.exists():  # calls left by an earlier process: keep the order, send them all at the end
            self.offline_reason = "records of an earlier attempt are still pending"
            return
        try:
            self.live = MlflowTracker(uri, experiment, read_run_id(folder), run_name, tags)
            self.resumed = self.live.resumed
            _write_run_id(folder, self.live.run_id, uri)
        except Exception as err:
            self._go_offline(err)

    @property
    def offline(self) -> bool:
        return self.live is None

    def _go_offline(self, err: Exception) -> None:
        self.live = None
        self.offline_reason = reason(err)
        log.warning("MLflow store %s failed (%s): training goes on, records are kept in %s", self.uri,
                    self.offline_reason, self.journal.folder)
        self.journal.start(self.header)

    def _send(self, op: str, **kwargs: Any) -> None:
        if self.live is not None:
            try:
                _apply(self.live, op, kwargs, self.journal)
                return
            except Exception as err:
                self._go_offline(err)
        self.journal.append(op, **kwargs)

    def tags_with_prefix(self, prefix: str) -> dict[str, str]:
        """The run's tags under `prefix` (without it) as they were when it was opened; {} when offline."""
        tags = self.live.tags if self.live is not None else {}
        return {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}

    # the calls the runner and the Trainer make -------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        self._send("log_params", params=params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._send("set_tags", tags={k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._send("log_metrics", metrics={k: float(v) for k, v in metrics.items()}, step=step,
                   timestamp_ms=int(time.time() * 1000))

    def log_png(self, images, artifact_path: str) -> None:
        self._send("log_bytes", data=png_grid(images), artifact_path=artifact_path)

    def log_json(self, obj: Any, artifact_path: str) -> None:
        self._send("log_text", text=json.dumps(obj, indent=2, sort_keys=True, default=str),
                   artifact_path=artifact_path)

    def log_file(self, path: Path, folder: str) -> None:
        self._send("log_file", path=str(path), folder=folder)

    def finish(self, status: str) -> None:
        self._send("finish", status=status)

    def close(self) -> str | None:
        """Send what the journal holds; None when everything reached the store, else why not."""
        if not self.offline:
            return None
        return replay(self.folder)


def _apply(tracker, op: str, kwargs: dict[str, Any], journal: Journal) -> None:
    if op == "log_bytes":
        data = kwargs["data"]
        tracker.log_bytes(journal.blob(data) if isinstance(data, dict) else data, kwargs["artifact_path"])
    elif op == "log_file":
        tracker.log_file(Path(kwargs["path"]), kwargs["folder"])
    else:
        getattr(tracker, op)(**kwargs)


def replay(folder: Path) -> str | None:
    """Send a trial's pending journal, call by call; None when it is all sent, else the reason it stopped."""

    journal = Journal(folder / PENDING)
    if not journal.exists():
        return None
    header, ops = journal.read()
    sent = 0
    try:
        tracker = MlflowTracker(header["uri"], header["experiment"], read_run_id(folder), header["run_name"],
                                header["tags"])
        _write_run_id(folder, tracker.run_id, header["uri"])
        for op in ops:
            _apply(tracker, op["op"], {k: v for k, v in op.items() if k != "op"}, journal)
            sent += 1
    except Exception as err:
        journal.keep_only(header, ops[sent:])
        return reason(err)
    journal.keep_only(header, [])
    return None


def pending_folders(runs_root: Path, suite: str) -> list[Path]:
    """Trial folders of a suite that hold records not yet sent."""
    return sorted(p.parent.parent for p in (runs_root / suite).glob(f"*/{PENDING}/journal.jsonl"))
