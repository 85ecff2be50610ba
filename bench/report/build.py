"""One suite's records -> reports/<suite>/: index.html, README.md, tables/*.csv and *.tex, figures/*.png.

The order is fixed: records -> tidy table -> trials -> summaries and tests -> displays and figures -> files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from bench import results
from bench.errors import BenchError
from bench.report import display as D
from bench.report import plots, render, tables
from bench.report import translation as T
from bench.report.canvas import Figure
from bench.report.records import curve_table, fetch_artifact, is_translation, load_records, tidy_table
from bench.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from bench.results import BEST, BEST_STEP, HEADLINE

FORMATS = ("html", "md", "tex", "csv")
TEST_NAMES = {"mannwhitney": "Mann-Whitney U", "welch": "Welch's t test"}
EFFECT_NOTES = {
    "mannwhitney": "Effect size: Cliff's delta = P(method > best) - P(method < best) over all pairs of seeds "
                   "(the rank-biserial correlation), from -1 to 1; positive = higher FID than the best.",
    "welch": "Effect size: Hedges' g = difference of means over the pooled standard deviation, with the "
             "small-sample correction; positive = higher FID than the best.",
}


def parse_formats(text: str) -> list[str]:
    asked = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in asked if f not in FORMATS]
    if unknown or not asked:
        raise BenchError(f"--format {text}: unknown format {unknown[0] if unknown else '(none)'}; use a "
                         f"comma-separated subset of {','.join(FORMATS)}, e.g. --format html,csv")
    return [f for f in FORMATS if f in asked]


def write_report(tracking_uri: str, suite: str, out: Path, formats: list[str]) -> list[Path]:
    """Write one suite's report into `out`; returns the files written."""
    records = load_records(tracking_uri, suite)
    if records.runs.empty:
        raise BenchError(f"suite {suite}: its experiment holds no bench trials yet; run `bench run "
                         f"suites/{suite}.yaml` first")
    tidy = tidy_table(records)
    curves = curve_table(records)
    everything = tables.trials_table(tidy, records.param_columns)
    # each trial's whole config (tag bench.config), last: what `bench reproduce REPORT` re-trains it from
    everything = everything.merge(records.runs[["run_id", "config", "task"]], on="run_id", how="left")
    translating = is_translation(everything)
    trials, translation = everything[~translating], everything[translating]  # noise-to-image, image-to-image
    test = tables.suite_test(everything)
    final = tables.cell_summaries(trials, HEADLINE)
    best = tables.cell_summaries(trials, BEST, step_metric=BEST_STEP)
    others = {m.name: (m, _optional(trials, m)) for m in results.tabled() if m is not results.FID}
    others = {name: (m, table) for name, (m, table) in others.items() if table is not None}
    significance = tables.significance_table(trials, final, HEADLINE, test)
    failures = tables.failures_table(trials, translation)
    protocol = tables.protocol_table(everything)
    tuning = tables.tuning_table(trials, records.param_columns)
    budget = tables.budget_table(trials)

    csv = {"tidy": tidy, "curves": curves, "trials": everything.drop(columns="task"), HEADLINE: final,
           BEST: best, "significance": significance, "failures": failures, "protocol": protocol}
    csv.update({results.summary_name(m.final[0]): table for m, table in others.values()})
    if len(tuning):
        csv.update(tuning=tuning, budget=budget)

    warnings = tables.evaluation_warnings(everything)
    displays = _displays(final, best, others, significance, failures, protocol, warnings, tuning, test,
                         _selections(trials))
    _claim(out, formats)  # only now: a suite that cannot be reported leaves the folder as it was
    pictures = bool({"html", "md"} & set(formats))
    grids = ["headline", "best", *others, "translation"]  # the displays also written as formatted CSV
    figures = []
    if len(translation):
        shown, translation_figures, translation_csv = T.section(translation, out, pictures)
        displays.update(shown)
        csv.update(translation_csv)
        figures += translation_figures
    if pictures:
        figures += _figures(records, tidy, curves, trials, everything, final, budget, out)

    written = [out / f.file for f in figures]
    if "csv" in formats:
        for name, table in csv.items():
            render.write_csv(table, out / "tables" / f"{name}.csv")
            written.append(out / "tables" / f"{name}.csv")
        for key in grids:  # the study's layout, as formatted text
            if key in displays:
                path = out / "tables" / f"{displays[key].name}.csv"
                render.write_csv(render.display_frame(displays[key]), path)
                written.append(path)
    if "tex" in formats:
        for shown in displays.values():
            path = out / "tables" / f"{shown.name}.tex"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render.to_tex(shown), encoding="utf-8")
            written.append(path)
    title = f"bench report: {suite}"
    csv_names = [*csv, *(displays[k].name for k in grids if k in displays)]
    blocks = _page(suite, everything, displays, figures, csv_names if "csv" in formats else [])
    if "html" in formats:
        (out / "index.html").write_text(render.to_html(title, blocks), encoding="utf-8")
        written.append(out / "index.html")
    if "md" in formats:
        (out / "README.md").write_text(render.to_markdown(title, blocks), encoding="utf-8")
        written.append(out / "README.md")
    return written


