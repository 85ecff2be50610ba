"""bench report on synthetic MLflow records (docs/records.md) with known final FIDs.

Suite `synth` (Mann-Whitney): labels dcgan, dcgan-wide (method dcgan), lsgan, wgan on digits and mnist.
  digits: every label 3 seeds; wgan is best. mnist: dcgan best; lsgan seed 2 failed ("loss_d is nan");
  wgan has one seed (n=1); dcgan-wide seed 2 finished without any FID (missing metric); KID only on digits.
Suite `synthw` asks for Welch's t (run param report.test). Suite `synthtune` holds two Optuna studies.
"""

import itertools
import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from tests.conftest import sqlite_store
from tests.support import chromium_path, require

SYNTH = {  # (label, method, dataset) -> final FID per seed; None: the trial has no FID
    ("wgan", "wgan", "digits"): [20.0, 22.0, 21.0],
    ("dcgan", "dcgan", "digits"): [23.0, 21.7, 24.0],
    ("dcgan-wide", "dcgan", "digits"): [21.5, 23.0, 19.0],
    ("lsgan", "lsgan", "digits"): [40.0, 41.0, 45.0],
    ("dcgan", "dcgan", "mnist"): [50.0, 52.0, 54.0],
    ("lsgan", "lsgan", "mnist"): [60.0, 61.0, "failed"],
    ("wgan", "wgan", "mnist"): [70.0],
    ("dcgan-wide", "dcgan", "mnist"): [55.0, 57.0, None],
}
WELCH = {("a", "dcgan", "digits"): [10.0, 12.0, 11.0, 13.0, 14.0],
         ("b", "dcgan", "digits"): [15.0, 17.0, 16.0, 19.0, 18.0],
         ("c", "dcgan", "digits"): [11.0, 15.0, 9.0, 13.0, 14.5]}
TUNE = {("tune-dcgan", "dcgan"): [50.0, 40.0, 45.0, "failed", 38.0, 42.0],
        ("tune-wgan", "wgan"): [60.0, 30.0, 35.0, 33.0]}
STEPS = 100


def grid_png(path: Path, seed: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (34, 34, 3), dtype=np.uint8)).save(path)
    return path


