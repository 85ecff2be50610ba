"""Tables derived from the tidy table: trials, per-cell summaries over seeds, significance, failures,
evaluation protocol, and tuning budgets. All are plain DataFrames of numbers (display.py formats them).

A "row" of the study's tables is a label (`bench.label`), plus the hyperparameters that vary under that label
when a suite has a grid (e.g. `dcgan [lr_g=0.0001]`), so configurations are never averaged together.
Runs tagged `bench.study` (Optuna tuning trials) are kept apart: they feed the budget plot and tuning table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench import results
from bench.errors import BenchError
from bench.report import stats
from bench.report.display import BEST_HEADLINE
from bench.report.records import IDENTITY_COLUMNS

SUMMARY_METRICS = tuple(results.summary_columns())  # bench/results.py
# a column only when some trial logged it: all but the headline's
OPTIONAL_METRICS = tuple(n for n in SUMMARY_METRICS if n not in results.FID.summaries)
HEADLINE = results.HEADLINE
# Params that never tell two configurations apart (they do not change a trial's numbers).
NOT_HYPERPARAMETERS = ("device", "report.test")


def outcome(status: str) -> str:
    """finished | failed | pruned (a tuning trial its pruner stopped) | incomplete (running or interrupted)."""
    return status if status in ("finished", "failed", "pruned") else "incomplete"


def trials_table(tidy: pd.DataFrame, param_columns: list[str]) -> pd.DataFrame:
    """One row per trial: identity, outcome, configuration row name, last evaluation step, summary metrics."""
    fixed = [c for c in tidy.columns if c in (*IDENTITY_COLUMNS, "trial_key", "run_name", "run_id")
             or c.startswith(("eval.", "fingerprint.")) or c in param_columns]
    base = tidy.drop_duplicates("run_id")[fixed].set_index("run_id")
    grouped = tidy.groupby("run_id", sort=False)
    summary = pd.DataFrame(index=base.index)
    summary["last_eval_step"] = grouped["step"].max()
    for metric in SUMMARY_METRICS:
        if metric in tidy.columns:
            summary[metric] = grouped[metric].last()  # logged once, at the final step
        elif metric not in OPTIONAL_METRICS:
            summary[metric] = math.nan
    trials = base.join(summary).reset_index()
    trials["outcome"] = trials["status"].map(outcome)
    trials["row"] = row_names(trials, param_columns)
    summaries = [m for m in SUMMARY_METRICS if m in trials]
    front = ["row", *IDENTITY_COLUMNS, "outcome", "last_eval_step", *summaries]
    rest = [c for c in trials.columns if c not in front]
    return trials[front + rest]


def hyperparameter_columns(param_columns: list[str]) -> list[str]:
    return [c for c in param_columns if c not in NOT_HYPERPARAMETERS and not c.startswith("log.")]


def varying(group: pd.DataFrame, columns: list[str], within: str | None = None) -> list[str]:
    """Columns that take more than one value in `group` (within each value of `within`, if given)."""
    out = []
    for col in columns:
        text = group[col].map(_text)
        counts = text.groupby(group[within]).nunique() if within else pd.Series([text.nunique()])
        if (counts > 1).any():
            out.append(col)
    return out


def row_names(trials: pd.DataFrame, param_columns: list[str]) -> pd.Series:
    names = trials["label"].astype(str).copy()
    candidates = hyperparameter_columns(param_columns)
    seeded = trials[trials["study"].isna()]
    for label, group in seeded.groupby("label", sort=True):
        keys = varying(group, candidates, within="dataset")
        if keys:
            for index, run in group.iterrows():
                names[index] = f"{label} [{describe(run, keys)}]"
    return names


def describe(run: pd.Series, keys: list[str]) -> str:
    """`augment=ada, lecam=default`: a hyperparameter without a recorded value was left at its method's default
    (settings added to a method are recorded only when set, so that earlier trials keep their keys)."""
    return ", ".join(f"{k.removeprefix('params.')}={'default' if _missing(run[k]) else _text(run[k])}" for k in keys)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value) -> str:
    if _missing(value):
        return "None"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def seeded(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials of the study proper (not Optuna tuning trials)."""
    return trials[trials["study"].isna()]


