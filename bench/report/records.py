"""MLflow records of a suite -> pandas: one row per run, metric histories, and the tidy table.

Reads only what docs/records.md says training writes. A resumed trial re-opens its run and can log a step
twice; the value logged last wins.
"""

from __future__ import annotations

import math
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench import results
from bench.errors import BenchError
from bench.tracking import reading

# Training-curve metrics, logged every `log.every` steps: every loss a method returns (named loss_*, an open set:
# loss_d, loss_g, loss_class, loss_info, loss_gp, loss_r1, ...) and the throughput. Every other metric is an
# evaluation metric.
CURVE_PREFIX = "loss_"
THROUGHPUT = "images_per_s"
# logged beside the losses: by augment: ada (bench/methods/ada.py), and by log.heldout_scores (bench/train.py)
DIAGNOSTICS = ("ada_p", "ada_rt", "d_real_train", "d_real_heldout")


def is_curve(name: str) -> bool:
    return name.startswith(CURVE_PREFIX) or name in (THROUGHPUT, *DIAGNOSTICS)


def loss_order(names) -> list[str]:
    """loss_d and loss_g first, the others by name."""
    names = {n for n in names if n.startswith(CURVE_PREFIX)}
    return [n for n in ("loss_d", "loss_g") if n in names] + sorted(names - {"loss_d", "loss_g"})
# Evaluation metrics in the order tables show them (bench/results.py); metrics not listed there follow, by name.
EVAL_METRICS = tuple(results.column_order())
# bench.* run tags -> column names.
IDENTITY_TAGS = {"bench.suite": "suite", "bench.label": "label", "bench.method": "method",
                 "bench.dataset": "dataset", "bench.seed": "seed", "bench.status": "status",
                 "bench.failure_reason": "failure_reason", "bench.failure_step": "failure_step",
                 "bench.study": "study", "bench.tune_trial": "tune_trial", "bench.trial_key": "trial_key"}
IDENTITY_COLUMNS = ("suite", "label", "method", "dataset", "seed", "status", "failure_reason", "failure_step",
                    "study", "tune_trial")


@dataclass
class Records:
    """What one suite's experiment holds: runs (one row each) and their metric histories (long form)."""

    suite: str
    runs: pd.DataFrame  # IDENTITY_COLUMNS, trial_key, run_name, run_id, protocol and param columns
    metrics: pd.DataFrame  # run_id, metric, step, value
    protocol_columns: list[str] = field(default_factory=list)  # eval.* tags
    param_columns: list[str] = field(default_factory=list)  # MLflow params not shadowed by a tag
    tracking_uri: str = ""


