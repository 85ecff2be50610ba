"""`bench reproduce`: re-train recorded trials from their recorded configuration alone and compare every logged loss
and, at the end, the metrics with the record; say `identical` or the first step where they part, and which part of
the numerics fingerprint (bench/numerics.py) differs between the record and this machine.

A record is a trial of the MLflow store (its key or a unique prefix, or its run id) or a row of a committed report
folder (tables/trials.csv holds each trial's config and fingerprint, tables/curves.csv its logged losses to 10
significant digits, which is then the precision compared). Nothing is written into the store or a runs folder: the
trial trains in a temporary folder, without records.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from pydantic import ValidationError

from bench import devices, numerics
from bench.batches import DataCache
from bench.errors import BenchError
from bench.evaluation import make_evaluator
from bench.methods import get_method
from bench.progress import Console, StepProgress
from bench.results import summaries, tabled
from bench.runs import RunOptions
from bench.suite import Trial, select
from bench.tracking import DEFAULT_TRACKING_URI, import_mlflow, reading
from bench.train import Trainer

CSV_DIGITS = "%.10g"  # the report's CSV precision (bench/report/render.py)
# FID and KID come from Inception run with this machine's kernels (numerics.feature_kernels): equal to the bit on
# the machine that recorded them, within this relative tolerance elsewhere (features agree to ~1e-5)
METRIC_TOLERANCE = 1e-4
# the summaries a re-training is compared on: those of the report's tables of final values (and best FID)
COMPARED = tuple(n for m in tabled() for n in m.summaries if not n.endswith("_best_step"))
IGNORED = ("images_per_s",)  # logged beside the losses, but a measurement of time, not a number of the trial


@dataclass
class Record:
    trial: Trial
    losses: dict[int, dict[str, float]]  # step -> loss name -> value, as logged
    metrics: dict[str, float]  # fid_final, kid_final, ... as recorded at the end
    fingerprint: dict[str, str]
    device: str  # where it was trained
    exact: bool  # values as computed (MLflow), or rounded to CSV_DIGITS (a report's CSV)
    source: str = ""
    notes: list[str] = field(default_factory=list)


def _same(a: float, b: float, exact: bool, tolerance: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if tolerance > 0:
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    return a == b if exact else (CSV_DIGITS % a) == (CSV_DIGITS % b)


def _shown(value: float) -> str:
    return f"{value:.10g}"


# records --------------------------------------------------------------------------------------------------------

def read_table(path: Path, **kwargs) -> pd.DataFrame:
    """A report's CSV table, or one line naming the file and what is wrong with it (cut short, not CSV)."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchError(f"{path}: not a readable report table ({reason}); regenerate the report with `bench "
                         "report`, or restore the file from version control") from None


