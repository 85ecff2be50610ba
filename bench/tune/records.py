"""A study's parent run in MLflow: one per study, holding its settings; every trial's run is nested under it."""

from __future__ import annotations

import json
from typing import Any

from bench.tracking import import_mlflow


def parent_run(uri: str | None, experiment: str, study: str, params: dict[str, Any]) -> str | None:
    """The id of the study's parent run, created by the first worker (the earliest one wins a race)."""
    if uri is None:
        return None
    import_mlflow()
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    existing = _parents(client, exp.experiment_id, study)
    if existing:
        return existing[0].info.run_id
    run = client.create_run(exp.experiment_id, run_name=f"study {study}",
                            tags={"bench.study_parent": study, "mlflow.note.content":
                                  f"Optuna study {study}: each child run is one trial (tag bench.tune_trial)."})
    client.log_batch(run.info.run_id, params=[Param(k, json.dumps(v) if isinstance(v, dict | list) else str(v))
                                              for k, v in sorted(params.items())])
    first = _parents(client, exp.experiment_id, study)[0]
    if first.info.run_id != run.info.run_id:  # another worker made one a moment earlier: use that one
        client.delete_run(run.info.run_id)
    return first.info.run_id


def _parents(client, experiment_id: str, study: str):
    return client.search_runs([experiment_id], filter_string=f"tags.`bench.study_parent` = '{study}'",
                              order_by=["attributes.start_time ASC", "attributes.run_id ASC"])


def close_parent(uri: str | None, run_id: str | None, summary: dict[str, float]) -> None:
    if uri is None or run_id is None:
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in summary.items()])
    client.set_terminated(run_id, "FINISHED")