def add_run(client, exp_id, suite, label, method, dataset, seed, fid, tmp, extra_params=None,
            extra_tags=None):
    from mlflow.entities import Metric, Param, RunTag

    failed = fid == "failed"
    tags = {"bench.suite": suite, "bench.trial_key": f"{abs(hash((suite, label, dataset, seed))):012x}"[:12],
            "bench.method": method, "bench.label": label, "bench.dataset": dataset, "bench.seed": str(seed),
            "bench.status": "failed" if failed else "finished", "eval.n_real": "1797", "eval.n_fake": "1000",
            "eval.reference": f"{dataset}:train", "eval.resolution": "16", "eval.mode": "clean",
            "eval.weights_sha256": "f58cb9b6", "eval.feature_dim": "2048", **(extra_tags or {})}
    if failed:
        tags.update({"bench.failure_reason": "loss_d is nan", "bench.failure_step": "60"})
    if isinstance(fid, float):  # training's extra per-run tags: not part of the protocol
        tags.update({"eval.best_step": str(50 if label == "dcgan" else STEPS),
                     "eval.warnings": "n_fake=1000 < 2048: FID is biased upward at this n"})
    run = client.create_run(exp_id, run_name=f"{label}-{dataset}-s{seed}", tags=tags)
    run_id = run.info.run_id
    params = {"params.lr_g": "0.0002", "params.width": "64" if label == "dcgan-wide" else "32",
              "budget.steps": str(STEPS), "eval.n_fake": "1000", "eval.every": "50", "resolution": "16",
              "batch_size": "64", "device": "cpu", **(extra_params or {})}
    t0 = 1_700_000_000_000
    last = 60 if failed else STEPS
    metrics = []
    for step in range(10, last + 1, 10):
        metrics.append(Metric("loss_d", 0.5 + 0.01 * seed + 0.1 * math.sin(step / 10), t0 + step, step))
        metrics.append(Metric("loss_g", 2.0 - 0.005 * step + 0.02 * seed, t0 + step, step))
        metrics.append(Metric("images_per_s", 1000.0 + seed, t0 + step, step))
    if isinstance(fid, float):
        early = fid - 1 if label == "dcgan" else fid + 10  # dcgan's best comes before the end
        evals = {50: early, 100: fid}
        for step, value in evals.items():
            metrics.append(Metric("fid", value, t0 + step, step))
            if dataset == "digits":
                metrics.append(Metric("kid_mean", value / 1000, t0 + step, step))
        best_step = min(evals, key=evals.get)
        metrics += [Metric("fid_final", fid, t0 + 200, STEPS),
                    Metric("fid_best", evals[best_step], t0 + 200, STEPS),
                    Metric("fid_best_step", float(best_step), t0 + 200, STEPS)]
        if dataset == "digits":
            metrics.append(Metric("kid_final", fid / 1000, t0 + 200, STEPS))
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    if not failed:
        grid_png(tmp / "final.png", seed * 7 + len(label))
        client.log_artifact(run_id, str(tmp / "final.png"), "samples")
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = sqlite_store(root)
    client = MlflowClient(uri)
    ids = {}
    for suite, spec, extra in (("synth", SYNTH, {}), ("synthw", WELCH, {"report.test": "welch"})):
        exp = client.create_experiment(suite, artifact_location=(root / "artifacts" / suite).as_uri())
        for (label, method, dataset), fids in spec.items():
            for seed, fid in enumerate(fids):
                ids[(suite, label, dataset, seed)] = add_run(client, exp, suite, label, method, dataset, seed,
                                                            fid, root, extra_params=extra)
    exp = client.create_experiment("synthtune", artifact_location=(root / "artifacts" / "tune").as_uri())
    for (study, label), fids in TUNE.items():
        for number, fid in enumerate(fids):
            add_run(client, exp, "synthtune", label, label, "digits", 0, fid, root,
                    extra_params={"params.lr_g": str(0.0001 * (number + 1))},
                    extra_tags={"bench.study": study, "bench.tune_trial": str(number)})
    # a step logged twice (as by a resumed run): the value with the later timestamp wins; 999 carries the
    # earlier one, as if logged before an interruption
    resumed = ids[("synth", "wgan", "digits", 0)]
    client.log_batch(resumed, metrics=[Metric("fid", 999.0, 1_600_000_000_000, 100),
                                       Metric("loss_d", 999.0, 1_600_000_000_000, 50)])
    client.create_experiment("empty", artifact_location=(root / "artifacts" / "empty").as_uri())
    return uri


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    from bench.report.build import write_report

    out = tmp_path_factory.mktemp("report") / "synth"
    write_report(store, "synth", out, ["html", "md", "tex", "csv"])
    return out