def _needs(table: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BenchError(f"{path}: no column {', '.join(missing)}; regenerate the report with `bench report`")


def from_report(folder: Path) -> list[Record]:
    trials_csv, curves_csv = folder / "tables" / "trials.csv", folder / "tables" / "curves.csv"
    if not trials_csv.is_file() or not curves_csv.is_file():
        raise BenchError(f"{folder}: not a report folder (it has no tables/trials.csv and tables/curves.csv); give "
                         "a report folder, a trial key or an MLflow run id")
    header = read_table(trials_csv, nrows=0).columns
    # fingerprints as written ("FALSE" stays "FALSE", "2" stays "2"), not as pandas would guess their types
    trials = read_table(trials_csv, dtype={c: str for c in header if c.startswith("fingerprint.") or c == "trial_key"},
                        keep_default_na=True)
    if "config" not in trials.columns:
        raise BenchError(f"{trials_csv}: written by an older bench, without each trial's config; regenerate the "
                         "report (`bench report`) or give the trial key with --tracking-uri")
    _needs(trials, trials_csv, ("run_id",))
    curves = read_table(curves_csv)
    _needs(curves, curves_csv, ("run_id", "step"))
    records = []
    for index, row in trials.iterrows():
        if not isinstance(row["config"], str):
            continue  # a trial recorded before configs were (none in a report bench writes now)
        trial = _trial(row["config"], f"{trials_csv}, row {int(index) + 1} (run {row['run_id']})")
        part = curves[curves["run_id"] == row["run_id"]]
        names = [c for c in part.columns if c.startswith("loss_")]
        try:
            losses = {int(r["step"]): {n: float(r[n]) for n in names if not pd.isna(r[n])} for _, r in part.iterrows()}
            metrics = {n: float(row[n]) for n in COMPARED if n in row and not pd.isna(row[n])}
        except (TypeError, ValueError) as err:
            raise BenchError(f"{curves_csv} or {trials_csv}: trial {row['run_id']} holds a value that is not a "
                             f"number ({err}); regenerate the report with `bench report`") from None
        fingerprint = {c.removeprefix("fingerprint."): str(row[c]) for c in trials.columns
                       if c.startswith("fingerprint.") and not pd.isna(row[c])}
        device = str(row["device"]) if "device" in row and not pd.isna(row["device"]) else "cpu"
        records.append(Record(trial, losses, metrics, fingerprint, device, exact=False, source=str(folder)))
    return records


def _trial(config: str, where: str) -> Trial:
    """The trial a row's `config` JSON describes, or one line naming the file and the row."""
    try:
        return Trial.model_validate(json.loads(config))
    except json.JSONDecodeError as err:
        raise BenchError(f"{where}: its config is not valid JSON ({err.msg} at character {err.pos}); "
                         "regenerate the report with `bench report`") from None
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        raise BenchError(f"{where}: its config is not a trial bench can train ({field}: {first['msg']}); "
                         "regenerate the report with `bench report`") from None


def from_store(target: str, tracking_uri: str | None) -> list[Record]:
    uri = tracking_uri or DEFAULT_TRACKING_URI
    import_mlflow()
    from mlflow.tracking import MlflowClient  # MLflow loads with a store to read

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = []
    if len(target) == 32 and all(c in "0123456789abcdef" for c in target):
        try:
            runs = [client.get_run(target)]
        except Exception:  # noqa: BLE001 - not a run id after all: try it as a key prefix
            runs = []
    if not runs and experiments:
        runs = client.search_runs(experiments, filter_string=f"tags.`bench.trial_key` LIKE '{target}%'")
    if not runs:
        raise BenchError(f"{target}: no trial of the store {uri} has this key (or prefix) or run id; give "
                         "--tracking-uri, or a report folder")
    keys = {r.data.tags.get("bench.trial_key") for r in runs}
    if len(keys) > 1:
        raise BenchError(f"{target}: the prefix matches {len(keys)} trials ({', '.join(sorted(keys)[:4])}...); "
                         "give more of the key")
    records = []
    for run in runs:
        tags = run.data.tags
        if "bench.config" not in tags:
            raise BenchError(f"run {run.info.run_id}: recorded by an older bench, without its config; nothing to "
                             "re-train it from")
        trial = Trial.model_validate(json.loads(tags["bench.config"]))
        losses: dict[int, dict[str, float]] = {}
        for name in run.data.metrics:
            if name.startswith("loss_"):
                for m in client.get_metric_history(run.info.run_id, name):
                    losses.setdefault(int(m.step), {})[name] = float(m.value)
        metrics = {n: float(v) for n, v in run.data.metrics.items() if n in COMPARED}
        fingerprint = {k.removeprefix("fingerprint."): v for k, v in tags.items() if k.startswith("fingerprint.")}
        device = run.data.params.get("device", "cpu")
        records.append(Record(trial, dict(sorted(losses.items())), metrics, fingerprint, device, exact=True,
                              source=uri))
    return records


# re-training ----------------------------------------------------------------------------------------------------

class _Losses:
    def __init__(self):
        self.logged: dict[int, dict[str, float]] = {}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.setdefault(step, {}).update({k: v for k, v in metrics.items() if k.startswith("loss_")})

    def log_png(self, image, artifact_path: str) -> None:
        pass


def retrain(record: Record, steps: int | None, device_name: str | None, data_root: Path | None,
            console: Console, position: str = "") -> tuple[dict[int, dict[str, float]], dict[str, float] | None,
                                                             torch.device]:
    """(losses as logged, summary metrics when trained to the end (else None), device) of the record's trial."""
    trial = record.trial
    device = devices.resolve(device_name or ("cuda" if record.device.startswith("cuda") else "cpu"))
    data = DataCache(data_root)
    held_out = data.get(trial, trial.eval.reference_split) if get_method(trial.method).task == "translation" \
        else None
    losses = _Losses()
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        options = RunOptions(runs_root=Path(tmp), data_root=data_root, tracking_uri=None)
        evaluate = make_evaluator(trial, None, device, options, held_out=held_out) if trial.eval.metrics else None
        trainer = Trainer(trial, data.get(trial), device, Path(tmp) / trial.key, tracker=losses, evaluate=evaluate,
                          grid_data=held_out)
        end = trainer.total if steps is None else min(steps, trainer.total)
        bar = StepProgress(console, f"{position}{trial.key} {trial.label} s{trial.seed}", end)
        result = trainer.run(stop_after=end, progress=lambda step, total, means, rate: bar.update(step))
        console.done()
    finished = result.steps == trainer.total
    return losses.logged, summaries(result.evaluations) if finished else None, device


def compare(record: Record, here: dict[int, dict[str, float]], metrics: dict[str, float] | None,
            tolerance: float) -> str | None:
    """None when identical (losses within `tolerance`, metrics within it or METRIC_TOLERANCE), else where they
    part."""
    trained = max(here, default=0)
    for step in sorted(s for s in record.losses if s <= trained):
        for name, value in sorted(record.losses[step].items()):
            got = here.get(step, {}).get(name)
            if got is None:
                return f"differs at step {step}: {name} {_shown(value)} recorded, not logged here"
            if not _same(value, got, record.exact, tolerance):
                return f"differs from step {step}: {name} {_shown(value)} recorded, {_shown(got)} here"
    for name, value in sorted((metrics or {}).items()):
        if name in record.metrics and not _same(record.metrics[name], value, record.exact,
                                                max(tolerance, METRIC_TOLERANCE)):
            return f"differs at the end: {name} {_shown(record.metrics[name])} recorded, {_shown(value)} here"
    return None


def _metrics_checked(record: Record, metrics: dict[str, float]) -> str:
    shared = [n for n in metrics if n in record.metrics]
    if not shared:
        return ""
    if all(_same(record.metrics[n], metrics[n], record.exact, 0) for n in shared):
        return ", final metrics identical"
    return f", final metrics within {METRIC_TOLERANCE:g} (Inception runs this machine's kernels)"


def reproduce(target: str, only: list[str], steps: int | None, tolerance: float, tracking_uri: str | None,
              device: str | None, data_root: Path | None, say=print) -> int:
    """One line per trial; 0 when every one is identical (or within `tolerance`), else 1."""
    if steps is not None and steps < 1:
        raise BenchError(f"--steps {steps}: re-train at least 1 step")
    if not math.isfinite(tolerance) or tolerance < 0:  # NaN compares false to everything: it would pass as 0
        raise BenchError(f"--tolerance {tolerance}: a relative tolerance is a finite number, 0 (bit-identical) or more")
    path = Path(target)
    if path.is_dir():
        records = from_report(path)
    else:
        with reading(tracking_uri or DEFAULT_TRACKING_URI):
            records = from_store(target, tracking_uri)
    chosen = {t.key for t in select([r.trial for r in records], only)} if only else {r.trial.key for r in records}
    records = [r for r in records if r.trial.key in chosen]
    if not records:
        raise BenchError(f"{target}: no recorded trial matches {' '.join(only) or 'anything'}")
    console = Console()
    differing = 0
    for record in records:
        here_losses, here_metrics, used = retrain(record, steps, device, data_root, console)
        same, line = verdict(record, here_losses, here_metrics, used, tolerance)
        differing += not same
        say(line)
    return 1 if differing else 0


def verdict(record: Record, here_losses: dict[int, dict[str, float]], here_metrics: dict[str, float] | None,
            used: torch.device, tolerance: float) -> tuple[bool, str]:
    """(identical?, the trial's one line): `identical (N steps, ...)`, or where it parts and which numerics differ."""
    t = record.trial
    name = f"{t.key} {t.label} {t.dataset.label} seed={t.seed}"
    trained = max(here_losses, default=0)
    parted = compare(record, here_losses, here_metrics, tolerance)
    if parted is None:
        checked = f"{trained} steps" + (_metrics_checked(record, here_metrics) if here_metrics else "")
        return True, f"{name}: identical ({checked})" + (f" within {tolerance:g}" if tolerance else "")
    with numerics.trial_numerics(t.numerics, used):
        changed = numerics.differences(record.fingerprint, numerics.fingerprint(used))
    if not record.fingerprint:
        why = "; the record has no fingerprint"
    elif not changed:
        why = "; the numerics fingerprints agree, CPU included"
    elif numerics.machine_only(changed, record.fingerprint):
        why = (f"; only the CPU differs ({', '.join(changed)}): the portable numerics promise the same bits on both, "
               "so this breaks that promise; run `bench check --numerics` here and report what it names")
    else:
        why = (f"; numerics differ in: {', '.join(changed)}; bits are promised only where these agree "
               "(`bench reproduce REPORT --seeds` says whether the conclusions hold)")
    return False, f"{name}: {parted}{why}"
