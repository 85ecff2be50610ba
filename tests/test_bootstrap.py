"""eval.bootstrap / `bench fid --bootstrap`: intervals over resampled generated images (bench/metrics/bootstrap.py).
The numerical paths against the direct computations on random features; the plumbing with conftest's small stand-in
for Inception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.metrics.authenticity import authpct
from bench.metrics.base import Scoring
from bench.metrics.bootstrap import authpct as authpct_replicates
from bench.metrics.bootstrap import check_resamples, interval, resample_counts
from bench.metrics.cache import ReferenceStats
from bench.metrics.features import Features
from bench.metrics.frechet import covariance_factor, fid_replicates, frechet_distance, gaussian_stats
from bench.metrics.kid import kid_replicate_shifts
from bench.metrics.prdc import prdc, prdc_replicates
from bench.results import bootstrapped, column_order
from bench.streams import bootstrap_seed
from bench.suite import EvalSpec
from tests.conftest import bench_cli
from tests.support import make_trial, one_line_error


def _direct_fids(mu, sigma, feats, counts):
    out = []
    for row in counts:
        resample = np.repeat(feats, row.astype(int), axis=0)
        out.append(frechet_distance(mu, sigma, *gaussian_stats(resample)))
    return np.array(out)


@pytest.mark.parametrize("n, d, n_ref", [(40, 96, 300), (300, 24, 500), (120, 64, 50)])
def test_the_fast_fid_path_equals_benchs_fid_below_and_above_the_dimension(n, d, n_ref):
    """n < d: the n x n eigenproblem; n > d: the d x d one; a reference with fewer images than dimensions: its
    covariance factor (n_ref rows) instead of the symmetric square root."""
    rng = np.random.default_rng(n)
    ref, fake = rng.normal(size=(n_ref, d)), rng.normal(size=(n, d)) * 0.8 + 0.3
    mu, sigma = gaussian_stats(ref)
    counts = np.vstack([np.ones(n), resample_counts(n, 4, seed=1)])  # the set itself, then 4 resamples
    direct = _direct_fids(mu, sigma, fake, counts)
    assert direct[0] == pytest.approx(frechet_distance(mu, sigma, *gaussian_stats(fake)))
    np.testing.assert_allclose(fid_replicates(mu, sigma, fake, counts), direct, rtol=1e-6)
    np.testing.assert_allclose(fid_replicates(mu, sigma, fake, counts, ref_factor=covariance_factor(ref)), direct,
                               rtol=1e-6)
    assert len(set(direct[1:].round(9))) == 4  # the resamples differ: the test compares four distinct sets


def test_kid_prdc_and_authpct_resamples_equal_the_metrics_of_the_resampled_sets():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(70, 16)), rng.normal(size=(30, 16)) + 0.3
    counts = resample_counts(len(fake), 3, seed=2)
    ones = np.ones((1, len(fake)))
    assert kid_replicate_shifts(real, fake, ones)[0] == pytest.approx(0.0, abs=1e-12)
    # a permutation holds every image once: the same set, no shift
    assert kid_replicate_shifts(real, fake, ones[:, ::-1].copy())[0] == pytest.approx(0.0, abs=1e-12)
    kernel = lambda x, y: (x @ y.T / x.shape[1] + 1) ** 3  # noqa: E731

    def full_u(picks):  # the unbiased MMD² of a resample, pairs of two copies of one image left out
        x = fake[picks]
        kxx = kernel(x, x)
        distinct = picks[:, None] != picks[None, :]
        kyy = kernel(real, real)
        return (kxx[distinct].mean() + (kyy.sum() - kyy.trace()) / (len(real) * (len(real) - 1))
                - 2 * kernel(x, real).mean())

    picks = np.repeat(np.arange(len(fake)), counts[0].astype(int))
    assert kid_replicate_shifts(real, fake, counts[:1])[0] == pytest.approx(
        full_u(picks) - full_u(np.arange(len(fake))), rel=1e-9)
    resampled = prdc_replicates(real, fake, counts)
    for b, row in enumerate(counts):
        direct = prdc(real, np.repeat(fake, row.astype(int), axis=0))
        assert {k: resampled[k][b] for k in resampled} == pytest.approx(
            {k: direct[k] for k in ("precision", "density", "coverage")}, abs=1e-12)
    assert prdc_replicates(real, fake, ones)["coverage"][0] == pytest.approx(prdc(real, fake)["coverage"])
    s = Scoring(ReferenceStats(*gaussian_stats(real), feats=real), Features(fake))
    (values,) = authpct_replicates(s, counts).values()
    assert values[1] == pytest.approx(authpct(real, np.repeat(fake, counts[1].astype(int), axis=0)))


def _gaussian_case(n: int, d: int, b: int, seed: int = 0):
    """FID of n draws of N(mu, I) (|mu|² = 1) against the exact reference N(0, I), and its interval."""
    mu = np.zeros(d)
    mu[0] = 1.0
    fake = np.random.default_rng(seed).normal(size=(n, d)) + mu
    point = frechet_distance(np.zeros(d), np.eye(d), *gaussian_stats(fake))
    values = fid_replicates(np.zeros(d), np.eye(d), fake, resample_counts(n, b, seed=seed + 1))
    return point, values, interval(point, values)


def test_fid_intervals_bracket_the_point_estimate_and_shrink_as_n_grows_on_gaussian_features():
    d = 8
    widths = []
    for n in (100, 400, 1600):
        point, values, (low, high) = _gaussian_case(n, d, 300)
        # the closed form is |mu|² = 1, plus the small-n bias (about d(d+1)/(4n)... for unit covariances: > 0)
        assert 1 - 3 / np.sqrt(n) < point < 1 + 3 / np.sqrt(n) + d * d / n
        assert low <= point <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] and widths[0] > 2.5 * widths[2]  # ~1/sqrt(n): 4x from 100 to 1600


def test_unshifted_percentiles_miss_the_point_at_small_n_and_the_shifted_interval_is_conservative():
    """Why the interval is shifted by the bootstrap's bias (bench/metrics/bootstrap.py): with n < d a resample's
    ~63% distinct images make its FID larger, so the raw percentiles lie above the point estimate; the spread of the
    resamples is wider than that of FIDs of independent draws (the docstring's d=256, n=64 figures)."""
    d, n = 256, 64
    scales = 1 / np.sqrt(1 + np.arange(d) / 8)  # a decaying spectrum, as Inception's features have
    sigma_ref, mu = np.diag(scales**2), np.r_[np.full(4, 0.5), np.zeros(d - 4)]
    rng = np.random.default_rng(0)
    draws = [rng.normal(size=(n, d)) * scales + mu for _ in range(61)]
    independent = np.concatenate([fid_replicates(np.zeros(d), sigma_ref, x, np.ones((1, n))) for x in draws[1:]])
    point = independent[0]
    values = fid_replicates(np.zeros(d), sigma_ref, draws[1], resample_counts(n, 200, seed=5))
    assert np.percentile(values, 2.5) > point  # unshifted: the whole interval above the estimate
    low, high = interval(point, values)
    assert low <= point <= high
    assert 1.5 * independent.std() < values.std() < 6 * independent.std()  # conservative (measured: ~3x)


# per-trial evaluation ------------------------------------------------------------------------------------------

class _Tracker:
    def __init__(self):
        self.metrics, self.tags = {}, {}

    def log_metrics(self, metrics, step):
        self.metrics.update(metrics)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_png(self, image, path):
        pass


class _Method:
    """A 'generator' that returns real test digits, drawn with the evaluation's generator."""

    task = "generation"

    def __init__(self):
        from bench.data import load_dataset

        self.images = load_dataset("digits", 8, "test").images

    def sample(self, n, rng):
        return self.images[torch.randint(0, len(self.images), (n,), generator=rng)]


def _evaluate(tmp_path: Path, **eval_settings):
    from bench.evaluation import make_evaluator
    from bench.runs import RunOptions

    trial = make_trial("dcgan", 8)
    settings = {"metrics": ["fid", "kid", "prdc"], "n_fake": 40, "n_real": 60, **eval_settings}
    trial = trial.model_copy(update={"eval": EvalSpec(**settings)})
    tracker = _Tracker()
    values = make_evaluator(trial, tracker, torch.device("cpu"), RunOptions(cache_dir=tmp_path / "cache"))(
        _Method(), 10)
    return trial, tracker, values


def test_a_trial_with_eval_bootstrap_logs_intervals_and_tags_and_without_it_nothing(tiny_inception, tmp_path):
    trial, tracker, values = _evaluate(tmp_path, bootstrap=50)
    m = tracker.metrics
    # the interval is shifted so that the resamples' mean sits on the point estimate: it holds the estimate unless
    # the mean leaves the central 95% of its own resamples, which takes an extreme skew
    for key in ("fid", "kid_mean", "precision", "density", "coverage"):
        assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"], key
        assert m[f"{key}_ci_low"] < m[f"{key}_ci_high"], key
    assert "recall_ci_low" not in m and "kid_std_ci_low" not in m  # not resampled: no interval invented
    assert tracker.tags["eval.bootstrap"] == "50"
    assert tracker.tags["eval.bootstrap_seed"] == str(bootstrap_seed(trial.seed)) == "5000003"
    assert (f"its bootstrap 95% interval over generated images is [{m['fid_ci_low']:.4g}, {m['fid_ci_high']:.4g}]"
            in tracker.tags["eval.warnings"])

    plain_trial, plain, plain_values = _evaluate(tmp_path, bootstrap=0)
    assert not [k for k in plain.metrics if "_ci_" in k] and "eval.bootstrap" not in plain.tags
    assert "bootstrap" not in plain.tags["eval.warnings"]
    assert {k: v for k, v in values.items() if "_ci_" not in k} == plain_values  # the point values do not move
    without = make_trial("dcgan", 8).model_copy(
        update={"eval": EvalSpec(metrics=["fid", "kid", "prdc"], n_fake=40, n_real=60)})
    assert plain_trial.key == without.key != trial.key


def test_the_new_keys_are_in_the_records_contract_and_the_tidy_tables_order():
    records = (Path(__file__).resolve().parents[1] / "docs" / "records.md").read_text(encoding="utf-8")
    keys = [k for m in bootstrapped() for k in m.interval_keys]
    assert {"fid_ci_low", "fid_ci_high", "kid_mean_ci_low", "coverage_ci_high", "authpct_ci_low"} <= set(keys)
    assert [k for k in keys if k not in records] == [] and "eval.bootstrap_seed" in records
    order = column_order()
    assert order.index("fid") < order.index("fid_ci_low") < order.index("fid_ci_high") < order.index("kid_mean")


# the command ---------------------------------------------------------------------------------------------------

@pytest.fixture
def folders(tmp_path):
    from PIL import Image

    from bench.data import load_dataset
    from bench.metrics.features import to_uint8

    for name, split, n in (("real", "train", 40), ("fake", "test", 30)):
        folder = tmp_path / name
        folder.mkdir()
        for i, image in enumerate(to_uint8(load_dataset("digits", 16, split).images[:n])):
            Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
    return tmp_path


def test_bench_fid_bootstrap_prints_the_interval_as_json_and_text(tiny_inception, folders):
    env = {"BENCH_CACHE": str(folders / "cache")}
    out = bench_cli("fid", "real", "fake", "--kid", "--bootstrap", "100", "--json", cwd=folders, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    low, high = result["intervals"]["fid"]
    assert low <= result["fid"] <= high and low < high
    assert result["intervals"]["kid_mean"][0] <= result["kid"]["mean"] <= result["intervals"]["kid_mean"][1]
    assert result["protocol"]["bootstrap"] == 100 and result["protocol"]["bootstrap_seed"] == bootstrap_seed(0)
    assert "its bootstrap 95% interval over generated images" in out.stderr
    text = bench_cli("fid", "real", "fake", "--bootstrap", "100", cwd=folders, env=env)
    assert f"95% interval over resampled generated images [{low:.6g}, {high:.6g}]" in text.stdout
    plain = bench_cli("fid", "real", "fake", "--kid", "--json", cwd=folders, env=env)
    assert "intervals" not in json.loads(plain.stdout) and "bootstrap" not in json.loads(plain.stdout)["protocol"]


def test_a_negative_bootstrap_is_refused_in_one_line(folders):
    line = one_line_error(bench_cli("fid", "real", "fake", "--bootstrap", "-5", cwd=folders))
    assert "--bootstrap -5" in line
    suite = folders / "neg.yaml"
    suite.write_text("name: neg\nmethods: [dcgan]\ndatasets: [digits]\nseeds: 1\nbudget: {steps: 2}\n"
                     "eval: {bootstrap: -1}\n")
    line = one_line_error(bench_cli("run", str(suite), "--dry-run", cwd=folders))
    assert "eval.bootstrap" in line
    with pytest.raises(BenchError, match="eval.bootstrap -1"):
        check_resamples(-1)


@pytest.mark.slow
def test_c_t_gets_its_interval_in_both_spaces_when_a_trial_resamples(tiny_inception, tmp_path):
    """The memorisation check under eval.bootstrap (bench/metrics/memorization.py CopyingCells): ct and ct_pixel
    each with an interval around the logged value; nn_ratio gets none."""
    _, tracker, _ = _evaluate(tmp_path, metrics=["memorization"], n_fake=240, bootstrap=100)
    m = tracker.metrics
    for key in ("ct", "ct_pixel"):
        assert m[f"{key}_ci_low"] < m[key] < m[f"{key}_ci_high"], (key, m)
    assert "nn_ratio_ci_low" not in m
