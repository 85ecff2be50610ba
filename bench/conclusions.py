"""`bench reproduce REPORT --seeds`: where the bits cannot be the same (a GPU, another torch build, an unknown CPU),
re-train every seed of the report's cells to the end and say whether its conclusions hold here:

- each cell's mean (fid_final, and kid_final / intra_fid_final where the report has them) lies inside the interval
  the report recorded for it;
- each dataset's best row (lowest mean FID) is the same;
- every significance call of the report (each row against the best, Holm-corrected) is the same.

The statistics are the report's own (bench/report/tables.py) on the values trained here. Image-to-image trials are
not part of these tables and are not re-trained. Nothing is written into the store or a runs folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.methods import get_method
from bench.progress import Console
from bench.report import tables
from bench.reproduce import from_report, read_table, retrain, verdict
from bench.results import FID, summary_name, tabled
from bench.suite import select
from bench.train import TrialDiverged

# the report's tables of final values with an interval (bench/results.py), and the one of the best row and the tests
METRICS = tuple(summary_name(m.final[0]) for m in tabled())
HEADLINE = summary_name(FID.final[0])


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / "tables" / f"{name}.csv"
    return read_table(path) if path.is_file() else None


def _shown(value: float) -> str:
    return "missing" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _calls(significance: pd.DataFrame | None) -> dict[tuple[str, str, str], bool]:
    """(dataset, row, reference) -> significant, for every pair the report tested."""
    if significance is None or significance.empty:
        return {}
    return {(str(r["dataset"]), str(r["row"]), str(r["reference"])): str(r["significant"]) == "True"
            for _, r in significance.iterrows()}


def _best(summary: pd.DataFrame) -> dict[str, str]:
    return {str(k): str(v) for k, v in tables.reference_rows(summary).items()} if len(summary) else {}


def check_seeds(target: str, only: list[str], device: str | None, data_root: Path | None, say=print) -> int:
    """Re-train the report's seeded trials and check its conclusions; 0 when they all hold, else 1."""
    folder = Path(target)
    if not folder.is_dir():
        raise BenchError(f"{target}: --seeds re-trains the cells of a report; give a report folder "
                         "(reports/quickstart)")
    recorded = {m: _read(folder, m) for m in METRICS}
    if recorded[HEADLINE] is None:
        raise BenchError(f"{folder}: no tables/{HEADLINE}.csv (not a report folder, or one without FID); run "
                         "`bench report` with csv in --format")
    records = from_report(folder)  # refuses a folder without trials.csv and curves.csv, or without configs
    trials_csv = read_table(folder / "tables" / "trials.csv", dtype={"trial_key": str})
    study = trials_csv[trials_csv["study"].isna() & (trials_csv["outcome"] == "finished")]
    rows = dict(zip(study["trial_key"], study["row"], strict=True))
    records = [r for r in records if r.trial.key in rows and get_method(r.trial.method).task != "translation"]
    if only:
        chosen = {t.key for t in select([r.trial for r in records], only)}
        records = [r for r in records if r.trial.key in chosen]
    if not records:
        raise BenchError(f"{target}: no finished seeded trial of the report's FID tables matches "
                         f"{' '.join(only) or 'anything'}")
    cells = sorted({(rows[r.trial.key], r.trial.dataset.label) for r in records})
    say(f"bench reproduce {target} --seeds: re-training {len(records)} trials of {len(cells)} cells to the end")

    console, found, identical = Console(), [], 0
    for i, record in enumerate(records, 1):
        t = record.trial
        entry = {"row": rows[t.key], "label": t.label, "dataset": t.dataset.label, "seed": t.seed,
                 "study": math.nan, "outcome": "finished"}
        try:
            losses, metrics, used = retrain(record, None, device, data_root, console, position=f"[{i}/{len(records)}] ")
        except TrialDiverged as diverged:
            say(f"{t.key} {t.label} {t.dataset.label} seed={t.seed}: FAILED here ({diverged}); it leaves its cell")
            found.append({**entry, "outcome": "failed"})
            continue
        same, line = verdict(record, losses, metrics, used, 0.0)
        identical += same
        shown = ", ".join(f"{m} {_shown(metrics[m])}" for m in METRICS if m in (metrics or {}))
        say(f"{line}" if same else f"{line}; {shown}")
        found.append({**entry, **{m: (metrics or {}).get(m, math.nan) for m in METRICS}})
    here = pd.DataFrame(found)
    for m in METRICS:
        if m not in here:
            here[m] = math.nan

    problems = []
    for metric in METRICS:
        table = recorded[metric]
        if table is None:
            continue
        summary = tables.cell_summaries(here, metric)
        for _, cell in summary.iterrows():
            key = (cell["row"], cell["dataset"])
            mine = table[(table["row"] == key[0]) & (table["dataset"] == key[1])]
            if mine.empty or int(mine["n"].iloc[0]) == 0:
                continue
            low, high, mean = (float(mine[c].iloc[0]) for c in ("ci_low", "ci_high", "mean"))
            name = f"{key[0]} {key[1]} {metric}"
            if cell["n"] == 0:
                problems.append(f"{name}: no value here")
                say(f"cell {name}: no value here ({_shown(mean)} recorded)")
                continue
            if math.isnan(low):  # one seed: no interval; the value itself is the record
                low = high = mean
            inside = low <= cell["mean"] <= high
            say(f"cell {name}: mean {_shown(cell['mean'])} here (n={cell['n']}), "
                f"{'inside' if inside else 'OUTSIDE'} the recorded [{_shown(low)}, {_shown(high)}] "
                f"(mean {_shown(mean)} recorded)")
            if not inside:
                problems.append(f"{name} mean outside its interval")

    final = recorded[HEADLINE]
    summary = tables.cell_summaries(here, HEADLINE)
    test = tables.suite_test(trials_csv) if "report.test" in trials_csv else "mannwhitney"
    for dataset in sorted({d for _, d in cells}):
        retrained = sum(r.trial.dataset.label == dataset for r in records)
        finished = int((study["dataset"] == dataset).sum())
        if retrained != finished:
            say(f"best on {dataset}: not checked ({retrained} of its {finished} finished trials re-trained; the "
                "best row and the tests compare every seed of every row)")
            continue
        was = _best(final[final["dataset"] == dataset]).get(dataset)
        now = _best(summary[summary["dataset"] == dataset]).get(dataset)
        if was == now:
            say(f"best on {dataset}: {now}, as recorded")
        else:
            problems.append(f"best on {dataset} is {now}, {was} recorded")
            say(f"best on {dataset}: {now} here, {was} recorded")
        significance = tables.significance_table(here[here["dataset"] == dataset],
                                                 summary[summary["dataset"] == dataset], HEADLINE, test)
        before = {k: v for k, v in _calls(_read(folder, "significance")).items() if k[0] == dataset}
        after = _calls(significance)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if not changed:
            significant = int(np.sum(list(after.values())))
            say(f"significance on {dataset}: the same {len(after)} calls ({significant} significant, {test}, "
                "Holm-corrected p < 0.05)")
        for _, row, reference in changed:
            def call(value: bool | None) -> str:
                return "not tested" if value is None else "significant" if value else "not significant"
            problems.append(f"{row} vs {reference} on {dataset}: {call(after.get((dataset, row, reference)))} here")
            say(f"significance on {dataset}: {row} vs {reference} {call(after.get((dataset, row, reference)))} "
                f"here, {call(before.get((dataset, row, reference)))} recorded")

    bits = f"{identical} of {len(records)} trials bit-identical"
    if problems:
        say(f"the report's conclusions do NOT hold here ({bits}): {'; '.join(problems)}")
        return 1
    say(f"the report's conclusions hold here ({bits})")
    return 0