def cell_values(trials: pd.DataFrame, row: str, dataset: str, metric: str) -> np.ndarray:
    cell = trials[(trials["row"] == row) & (trials["dataset"] == dataset) & (trials["outcome"] == "finished")]
    return cell[metric].dropna().to_numpy(dtype=float)


def cell_summaries(trials: pd.DataFrame, metric: str, step_metric: str | None = None,
                   lower_is_better: bool = True) -> pd.DataFrame:
    """One row per (row, dataset): n, mean, std (ddof=1), bootstrap CI, best flag, and what was left out.

    Only finished trials with a value enter the statistics; failed, incomplete and finished-without-value
    trials are counted next to them. `best` marks the lowest mean per dataset (the highest when higher is better).
    """
    rows = []
    for (row, dataset), cell in seeded(trials).groupby(["row", "dataset"], sort=True):
        done = cell[cell["outcome"] == "finished"]
        with_value = done[done[metric].notna()]
        summary = stats.summarize(with_value[metric].to_numpy(dtype=float))
        entry = {"row": row, "label": cell["label"].iloc[0], "dataset": dataset, "metric": metric,
                 "n": summary.n, "mean": summary.mean, "std": summary.std,
                 "ci_low": summary.ci_low, "ci_high": summary.ci_high,
                 "n_trials": len(cell), "n_failed": int((cell["outcome"] == "failed").sum()),
                 "n_incomplete": int((cell["outcome"] == "incomplete").sum()),
                 "n_missing": len(done) - summary.n,
                 "seeds": ";".join(str(s) for s in with_value["seed"]),
                 "values": ";".join(f"{v:.6g}" for v in with_value[metric])}
        if step_metric:
            steps = with_value[step_metric].dropna()
            entry["step_median"] = float(steps.median()) if len(steps) else math.nan
            entry["steps"] = ";".join(f"{s:.0f}" for s in steps)
        rows.append(entry)
    columns = ["row", "label", "dataset", "metric", "n", "mean", "std", "ci_low", "ci_high", "n_trials",
               "n_failed", "n_incomplete", "n_missing", "seeds", "values"]
    if step_metric:
        columns += ["step_median", "steps"]
    table = pd.DataFrame(rows, columns=columns)
    table.insert(9, "best", _best(table, lower_is_better))
    return table


def _best(table: pd.DataFrame, lower_is_better: bool) -> pd.Series:
    if table.empty:
        return pd.Series([], dtype=bool)
    best = table.groupby("dataset")["mean"].transform("min" if lower_is_better else "max")
    return table["mean"].notna() & (table["mean"] == best)


def reference_rows(summary: pd.DataFrame) -> dict[str, str]:
    """The best row of each dataset (the first in row order on a tie); the others are tested against it."""
    best = summary[summary["best"]].sort_values(["dataset", "row"], kind="stable")
    return dict(best.groupby("dataset")["row"].first())


def significance_table(trials: pd.DataFrame, summary: pd.DataFrame, metric: str, test: str) -> pd.DataFrame:
    """Per dataset: every row against the best row, two-sided, Holm-corrected within the dataset.

    Rows with n < 2 on either side are not tested (NaN p) and are not part of the Holm family.
    """
    out = []
    for dataset, reference in sorted(reference_rows(summary).items()):
        ref_values = cell_values(trials, reference, dataset, metric)
        family = []
        for _, cell in summary[(summary["dataset"] == dataset) & (summary["row"] != reference)
                               & (summary["n"] > 0)].iterrows():
            x = cell_values(trials, cell["row"], dataset, metric)
            entry = {"dataset": dataset, "row": cell["row"], "reference": reference, "n": len(x),
                     "n_reference": len(ref_values), "mean": float(np.mean(x)),
                     "mean_reference": float(np.mean(ref_values)), "test": test, "statistic": math.nan,
                     "p": math.nan, "effect_name": "cliffs_delta" if test == "mannwhitney" else "hedges_g",
                     "effect": math.nan, "min_attainable_p": math.nan, "note": ""}
            if len(x) >= 2 and len(ref_values) >= 2:
                result = stats.compare(x, ref_values, test)
                entry.update(statistic=result.statistic, p=result.p, effect=result.effect)
                if test == "mannwhitney":
                    entry["min_attainable_p"] = stats.min_attainable_p(len(x), len(ref_values))
            else:
                entry["note"] = "not tested: n < 2"
            family.append(entry)
        adjusted = stats.holm([e["p"] for e in family])
        ranks = stats.holm_rank([e["p"] for e in family])
        for entry, p_holm, rank in zip(family, adjusted, ranks, strict=True):
            entry.update(p_holm=p_holm, holm_rank=rank, significant=bool(p_holm < 0.05),
                         marker=stats.significance_marker(p_holm))
        out.extend(family)
    columns = ["dataset", "row", "reference", "n", "n_reference", "mean", "mean_reference", "test",
               "statistic", "p", "p_holm", "holm_rank", "significant", "marker", "effect_name", "effect",
               "min_attainable_p", "note"]
    table = pd.DataFrame(out, columns=columns)
    if not table.empty:
        table["holm_rank"] = table["holm_rank"].astype("Int64")
    return table