def default_store_exists(tracking_uri: str) -> bool:
    """False for a local sqlite URI whose file is missing (MLflow would silently create an empty store)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).is_file()
    return True


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    if not default_store_exists(tracking_uri):
        path = tracking_uri.removeprefix("sqlite:///")
        raise BenchError(f"no MLflow store at {path}; run `bench run suites/quickstart.yaml` first, or point "
                         f"--tracking-uri (env MLFLOW_TRACKING_URI) at the store that holds your runs")
    return MlflowClient(tracking_uri)


def list_suites(tracking_uri: str) -> list[str]:
    """Names of the experiments that hold at least one bench trial (a run tagged bench.suite), sorted."""
    with reading(tracking_uri):
        return _list_suites(tracking_uri)


def _list_suites(tracking_uri: str) -> list[str]:
    client = _client(tracking_uri)
    names = []
    for exp in _all_pages(client.search_experiments):
        runs = client.search_runs([exp.experiment_id], max_results=1,
                                  filter_string="tags.`bench.suite` != ''")
        if len(runs):
            names.append(exp.name)
    return sorted(names)


def load_records(tracking_uri: str, suite: str) -> Records:
    with reading(tracking_uri):
        return _load_records(tracking_uri, suite)


def _load_records(tracking_uri: str, suite: str) -> Records:
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(suite)
    if exp is None or exp.lifecycle_stage != "active":
        known = list_suites(tracking_uri)
        hint = f"suites there: {', '.join(known)}" if known else "it holds no suites yet"
        raise BenchError(f"--suite {suite}: no such suite in {tracking_uri} ({hint}); run `bench run "
                         f"suites/{suite}.yaml` first, or pass --tracking-uri")
    runs = [r for r in _all_pages(lambda **kw: client.search_runs([exp.experiment_id], **kw))
            if "bench.label" in r.data.tags or "bench.method" in r.data.tags]
    rows, histories = [], []
    protocol, params = set(), set()
    for run in runs:
        tags, run_params = run.data.tags, run.data.params
        row = {col: tags.get(tag) for tag, col in IDENTITY_TAGS.items()}
        row["label"] = row["label"] or row["method"]
        row["status"] = row["status"] or "unknown"
        row.update(run_id=run.info.run_id, run_name=run.info.run_name, config=tags.get("bench.config"),
                   task=tags.get("bench.task") or "generation")
        for key, value in tags.items():
            if key.startswith(("eval.", "fingerprint.")):
                row[key] = _parse(value)
                protocol.add(key)
        for key, value in run_params.items():
            if key not in row:
                row[key] = _parse(value)
                params.add(key)
        rows.append(row)
        for metric in sorted(run.data.metrics):
            history = client.get_metric_history(run.info.run_id, metric)
            histories.extend((run.info.run_id, metric, m.step, m.timestamp, i, m.value)
                             for i, m in enumerate(history))
    params -= protocol
    runs_df = pd.DataFrame(rows, columns=[*IDENTITY_COLUMNS, "trial_key", "run_name", "run_id", "config", "task",
                                          *sorted(protocol), *sorted(params)])
    for col in ("seed", "failure_step", "tune_trial"):
        runs_df[col] = pd.to_numeric(runs_df[col], errors="coerce").astype("Int64")
    runs_df = runs_df.sort_values(["dataset", "label", "seed", "study", "tune_trial", "run_name", "run_id"],
                                  na_position="last", kind="stable").reset_index(drop=True)
    metrics = pd.DataFrame(histories, columns=["run_id", "metric", "step", "timestamp", "order", "value"])
    # the last value logged for a (run, metric, step) wins: a resumed run may have logged the step before
    metrics = (metrics.sort_values(["run_id", "metric", "step", "timestamp", "order"], kind="stable")
               .drop_duplicates(["run_id", "metric", "step"], keep="last")
               .drop(columns=["timestamp", "order"]).reset_index(drop=True))
    return Records(suite, runs_df, metrics, sorted(protocol), sorted(params), tracking_uri)


def _all_pages(search):
    token = None
    while True:
        page = search(max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _parse(text: str | None):
    """MLflow stores params as text; give numbers back as numbers so tables sort and format them as such."""
    if text is None or text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    return text


def eval_metric_order(names) -> list[str]:
    names = {n for n in names if not is_curve(n)}
    return [m for m in EVAL_METRICS if m in names] + sorted(names - set(EVAL_METRICS))


def tidy_table(records: Records) -> pd.DataFrame:
    """One row per trial and evaluation step, every evaluation metric and every hyperparameter a column.

    A run that never reached an evaluation (failed early) keeps one row with an empty step, so it is counted.
    """
    runs = records.runs
    evals = records.metrics[~records.metrics["metric"].map(is_curve).astype(bool)]
    metric_columns = eval_metric_order(evals["metric"].unique())
    wide = _wide(evals, metric_columns)
    tidy = runs[["run_id"]].merge(wide, on="run_id", how="left")
    tidy["step"] = tidy["step"].astype("Int64")
    tidy = tidy.merge(runs, on="run_id", how="left")
    order = [*IDENTITY_COLUMNS, "step", *metric_columns, *records.protocol_columns, *records.param_columns,
             "trial_key", "run_name", "run_id"]
    tidy = tidy[order].sort_values(["dataset", "label", "seed", "study", "tune_trial", "run_name", "run_id",
                                    "step"], na_position="last", kind="stable")
    return tidy.reset_index(drop=True)


def _wide(long: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """(run_id, metric, step, value) rows -> one row per (run_id, step), one column per metric."""
    if long.empty:
        return pd.DataFrame(columns=["run_id", "step", *columns])
    wide = (long.set_index(["run_id", "step", "metric"])["value"].unstack("metric")
            .reindex(columns=columns).reset_index())
    wide.columns.name = None
    return wide


def curve_table(records: Records) -> pd.DataFrame:
    """Training curves: one row per trial and logging step, a column per loss name (loss_d, loss_g first) and
    images_per_s."""
    curves = records.metrics[records.metrics["metric"].map(is_curve).astype(bool)]
    present = set(curves["metric"].unique())
    columns = [*loss_order(present), THROUGHPUT, *(d for d in DIAGNOSTICS if d in present)]
    wide = _wide(curves, columns)
    ids = records.runs[["run_id", "label", "dataset", "seed", "study", "tune_trial", "status"]]
    out = ids.merge(wide, on="run_id", how="inner")
    out["step"] = out["step"].astype("Int64")
    out = out[["label", "dataset", "seed", "study", "tune_trial", "status", "step", *columns, "run_id"]]
    return out.sort_values(["dataset", "label", "seed", "study", "tune_trial", "run_id", "step"],
                           na_position="last", kind="stable").reset_index(drop=True)


@contextmanager
def _quiet_downloads():
    """MLflow draws a progress bar per artifact; one per sample grid is noise in `bench report`'s output."""
    import os

    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def fetch_artifact(tracking_uri: str, run_id: str, path: str, dst: Path) -> Path | None:
    """Copy one artifact of a run to `dst`; None when the run has no such artifact."""
    client = _client(tracking_uri)
    folder = path.rsplit("/", 1)[0] if "/" in path else None
    if path not in {f.path for f in client.list_artifacts(run_id, folder)}:
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_downloads():
        local = client.download_artifacts(run_id, path, dst_path=str(dst.parent / f".{run_id}"))
    shutil.move(local, dst)
    shutil.rmtree(dst.parent / f".{run_id}", ignore_errors=True)
    return dst


def is_translation(trials: pd.DataFrame) -> pd.Series:
    """Image-to-image trials, by the task their run recorded (tag bench.task; column `task` of Records.runs)."""
    return trials["task"].eq("translation")
