"""Numbers -> formatted tables for people: fixed decimals, "—" for a missing value, the best per column bold.

A Display is format-neutral (cells are lists of text lines); render.py writes it as HTML, Markdown or LaTeX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench.results import HEADLINE

BEST_HEADLINE = f"best_{HEADLINE}"  # the tuning table's column (tables.py)

MISSING = "—"
DAGGER = "†"


@dataclass(frozen=True)
class Cell:
    lines: tuple[str, ...]
    bold: bool = False

    @classmethod
    def of(cls, *lines: str, bold: bool = False) -> Cell:
        return cls(tuple(lines), bold)


@dataclass
class Display:
    name: str  # file stem: tables/<name>.csv / .tex
    title: str
    header: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


def number(value, decimals: int = 2) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.{decimals}f}"


def p_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def integer(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{int(value)}"


def text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value == "":
        return MISSING
    return str(value)


def metric_grid(summary: pd.DataFrame, name: str, title: str, notes: list[str], decimals: int = 2,
                significance: pd.DataFrame | None = None, step: bool = False) -> Display:
    """The study's layout: rows (methods) x datasets, each cell mean ± std over seeds, CI and n beneath."""
    datasets = sorted(summary["dataset"].unique())
    markers = {}
    if significance is not None:
        markers = {(r.dataset, r.row): r.marker for r in significance.itertuples()}
    rows = []
    for row in sorted(summary["row"].unique()):
        cells = [Cell.of(row)]
        for dataset in datasets:
            match = summary[(summary["row"] == row) & (summary["dataset"] == dataset)]
            if match.empty:
                cells.append(Cell.of(MISSING))
                continue
            cells.append(_cell(match.iloc[0], decimals, markers.get((dataset, row), ""), step))
        rows.append(cells)
    return Display(name, title, ["method", *datasets], rows, notes)


def _cell(s: pd.Series, decimals: int, marker: str, step: bool) -> Cell:
    lines = []
    if s["n"] == 0:
        lines.append(MISSING)
    elif s["n"] == 1:
        lines += [f"{number(s['mean'], decimals)}{marker}", f"n=1{DAGGER}"]
    else:
        lines += [f"{number(s['mean'], decimals)} ± {number(s['std'], decimals)}{marker}",
                  f"[{number(s['ci_low'], decimals)}, {number(s['ci_high'], decimals)}] n={s['n']}"]
    if step and s["n"] > 0:
        lines.append(f"at step {integer(s['step_median'])}")
    left_out = [f"{s[k]} {word}" for k, word in (("n_failed", "failed"), ("n_incomplete", "incomplete"),
                                                 ("n_missing", "missing")) if s[k]]
    if left_out:
        lines.append(", ".join(left_out))
    return Cell(tuple(lines), bold=bool(s["best"]))


def significance_display(table: pd.DataFrame, notes: list[str]) -> Display:
    header = ["dataset", "method", "vs best", "n", "n best", "statistic", "p", "p (Holm)", "Holm order",
              "effect size", "significant"]
    rows = []
    for r in table.itertuples():
        effect = MISSING if math.isnan(r.effect) else f"{r.effect_name} {r.effect:+.3f}"
        verdict = r.note or ("yes " + r.marker if r.significant else "no")
        rows.append([Cell.of(r.dataset), Cell.of(r.row), Cell.of(r.reference), Cell.of(str(r.n)),
                     Cell.of(str(r.n_reference)), Cell.of(number(r.statistic, 3)), Cell.of(p_value(r.p)),
                     Cell.of(p_value(r.p_holm)), Cell.of(integer(r.holm_rank)), Cell.of(effect),
                     Cell.of(verdict, bold=bool(r.significant))])
    return Display("significance", "Significance: each method against the best of its dataset", header, rows,
                   notes)


def failures_display(table: pd.DataFrame) -> Display:
    header = ["method", "dataset", "seed", "trial", "problem", "at step", "reason", "run"]
    rows = []
    for r in table.itertuples():
        trial = MISSING if r.study is None or r.study != r.study else f"{r.study} #{integer(r.tune_trial)}"
        rows.append([Cell.of(r.row), Cell.of(r.dataset), Cell.of(integer(r.seed)), Cell.of(trial),
                     Cell.of(r.problem), Cell.of(integer(r.failure_step)), Cell.of(text(r.failure_reason)),
                     Cell.of(text(r.run_name))])
    notes = ["Every trial without a final FID is listed here and counted in its cell of the tables above; "
             "none is dropped silently. Failed trials are not in the means: a method that often diverges "
             "looks better than it is if you ignore the count."]
    return Display("failures", "Failed, incomplete and metric-less trials", header, rows, notes)


def protocol_display(table: pd.DataFrame, warnings: list[str]) -> Display:
    datasets = sorted(table["dataset"].unique())
    rows = []
    for key in sorted(table["key"].unique()):
        cells = [Cell.of(key)]
        for dataset in datasets:
            match = table[(table["dataset"] == dataset) & (table["key"] == key)]
            if match.empty or not match.iloc[0]["values"]:
                cells.append(Cell.of(MISSING))
            else:
                mixed = match.iloc[0]["n_distinct"] > 1
                cells.append(Cell.of(match.iloc[0]["values"] + (" (MIXED)" if mixed else ""), bold=mixed))
        rows.append(cells)
    notes = ["The protocol is half the number: FIDs are comparable only within one column, and only with a "
             "paper that used the same protocol. A value marked MIXED means runs in that column were "
             "evaluated differently.",
             "fingerprint.* is what decided the bits (bench/numerics.py): mode portable is the same on any x86-64 "
             "machine with AVX2 for the torch build and glibc shown; MIXED there means runs of a column were "
             "computed with different kernels (`bench reproduce` says where two numbers part)."]
    notes += [f"Warning recorded with the evaluations: {w}" for w in warnings]
    return Display("protocol", "Evaluation protocol and numerics", ["", *datasets], rows, notes)


def tuning_display(table: pd.DataFrame) -> Display:
    header = ["study", "method", "dataset", "trials", "failed", "pruned", "incomplete", "best final FID",
              "best trial", "its hyperparameters"]
    rows = [[Cell.of(r.study), Cell.of(r.label), Cell.of(r.dataset), Cell.of(str(r.n_trials)),
             Cell.of(str(r.n_failed)), Cell.of(str(r.n_pruned)), Cell.of(str(r.n_incomplete)),
             Cell.of(number(getattr(r, BEST_HEADLINE))), Cell.of(integer(r.best_trial)), Cell.of(text(r.best_params))]
            for r in table.itertuples()]
    notes = ["The best of many hyperparameter trials is optimistic in the same way best-over-training is: "
             "re-run the chosen configuration with several seeds before comparing it (`bench tune ... --export "
             "SUITE.yaml` writes it as a suite). Pruned: trials the pruner stopped on their intermediate FID; "
             "like failed ones they count as spent budget with no result in the budget plot."]
    return Display("tuning", "Tuning studies", header, rows, notes)