def suite_test(trials: pd.DataFrame) -> str:
    """The test a suite asked for (run param `report.test`), Mann-Whitney U when absent."""
    if "report.test" not in trials.columns:
        return "mannwhitney"
    asked = sorted({str(v) for v in trials["report.test"].dropna()})
    if len(asked) > 1:
        raise BenchError(f"runs of this suite disagree on report.test ({', '.join(asked)}); set one value in "
                         f"the suite and re-run, or delete the stale runs")
    if asked and asked[0] not in stats.TESTS:
        raise BenchError(f"report.test={asked[0]}: unknown test; use one of {', '.join(stats.TESTS)}")
    return asked[0] if asked else "mannwhitney"


def failures_table(trials: pd.DataFrame, translation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every trial that did not give a final FID: failed, incomplete, or finished without the metric (for
    translation trials, the A->B FID)."""
    parts = []
    for group, metric in ((trials, results.HEADLINE), (translation, results.TRANSLATION_FID.summaries[0])):
        if group is None or group.empty:
            continue
        values = group[metric] if metric in group else pd.Series(np.nan, index=group.index)
        missing = (group["outcome"] == "finished") & values.isna()
        bad = group[((group["outcome"] != "finished") & (group["outcome"] != "pruned")) | missing].copy()
        bad["problem"] = np.where(bad["outcome"] == "finished", f"{metric} not logged", bad["outcome"])
        parts.append(bad)
    bad = pd.concat(parts) if parts else trials.iloc[:0].assign(problem=pd.Series(dtype=str))
    columns = ["row", "dataset", "seed", "study", "tune_trial", "status", "problem", "failure_step",
               "failure_reason", "last_eval_step", "run_name"]
    return bad[columns].sort_values(["dataset", "row", "seed", "study", "tune_trial", "run_name"],
                                    na_position="last", kind="stable").reset_index(drop=True)


# The evaluation protocol tags of docs/records.md (plus KID's subset settings): a FID means something only
# with these. Other eval.* tags (the step of the best FID, warnings) differ per run: not part of the protocol.
PROTOCOL_TAGS = ("eval.mode", "eval.n_real", "eval.n_fake", "eval.reference", "eval.resolution",
                 "eval.features", "eval.feature_dim", "eval.weights_sha256", "eval.features_weights",
                 "eval.features_preprocessing", "eval.kid_subsets", "eval.kid_subset_size",
                 "eval.intra_fid_n_per_class", "eval.intra_fid_classes", "eval.intra_fid_min_n_real",
                 # a further space's FD (eval.also_features): its network, weights and counts
                 *(f"eval.fd_{kind}.{k}" for kind in results.ALSO_KINDS
                   for k in ("features", "weights_sha256", "feature_dim", "features_weights",
                             "features_preprocessing", "features_trained", "n_real", "n_fake")),
                 # what decided the bits (bench/numerics.py): a column made under two differs may differ by it
                 *(f"fingerprint.{k}" for k in ("mode", "torch", "kernel_isa", "threads", "mkldnn", "deterministic",
                                                "glibc", "lib_mkl", "lib_onednn", "gpu", "cuda", "cudnn")))


def protocol_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, each evaluation-protocol tag and the distinct values its runs carry (more than one: a
    column mixes protocols and its FIDs are not comparable)."""
    rows = []
    keys = [k for k in PROTOCOL_TAGS if k in trials.columns]
    for dataset, runs in trials.groupby("dataset", sort=True):
        for key in keys:
            values = sorted({_text(v) for v in runs[key] if v is not None and not _isnan(v)})
            rows.append({"dataset": dataset, "key": key, "values": " | ".join(values),
                         "n_distinct": len(values), "n_runs": int(runs[key].notna().sum())})
    return pd.DataFrame(rows, columns=["dataset", "key", "values", "n_distinct", "n_runs"])


def evaluation_warnings(trials: pd.DataFrame) -> list[str]:
    """The distinct warnings training attached to its evaluations (tag eval.warnings, ' | '-separated)."""
    if "eval.warnings" not in trials.columns:
        return []
    found = set()
    for text in trials["eval.warnings"].dropna():
        found.update(w.strip() for w in str(text).split(" | ") if w.strip())
    return sorted(found)


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


# tuning studies ---------------------------------------------------------------------------------------------

BUDGET_QUANTILES = (0.5, 0.025, 0.975)


def _tuning_values(group: pd.DataFrame) -> np.ndarray:
    """Final FID per tuning trial in trial order; failed, pruned or value-less trials are +inf (budget spent, no
    final result), incomplete ones left out."""
    done = group[group["outcome"] != "incomplete"].sort_values("tune_trial", kind="stable")
    ok = (done["outcome"] == "finished") & done[HEADLINE].notna()
    return np.where(ok, done[HEADLINE].astype(float), np.inf)


def budget_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Minimum final FID found vs number of trials k (Lucic et al. 2018): median and 95% band of the exact
    bootstrap distribution, and the minimum actually observed over the first k trials in search order."""
    rows = []
    tuned = trials[trials["study"].notna()]
    for (study, label, dataset), group in tuned.groupby(["study", "label", "dataset"], sort=True):
        values = _tuning_values(group)
        for k in range(1, len(values) + 1):
            median, low, high = stats.min_of_k_quantiles(values, k, BUDGET_QUANTILES)
            rows.append({"study": study, "label": label, "dataset": dataset, "k": k, "median_min_fid": median,
                         "low": low, "high": high, "observed_min_fid": float(values[:k].min())})
    return pd.DataFrame(rows, columns=["study", "label", "dataset", "k", "median_min_fid", "low", "high",
                                       "observed_min_fid"])


def tuning_table(trials: pd.DataFrame, param_columns: list[str]) -> pd.DataFrame:
    rows = []
    tuned = trials[trials["study"].notna()]
    candidates = hyperparameter_columns(param_columns)
    for (study, label, dataset), group in tuned.groupby(["study", "label", "dataset"], sort=True):
        ok = group[(group["outcome"] == "finished") & group[HEADLINE].notna()]
        entry = {"study": study, "label": label, "dataset": dataset, "n_trials": len(group),
                 "n_failed": int((group["outcome"] == "failed").sum()),
                 "n_pruned": int((group["outcome"] == "pruned").sum()),
                 "n_incomplete": int((group["outcome"] == "incomplete").sum()),
                 BEST_HEADLINE: math.nan, "best_trial": pd.NA, "best_params": ""}
        if len(ok):
            best = ok.sort_values([HEADLINE, "tune_trial"], kind="stable").iloc[0]
            entry.update({BEST_HEADLINE: float(best[HEADLINE])}, best_trial=best["tune_trial"],
                         best_params=describe(best, varying(group, candidates)))
        rows.append(entry)
    table = pd.DataFrame(rows, columns=["study", "label", "dataset", "n_trials", "n_failed", "n_pruned",
                                        "n_incomplete", BEST_HEADLINE, "best_trial", "best_params"])
    table["best_trial"] = table["best_trial"].astype("Int64")
    return table
