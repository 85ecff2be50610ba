"""bench/results.py: every metric declared once, and everything that names a result reading it from there."""

import re
from pathlib import Path

import numpy as np
import pytest

from bench import results
from bench.results import METRICS, Metric

ROOT = Path(__file__).resolve().parents[1]


def test_every_computed_metric_names_a_function_that_exists():
    from bench.metrics.evaluate import scorer

    assert [m.name for m in results.computed()] == ["fid", "kid", "prdc", "is", "authpct", "memorization"]
    for metric in results.computed():
        assert callable(scorer(metric.name)), metric.name


def test_summaries_of_a_trial_follow_each_metrics_declaration():
    evaluations = [{"step": 50, "fid": 30.0, "kid_mean": 0.02, "authpct": 70.0},
                   {"step": 100, "fid": 28.0, "kid_mean": 0.03, "authpct": 60.0},
                   {"step": 150, "fid": 28.0, "kid_mean": 0.01, "authpct": 65.0, "intra_fid": 40.0}]
    assert results.summaries(evaluations) == {
        "fid_final": 28.0, "fid_best": 28.0, "fid_best_step": 100,  # the earliest of equal bests
        "kid_final": 0.01, "authpct_final": 65.0, "intra_fid_final": 40.0}
    translation = [{"step": 10, "fid_a2b": 90.0, "fid_b2a": 80.0, "kid_a2b_mean": 0.1, "l1_a2b": 0.2,
                    "baseline_fid_a_vs_a": 5.0}]
    assert results.summaries(translation) == {"fid_a2b_final": 90.0, "fid_b2a_final": 80.0, "kid_a2b_final": 0.1,
                                              "l1_a2b_final": 0.2, "baseline_fid_a_vs_a": 5.0}
    assert results.summaries([]) == {}


def test_tune_objectives_are_the_lower_is_better_summaries_and_read_their_key():
    assert list(results.objectives()) == ["fid_final", "fid_best", "kid_final"]
    evaluations = [{"step": 1, "fid": 5.0, "kid_mean": 0.5}, {"step": 2, "fid": 7.0, "kid_mean": 0.4}]
    assert results.objective_value(evaluations, "fid_final") == 7.0
    assert results.objective_value(evaluations, "fid_best") == 5.0
    assert results.objective_value(evaluations, "kid_final") == 0.4
    assert results.objective_value([{"step": 1}], "fid_best") is None
    assert results.objective_key("kid_final") == "kid_mean"


def test_a_metric_cannot_take_another_metrics_name_or_be_a_higher_is_better_objective(monkeypatch):
    monkeypatch.setattr(results, "METRICS", dict(METRICS))
    with pytest.raises(ValueError, match="registered twice"):
        results.register(Metric("fid", ("x",), "X"))
    with pytest.raises(ValueError, match="kid_final is another metric's name"):
        results.register(Metric("kid2", ("kid_mean",), "KID again", final=("kid_mean",)))
    with pytest.raises(ValueError, match="studies minimise"):
        results.register(Metric("up", ("up",), "Up", final=("up",), objective=True, lower_is_better=False))
    with pytest.raises(ValueError, match="intervals must be some of its keys"):
        results.register(Metric("wide", ("wide",), "Wide", intervals=("narrow",), bootstrap="m:f"))
    with pytest.raises(ValueError, match="fid_ci_low is another metric's name"):
        results.register(Metric("fid_ci", ("fid_ci_low",), "FID's low end"))


def test_a_new_metric_is_one_entry_and_evaluation_the_suite_and_bench_fid_take_it(monkeypatch):
    """What a new metric needs, shown on a stand-in: one registry entry naming its function."""
    from bench.metrics.cli import _format
    from bench.metrics.evaluate import check_metrics
    from bench.suite import EvalSpec

    monkeypatch.setattr(results, "METRICS", dict(METRICS))
    results.register(Metric("spread", ("spread_mean", "spread_std"), "Spread", final=("spread_mean",),
                            compute="tests.test_results:score_spread"))
    assert "spread" in check_metrics(["fid", "spread"]) and EvalSpec(metrics=["fid", "spread"]).metrics
    assert "spread_final" in results.summaries([{"step": 1, "spread_mean": 2.0}])

    class Result:
        values, protocol, warnings, unavailable = {"fid": 1.0, "spread_mean": 2.0, "spread_std": 0.5}, {}, [], {}

    assert _format(Result())["spread"] == {"mean": 2.0, "std": 0.5}


def score_spread(s) -> None:  # the stand-in's function (tests above)
    s.values["spread_mean"] = float(np.std(s.fake.feats))


def test_result_names_are_written_in_the_registry_and_the_records_contract_only():
    """`"fid_final"` and its kind: a name in quotes anywhere else in bench/ is a second owner of it."""
    names = {n for m in METRICS.values() for n in (*m.keys, *m.summaries, *m.interval_keys) if "_" in n}
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    pattern = re.compile(f"[\"']({alternatives})[\"']")
    owners = {"bench/results.py"}
    found = {}
    for path in sorted((ROOT / "bench").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        hits = pattern.findall(path.read_text(encoding="utf-8"))
        if hits and rel not in owners:
            found[rel] = sorted(set(hits))
    # a summary (fid_final, fid_best, kid_final, ...) nowhere else
    assert {k: v for k, v in found.items() if any(h.endswith(("_final", "_best", "_best_step")) for h in v)} == {}
    # a key only where it is computed (kid_mean, fid_a2b, ...; intra-FID's own path), where a stream is named
    # after it, and where the translation section composes the per-direction names
    writers = {"bench/metrics/evaluate.py", "bench/metrics/translation.py", "bench/metrics/authenticity.py",
               "bench/metrics/leak.py", "bench/metrics/memorization.py",
               "bench/evaluation.py", "bench/streams.py", "bench/report/translation.py"}
    assert {k: v for k, v in found.items() if k not in writers} == {}
    records = (ROOT / "docs" / "records.md").read_text(encoding="utf-8")
    records += records.replace("<d>", "a2b") + records.replace("<d>", "b2a")  # per direction: fid_<d>_final
    missing = [n for m in METRICS.values() for n in (*m.summaries, *m.interval_keys)
               if n not in records and not m.once]
    assert missing == []  # every summary and bootstrap interval a trial logs is in the records contract


def test_authpct_is_zero_for_copies_and_high_for_independent_samples():
    from bench.metrics.authenticity import authpct

    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 16))
    assert authpct(real, real[:200]) == 0.0
    assert authpct(real, real[:200] + 1e-3 * rng.normal(size=(200, 16))) == 0.0
    fresh = rng.normal(size=(300, 16))
    d_real = np.linalg.norm(real[:, None] - real[None], axis=2)
    np.fill_diagonal(d_real, np.inf)
    d_fake = np.linalg.norm(fresh[:, None] - real[None], axis=2)
    nearest = d_fake.argmin(axis=1)
    brute = 100 * np.mean(d_fake[np.arange(len(fresh)), nearest] > d_real.min(axis=1)[nearest])
    assert authpct(real, fresh) == pytest.approx(brute) and authpct(real, fresh) > 40