def table(report: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(report / "tables" / f"{name}.csv", keep_default_na=False, na_values=[""])


def cell(frame: pd.DataFrame, row: str, dataset: str) -> pd.Series:
    match = frame[(frame["row"] == row) & (frame["dataset"] == dataset)]
    assert len(match) == 1, (row, dataset)
    return match.iloc[0]


# records --------------------------------------------------------------------------------------------------

def test_suites_are_the_experiments_holding_trials(store):
    from bench.report.records import list_suites

    assert list_suites(store) == ["synth", "synthtune", "synthw"]


def test_tidy_table_has_one_row_per_trial_and_evaluation_step(report):
    tidy = table(report, "tidy")
    finished_with_fid = sum(isinstance(v, float) for fids in SYNTH.values() for v in fids)
    without_eval = 2  # the failed lsgan trial and the FID-less dcgan-wide trial keep one row each
    assert len(tidy) == 2 * finished_with_fid + without_eval
    assert {"params.lr_g", "params.width", "budget.steps", "eval.mode", "eval.n_real", "device"} <= set(tidy)
    failed = tidy[tidy["status"] == "failed"]
    assert len(failed) == 1 and pd.isna(failed["step"].iloc[0])
    assert failed["failure_reason"].iloc[0] == "loss_d is nan"


def test_a_step_logged_twice_keeps_the_value_logged_last(report):
    tidy = table(report, "tidy")
    row = tidy[(tidy["label"] == "wgan") & (tidy["dataset"] == "digits") & (tidy["seed"] == 0)
               & (tidy["step"] == STEPS)]
    assert row["fid"].tolist() == [20.0]
    curves = table(report, "curves")
    loss = curves[(curves["label"] == "wgan") & (curves["dataset"] == "digits") & (curves["seed"] == 0)
                  & (curves["step"] == 50)]
    assert loss["loss_d"].tolist() == [pytest.approx(0.5 + 0.1 * math.sin(5))]


# statistics -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [k for k, v in SYNTH.items() if sum(isinstance(f, float) for f in v) >= 2])
def test_final_fid_cells_are_mean_std_and_n_of_the_finished_seeds(report, key):
    label, _, dataset = key
    values = np.array([v for v in SYNTH[key] if isinstance(v, float)])
    got = cell(table(report, "fid_final"), label, dataset)
    assert got["n"] == len(values)
    assert got["mean"] == pytest.approx(values.sum() / len(values))
    assert got["std"] == pytest.approx(math.sqrt(((values - values.mean()) ** 2).sum() / (len(values) - 1)))


def test_three_seed_cells_have_the_data_range_as_95_percent_interval(report):
    got = cell(table(report, "fid_final"), "wgan", "digits")
    assert (got["ci_low"], got["ci_high"]) == (20.0, 22.0)
    two = cell(table(report, "fid_final"), "lsgan", "mnist")  # resampled means of [60, 61]: 60, 60.5, 61
    assert (two["ci_low"], two["ci_high"]) == (60.0, 61.0)


def test_one_seed_cell_has_no_spread_or_interval(report):
    got = cell(table(report, "fid_final"), "wgan", "mnist")
    assert got["n"] == 1 and got["mean"] == 70.0
    assert pd.isna(got["std"]) and pd.isna(got["ci_low"]) and pd.isna(got["ci_high"])


def test_failed_and_metricless_trials_are_counted_not_dropped(report):
    final = table(report, "fid_final")
    assert cell(final, "lsgan", "mnist")[["n", "n_failed", "n_missing"]].tolist() == [2, 1, 0]
    assert cell(final, "dcgan-wide", "mnist")[["n", "n_failed", "n_missing"]].tolist() == [2, 0, 1]
    failures = table(report, "failures")
    assert sorted(zip(failures["row"], failures["problem"], strict=True)) == [
        ("dcgan-wide", "fid_final not logged"), ("lsgan", "failed")]
    assert failures.loc[failures["problem"] == "failed", "failure_reason"].tolist() == ["loss_d is nan"]
    assert failures.loc[failures["problem"] == "failed", "failure_step"].tolist() == [60]


def test_best_per_dataset_is_the_lowest_mean(report):
    final = table(report, "fid_final")
    assert sorted(final.loc[final["best"], "row"] + "/" + final.loc[final["best"], "dataset"]) == [
        "dcgan/mnist", "wgan/digits"]


def exact_p(x, y):
    pooled = list(x) + list(y)
    centre = len(x) * len(y) / 2
    observed = abs(sum(a > b for a in x for b in y) - centre)
    splits = list(itertools.combinations(range(len(pooled)), len(x)))
    extreme = 0
    for idx in splits:
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        extreme += abs(sum(a > b for a in xs for b in ys) - centre) >= observed
    return extreme / len(splits)


def test_mann_whitney_against_the_best_with_holm_order(report):
    sig = table(report, "significance")
    digits = sig[sig["dataset"] == "digits"].set_index("row")
    best = SYNTH[("wgan", "wgan", "digits")]
    p = {row: exact_p(SYNTH[(row, m, "digits")], best) for row, m in
         (("dcgan", "dcgan"), ("dcgan-wide", "dcgan"), ("lsgan", "lsgan"))}
    assert p == pytest.approx({"dcgan": 0.2, "dcgan-wide": 1.0, "lsgan": 0.1})
    for row in p:
        assert digits.loc[row, "p"] == pytest.approx(p[row])
        assert digits.loc[row, "reference"] == "wgan"
    # Holm, m = 3: 0.1 * 3, then max(0.3, 0.2 * 2), then max(0.4, 1.0 * 1)
    assert digits.loc[["lsgan", "dcgan", "dcgan-wide"], "p_holm"].tolist() == pytest.approx([0.3, 0.4, 1.0])
    assert digits.loc[["lsgan", "dcgan", "dcgan-wide"], "holm_rank"].tolist() == [1, 2, 3]
    assert digits.loc["dcgan", "effect"] == pytest.approx(7 / 9)  # Cliff's delta: 8 pairs above, 1 below
    assert digits.loc["dcgan", "min_attainable_p"] == pytest.approx(0.1)
    assert not digits["significant"].any()


def test_one_seed_rows_are_not_tested(report):
    sig = table(report, "significance")
    mnist = sig[sig["dataset"] == "mnist"].set_index("row")
    assert pd.isna(mnist.loc["wgan", "p"]) and mnist.loc["wgan", "note"] == "not tested: n < 2"
    # two tested rows, each p = 2 / C(5, 2) = 0.2, so Holm gives 0.4 to both
    assert mnist.loc[["dcgan-wide", "lsgan"], "p"].tolist() == pytest.approx([0.2, 0.2])
    assert mnist.loc[["dcgan-wide", "lsgan"], "p_holm"].tolist() == pytest.approx([0.4, 0.4])


def test_the_suite_can_ask_for_welch(store, tmp_path):
    from scipy.stats import t as student_t

    from bench.report.build import write_report

    write_report(store, "synthw", tmp_path, ["csv"])
    sig = pd.read_csv(tmp_path / "tables" / "significance.csv").set_index("row")
    y = np.array(WELCH[("a", "dcgan", "digits")])
    expected = {}
    for row in ("b", "c"):
        x = np.array(WELCH[(row, "dcgan", "digits")])
        vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        t = (x.mean() - y.mean()) / math.sqrt(vx + vy)
        df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
        expected[row] = 2 * student_t.sf(abs(t), df)
        pooled = math.sqrt((4 * x.var(ddof=1) + 4 * y.var(ddof=1)) / 8)
        assert sig.loc[row, "test"] == "welch"
        assert sig.loc[row, "statistic"] == pytest.approx(t)
        assert sig.loc[row, "effect"] == pytest.approx((x.mean() - y.mean()) / pooled * (1 - 3 / 31))
    assert expected["b"] < expected["c"]
    assert sig.loc["b", "p_holm"] == pytest.approx(min(1, 2 * expected["b"]))
    assert sig.loc["c", "p_holm"] == pytest.approx(max(2 * expected["b"], expected["c"]))
    assert sig.loc[["b", "c"], "holm_rank"].tolist() == [1, 2]
    assert sig.loc["b", "significant"]


def test_best_fid_table_reports_the_step_it_was_reached(report):
    best = table(report, "fid_best")
    dcgan = cell(best, "dcgan", "digits")
    assert dcgan["mean"] == pytest.approx(np.mean(SYNTH[("dcgan", "dcgan", "digits")]) - 1)
    assert dcgan["step_median"] == 50
    assert cell(best, "wgan", "digits")["step_median"] == STEPS


def test_a_higher_is_better_metric_gets_its_own_table_with_the_highest_mean_in_bold(tmp_path):
    """AuthPct (bench/results.py: higher is better) needed no report code of its own: its table, heading, CSV and
    bold come from its registry entry."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from bench.report.build import write_report

    uri = sqlite_store(tmp_path)
    client = MlflowClient(uri)
    exp = client.create_experiment("auth", artifact_location=(tmp_path / "artifacts").as_uri())
    authpct = {"dcgan": [40.0, 42.0, 44.0], "wgan": [80.0, 82.0, 84.0]}  # wgan has the higher FID and AuthPct
    for label, values in authpct.items():
        for seed, value in enumerate(values):
            fid = 20.0 + seed + (10 if label == "wgan" else 0)
            run_id = add_run(client, exp, "auth", label, label, "digits", seed, fid, tmp_path)
            client.log_batch(run_id, metrics=[Metric("authpct", value, 1_700_000_000_100, STEPS),
                                              Metric("authpct_final", value, 1_700_000_000_200, STEPS)])
    out = tmp_path / "report"
    write_report(uri, "auth", out, ["md", "csv"])
    final = table(out, "authpct_final")
    assert cell(final, "wgan", "digits")["best"] and not cell(final, "dcgan", "digits")["best"]
    assert cell(final, "wgan", "digits")["mean"] == pytest.approx(82.0)
    assert cell(table(out, "fid_final"), "dcgan", "digits")["best"]  # FID's bold stays the lowest
    page = (out / "README.md").read_text(encoding="utf-8")
    rows = section_rows(page, "AuthPct: does a model return its training images?")
    assert "**82.0 ± 2.0**" in rows["wgan"] and "**" not in rows["dcgan"]
    assert "Bold: highest mean per dataset" in page and "(tables/authpct_final_table.csv)" in page


def test_budget_curve_of_a_tuning_study(store, tmp_path):
    from bench.report.build import write_report

    write_report(store, "synthtune", tmp_path, ["csv", "html"])
    budget = pd.read_csv(tmp_path / "tables" / "budget.csv")
    dcgan = budget[budget["study"] == "tune-dcgan"].set_index("k")
    assert dcgan["observed_min_fid"].tolist() == [50, 40, 40, 40, 38, 38]
    # k = 1: a single draw; its median over [38, 40, 42, 45, 50, failed] is the 3rd value, P(<= 42) = 3/6
    assert dcgan.loc[1, ["median_min_fid", "low"]].tolist() == [42, 38]
    assert math.isinf(dcgan.loc[1, "high"])  # 1 in 6 single draws hits the failed trial
    # k = 2: P(min <= 40) = 1 - (4/6)^2 = 0.56 >= 0.5 > P(min <= 38) = 1 - (5/6)^2 = 0.31
    assert dcgan.loc[2, "median_min_fid"] == 40
    tuning = pd.read_csv(tmp_path / "tables" / "tuning.csv").set_index("study")
    assert tuning.loc["tune-dcgan", ["n_trials", "n_failed", "best_fid_final", "best_trial"]].tolist() == [
        6, 1, 38.0, 4]
    assert tuning.loc["tune-dcgan", "best_params"] == "lr_g=0.0005"
    assert (tmp_path / "figures" / "budget.png").is_file()


# rendering --------------------------------------------------------------------------------------------------

def section_rows(markdown: str, heading: str) -> dict[str, str]:
    """The table lines of one `## heading` section of README.md, keyed by their first cell."""
    body = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return {line.split("|")[1].strip(): line for line in body.splitlines() if line.startswith("| ")}


def test_headline_markdown_marks_best_n1_missing_and_failed(report):
    text = (report / "README.md").read_text()
    rows = section_rows(text, "Final FID")
    assert "| **21.00 ± 1.00**<br>\\[20.00, 22.00\\] n=3 |" in rows["wgan"]
    assert "| 70.00<br>n=1† |" in rows["wgan"]
    assert "1 failed" in rows["lsgan"] and "1 missing" in rows["dcgan-wide"]
    assert "n=3<br>at step 50" in section_rows(text, "Best FID over training")["dcgan"]
    kid = section_rows(text, "KID")
    assert kid["wgan"] == "| wgan | **0.0210 ± 0.0010**<br>\\[0.0200, 0.0220\\] n=3 | —<br>1 missing |"


def test_protocol_lists_the_evaluation_tags_and_warnings(report):
    protocol = table(report, "protocol")
    assert sorted(protocol["key"].unique()) == ["eval.feature_dim", "eval.mode", "eval.n_fake", "eval.n_real",
                                                "eval.reference", "eval.resolution", "eval.weights_sha256"]
    assert (protocol["n_distinct"] == 1).all()
    references = protocol.loc[protocol["key"] == "eval.reference", "values"].tolist()
    assert references == ["digits:train", "mnist:train"]
    readme = (report / "README.md").read_text()
    assert "Warning recorded with the evaluations: n\\_fake=1000 \\< 2048" in readme


def test_latex_tables_escape_and_typeset(report):
    tex = (report / "tables" / "fid_final_table.tex").read_text()
    assert r"\textbf{21.00 $\pm$ 1.00 [20.00, 22.00] n=3}" in tex
    assert r"n=1$^\dagger$" in tex and r"\toprule" in tex


@pytest.mark.slow
def test_report_files_are_byte_identical_on_a_second_run(store, report, tmp_path):
    from bench.report.build import write_report

    again = tmp_path / "again"
    write_report(store, "synth", again, ["html", "md", "tex", "csv"])
    first = sorted(p.relative_to(report) for p in report.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    assert {p.parent.name for p in first} >= {"tables", "figures"}
    for rel in first:
        assert (report / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_figures_are_written(report):
    names = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert names == ["fid_final_per_seed.png", "fid_vs_step.png", "losses_digits.png", "losses_mnist.png",
                     "samples_digits.png", "samples_mnist.png"]


# command line -----------------------------------------------------------------------------------------------

def app():
    import typer

    from bench.report.cli import report_command

    application = typer.Typer()
    application.command("report")(report_command)
    application.command("noop")(lambda: None)  # keeps `report` a subcommand
    return application


def test_cli_writes_every_suite_under_out(store, tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app(), ["report", "--tracking-uri", store, "--out", str(tmp_path),
                                        "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth", "synthtune", "synthw"]
    assert (tmp_path / "synth" / "tables" / "tidy.csv").is_file()
    assert not (tmp_path / "synth" / "index.html").exists()


def test_cli_default_out_is_reports_suite(store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    result = CliRunner().invoke(app(), ["report", "--suite", "synthw", "--format", "md,csv"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "synthw" / "README.md").is_file()


@pytest.mark.parametrize("args, message", [
    (["--suite", "nope"], "--suite nope: no such suite"),
    (["--suite", "empty"], "suite empty: its experiment holds no bench trials"),
    (["--suite", "synth", "--format", "html,pdf"], "--format html,pdf: unknown format pdf"),
])
def test_user_errors_are_bench_errors(store, tmp_path, args, message):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app(), ["report", "--tracking-uri", store, "--out", str(tmp_path), *args])
    assert isinstance(result.exception, BenchError)
    assert message in str(result.exception)


def test_missing_default_store_says_how_to_fix(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app(), ["report"])
    assert isinstance(result.exception, BenchError)
    assert "bench run suites/quickstart.yaml" in str(result.exception)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_page_bench_did_not_write_is_not_overwritten(store, tmp_path):
    from bench.report.build import write_report

    (tmp_path / "README.md").write_text("# my project\n")
    with pytest.raises(BenchError, match="not written by bench report"):
        write_report(store, "synth", tmp_path, ["md"])
    assert (tmp_path / "README.md").read_text() == "# my project\n"


# the page in a real browser ---------------------------------------------------------------------------------

def chromium() -> str:
    require("chromium")
    return chromium_path()


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(profile)})


@pytest.mark.chromium
@pytest.mark.slow
@pytest.mark.process
def test_html_report_renders_in_headless_chromium(report, tmp_path):
    page = report / "index.html"
    shot = tmp_path / "report.png"
    result = run_chromium([f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()], tmp_path / "p1")
    assert shot.is_file() and shot.stat().st_size > 10_000, result.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # not a blank page
    keep = os.environ.get("BENCH_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)

    # the same page plus a script that records, after load, what the browser actually rendered
    probe = report / "probe.html"
    script = ("<script>window.addEventListener('load', () => { document.body.setAttribute('data-probe', "
              "JSON.stringify({"
              "images: [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth]), "
              "tables: [...document.querySelectorAll('table')].map(t => [t.id, t.rows.length])"
              "})); });</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    try:
        deadline = time.monotonic() + 60
        while True:
            dom = run_chromium(["--dump-dom", probe.as_uri()], tmp_path / "p2").stdout
            if "data-probe" in dom or time.monotonic() > deadline:
                break
    finally:
        probe.unlink()
    import html as html_lib
    import re

    match = re.search(r'data-probe="([^"]*)"', dom)
    assert match, dom[:2000]
    rendered = json.loads(html_lib.unescape(match.group(1)))
    tables = dict(rendered["tables"])
    assert tables["fid_final_table"] == 1 + 4  # header + dcgan, dcgan-wide, lsgan, wgan
    assert {"significance", "fid_best_table", "failures", "protocol"} <= set(tables)
    images = dict(rendered["images"])
    assert set(images) == {"figures/fid_final_per_seed.png", "figures/fid_vs_step.png",
                           "figures/losses_digits.png", "figures/losses_mnist.png",
                           "figures/samples_digits.png", "figures/samples_mnist.png"}
    assert all(width > 100 for width in images.values()), images
    assert "21.00 ± 1.00" in dom and "loss_d is nan" in dom


# configuration rows and the suite's choice of test ---------------------------------------------------------

def trial_frame(rows):
    base = {"study": None, "seed": 0, "dataset": "digits", "device": "cpu", "params.beta1": 0.5}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_a_grid_splits_a_label_into_one_row_per_configuration():
    from bench.report.tables import row_names

    trials = trial_frame([{"label": "dcgan", "params.lr_g": 0.0001},
                          {"label": "dcgan", "params.lr_g": 0.0002},
                          {"label": "wgan", "params.lr_g": 0.0001, "device": "cuda"}])
    names = row_names(trials, ["device", "params.beta1", "params.lr_g"]).tolist()
    assert names == ["dcgan [lr_g=0.0001]", "dcgan [lr_g=0.0002]", "wgan"]


def test_a_param_that_only_differs_between_datasets_does_not_split_rows():
    from bench.report.tables import row_names

    trials = trial_frame([{"label": "dcgan", "dataset": "digits", "dataset_options.path": "a"},
                          {"label": "dcgan", "dataset": "mnist", "dataset_options.path": "b"}])
    assert row_names(trials, ["dataset_options.path"]).tolist() == ["dcgan", "dcgan"]


@pytest.mark.parametrize("values, expected", [([None, None], "mannwhitney"), (["welch", None], "welch"),
                                              (["mannwhitney"], "mannwhitney")])
def test_the_test_comes_from_the_report_test_param(values, expected):
    from bench.report.tables import suite_test

    assert suite_test(pd.DataFrame({"report.test": values})) == expected
    assert suite_test(pd.DataFrame({"label": ["a"]})) == "mannwhitney"


@pytest.mark.parametrize("values, message", [(["ttest"], "unknown test"),
                                             (["welch", "mannwhitney"], "disagree")])
def test_a_bad_report_test_is_a_bench_error(values, message):
    from bench.report.tables import suite_test

    with pytest.raises(BenchError, match=message):
        suite_test(pd.DataFrame({"report.test": values}))


def test_a_hyperparameter_left_at_its_default_is_named_so_in_a_row_label():
    from bench.report.tables import describe

    run = pd.Series({"params.augment": "ada", "params.lecam": math.nan})
    assert describe(run, ["params.augment", "params.lecam"]) == "augment=ada, lecam=default"