def _claim(out: Path, formats: list[str]) -> None:
    """Refuse to overwrite pages bench did not write; remove the generated files this run regenerates, so no
    stale table or figure of a previous report survives."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file, not a folder; choose a folder (default reports/<suite>/)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"--out {out}: cannot create the folder ({err.strerror}); choose another --out") from None
    if not os.access(out, os.W_OK):
        raise BenchError(f"--out {out}: the folder is not writable; choose another --out")
    for name, fmt in (("index.html", "html"), ("README.md", "md")):
        page = out / name
        ours = not page.is_file() or render.MARKER in page.read_text(encoding="utf-8", errors="replace")[:400]
        if fmt in formats and not ours:
            raise BenchError(f"{page} exists and was not written by bench report; choose another --out "
                             f"(default reports/<suite>/)")
    stale = [("tables", ".csv", "csv" in formats), ("tables", ".tex", "tex" in formats),
             ("figures", ".png", bool({"html", "md"} & set(formats)))]
    for folder, suffix, regenerated in stale:
        if regenerated and (out / folder).is_dir():
            for path in sorted((out / folder).glob(f"*{suffix}")):
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _optional(trials: pd.DataFrame, metric: results.Metric) -> pd.DataFrame | None:
    """Per-cell summaries of a metric only some suites log (KID, AuthPct, intra-FID); None when no trial logged
    it."""
    column = results.summary_name(metric.final[0])
    if column not in trials or not tables.seeded(trials)[column].notna().any():
        return None
    table = tables.cell_summaries(trials, column, lower_is_better=metric.lower_is_better)
    if not metric.rows_without_values:  # e.g. methods without labels have no intra-FID: their rows say nothing
        table = table[table["n"] > 0].reset_index(drop=True)
    return table


def _selections(trials: pd.DataFrame) -> list[tuple[str, str]]:
    """(selection reference, scored reference) pairs the trials recorded (eval.select_split), sorted."""
    if "eval.select_reference" not in trials:
        return []
    chosen = trials[trials["eval.select_reference"].notna()]
    return sorted({(str(r["eval.select_reference"]), str(r.get("eval.reference"))) for _, r in chosen.iterrows()})


def _displays(final, best, others, significance, failures, protocol, warnings, tuning,
              test, selections=()) -> dict[str, D.Display]:
    out = {}
    if len(final):
        out["headline"] = D.metric_grid(final, f"{HEADLINE}_table", "Final FID (lower is better)",
                                        _headline_notes(test), significance=significance)
        out["significance"] = D.significance_display(significance, _significance_notes(significance, test))
        out["best"] = D.metric_grid(best, f"{BEST}_table", "Best FID over training, and when it was reached",
                                    _best_notes(selections), step=True)
    for name, (metric, table) in others.items():  # bench/results.py: each metric with a table, in its order
        out[name] = D.metric_grid(table, f"{results.summary_name(metric.final[0])}_table",
                                  f"Final {metric.title} ({metric.better})", [metric.table],
                                  decimals=metric.decimals)
    out["failures"] = D.failures_display(failures)
    out["protocol"] = D.protocol_display(protocol, warnings)
    if len(tuning):
        out["tuning"] = D.tuning_display(tuning)
    return out


def _headline_notes(test: str) -> list[str]:
    return [
        "Cell: final FID (the evaluation at each trial's last step), mean ± standard deviation over "
        "training seeds (sample std, ddof=1: the spread between independently trained models, each "
        "evaluated once, not the noise of repeated evaluations of one model); beneath: the 95% bootstrap "
        f"confidence interval of the mean (percentile method, {BOOTSTRAP_RESAMPLES:,} resamples, seed "
        f"{BOOTSTRAP_SEED}) and n, the finished seeds with a value. With 3 seeds the 95% interval is the "
        "range of the data.",
        "Bold: the lowest mean of its dataset. * / ** / ***: Holm-adjusted p < 0.05 / 0.01 / 0.001 against "
        f"the bold method of the column ({TEST_NAMES[test]}, two-sided); no marker: not distinguishable from "
        "the best at 0.05.",
        "† n=1: one seed, so no spread, no interval and no test. —: no value (not run, or the metric was not "
        "logged). failed / incomplete / missing: trials of the cell left out of the statistics, listed under "
        "Failed trials.",
    ]


def _significance_notes(significance: pd.DataFrame, test: str) -> list[str]:
    notes = [f"{TEST_NAMES[test]}, two-sided, of each method's final FIDs against those of the best method "
             "of the dataset (bold in the table above). Holm's step-down correction over the comparisons "
             "within each dataset; 'Holm order' is the position in that step-down sequence (smallest p "
             "first). Methods with fewer than 2 finished seeds, or compared with a best that has fewer, are "
             "not tested.",
             EFFECT_NOTES[test]]
    floors = significance["min_attainable_p"].dropna() if len(significance) else pd.Series([], dtype=float)
    if len(floors) and floors.max() >= 0.05:
        worst = significance.loc[floors.idxmax()]
        notes.append(f"With {worst['n']} seeds against {worst['n_reference']} an exact Mann-Whitney test "
                     f"cannot give p below {floors.max():.3f}: 'not significant' here mostly says 'too few "
                     "seeds'. Add seeds (5 against 5 can reach 0.008) or ask for Welch's t test "
                     "(`report.test: welch`), which assumes normal FIDs.")
    return notes


def _best_notes(selections=()) -> list[str]:
    if selections:
        pairs = "; ".join(f"chosen on {chosen}, scored on {scored}" for chosen, scored in selections)
        return ["Cell: each trial's FID at the evaluation step where its FID against a separate selection split "
                "was lowest (`fid_best`, eval.select_split), mean ± std over seeds, bootstrap 95% CI and n; then "
                f"the median step chosen. {pairs}: the step is not chosen on the images it is scored on, so this "
                "table is not optimistic the way best-over-training on one split is."]
    return ["Cell: the lowest FID each trial reached at any evaluation step (`fid_best`), mean ± std over "
            "seeds, bootstrap 95% CI and n; then the median step where it was reached.",
            "Best-over-training is optimistic: it picks the checkpoint with the same metric it then reports, "
            "so it selects on the test set. Compare methods by the final FID above; the gap between the two "
            "tables shows how unstable training is (StudioGAN's DCGAN: best 49.03 at 42k steps, 137.4 at "
            "its final 200k)."]


def _figures(records, tidy, curves, trials, everything, final, budget, out: Path) -> list[Figure]:
    """`trials`: the noise-to-image ones (FID figures); `everything`: with translation (curves and grids)."""
    seeded = everything[everything["study"].isna()]
    datasets = sorted(seeded["dataset"].unique())
    figures = []
    if len(final):
        figures.append(plots.fid_per_seed(trials, final, out))
        figures.append(plots.fid_vs_step(tidy, trials, out))
    for dataset in datasets:
        if ((curves["dataset"] == dataset) & curves["study"].isna()).any():
            figures.append(plots.loss_curves(curves, everything, dataset, out))
        if "ada_p" in curves and ((curves["dataset"] == dataset) & curves["study"].isna()
                                  & curves["ada_p"].notna()).any():
            figures.append(plots.ada_curves(curves, everything, dataset, out))
    with tempfile.TemporaryDirectory() as tmp:
        def fetch(run_id: str, path: str) -> Path | None:
            return fetch_artifact(records.tracking_uri, run_id, path, Path(tmp) / run_id / path)

        for dataset in datasets:
            if ((seeded["dataset"] == dataset) & (seeded["outcome"] == "finished")).any():
                figures.append(plots.sample_grids(everything, dataset, fetch, out))
            copying = results.METRICS["memorization"].summaries[0]  # a final C_T: the check ran
            if copying in seeded and (seeded[copying].notna() & (seeded["dataset"] == dataset)).any():
                figures.append(plots.closest_pairs(everything, dataset, fetch, out))
    if len(budget):
        figures.append(plots.budget_plot(budget, out))
    return figures


def _page(suite, trials, displays, figures, csv_names) -> list[render.Block]:
    counts = trials["outcome"].value_counts()
    seeded = trials[trials["study"].isna()]
    tuned = trials[trials["study"].notna()]
    seeds = sorted(int(s) for s in seeded["seed"].dropna().unique())
    summary = (f"{len(trials)} trials: {counts.get('finished', 0)} finished, "
               f"{counts.get('failed', 0)} failed, {counts.get('incomplete', 0)} incomplete. "
               f"Datasets: {', '.join(sorted(trials['dataset'].dropna().unique()))}.")
    if len(seeded):
        summary += (f" Methods: {', '.join(sorted(seeded['row'].unique()))}."
                    f" Seeds: {', '.join(map(str, seeds)) or '—'}.")
    if len(tuned):
        studies = sorted(f"{study} ({label})" for study, label in
                         tuned[["study", "label"]].drop_duplicates().itertuples(index=False))
        summary += f" Tuning studies: {', '.join(studies)}."
    blocks: list[render.Block] = [
        render.Heading(f"bench report: {suite}", 1),
        render.Paragraph(summary),
        render.Paragraph(f"Regenerated from the MLflow records alone by `bench report --suite {suite}`; the "
                         "same records give byte-identical tables. Lower FID and KID are better."),
    ]
    by_file = {Path(f.file).stem: f for f in figures}
    sections = [("Final FID", ["headline"], [f"{HEADLINE}_per_seed"]),
                ("Is the difference real?", ["significance"], []),
                ("Best FID over training", ["best"], ["fid_vs_step"]),
                *((m.section or m.title, [m.name], sorted(k for k in by_file if k.startswith(f"{m.name}_")))
                  for m in results.tabled() if m is not results.FID),
                ("Translation: between doing nothing and real against real", ["translation", "baselines",
                                                                                 "paired"], ["translation_fid"]),
                ("Training curves", [], sorted(k for k in by_file if k.startswith(("losses_", "ada_p_")))),
                ("Samples", [], sorted(k for k in by_file if k.startswith("samples_"))),
                ("Tuning", ["tuning"], ["budget"]),
                ("Failed trials", ["failures"], []),
                ("Evaluation protocol", ["protocol"], [])]
    for title, names, figure_names in sections:
        shown = [displays[n] for n in names if n in displays]
        pictures = [by_file[n] for n in figure_names if n in by_file]
        if not shown and not pictures:
            continue
        blocks.append(render.Heading(title))
        for item in shown:
            if item.name == "failures" and not item.rows:
                blocks.append(render.Paragraph("Every trial finished and logged its final FID."))
            elif item.name == "significance" and not item.rows:
                blocks.append(render.Paragraph("No test yet: a comparison needs a second method on the same "
                                               "dataset, and at least 2 finished seeds on each side."))
            else:
                blocks.append(item)
        blocks.extend(pictures)
    if "headline" not in displays:
        what = "translation" if "translation" in displays else "tuning"
        blocks.insert(3, render.Paragraph(f"This suite holds only {what} trials: see "
                                          f"{'Translation' if what == 'translation' else 'Tuning'}."))
    if csv_names:
        blocks.append(render.Heading("Data"))
        blocks.append(render.Paragraph("tables/tidy.csv is the tidy table every other table is derived from: "
                                       "one row per trial and evaluation step, every hyperparameter a "
                                       "column."))
        blocks.append(render.Links(tuple((f"tables/{name}.csv", f"tables/{name}.csv") for name in csv_names)))
    return blocks
