"""bench.report.stats: each statistic against numbers computed by hand or from its textbook formula."""

import itertools
import math

import numpy as np
import pytest

from bench.report import stats


def exact_mann_whitney_p(x, y):
    """Two-sided exact p by enumerating every split of the pooled values (no ties)."""
    pooled = list(x) + list(y)
    observed = sum(a > b for a in x for b in y)
    centre = len(x) * len(y) / 2
    count = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(x)):
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        u = sum(a > b for a in xs for b in ys)
        count += abs(u - centre) >= abs(observed - centre) - 1e-12
        total += 1
    return count / total


def test_summary_is_mean_sample_std_and_n():
    s = stats.summarize([23.0, 21.7, 24.0])
    mean = (23.0 + 21.7 + 24.0) / 3
    std = math.sqrt(((23.0 - mean) ** 2 + (21.7 - mean) ** 2 + (24.0 - mean) ** 2) / 2)
    assert s.n == 3
    assert s.mean == pytest.approx(mean, abs=1e-12)
    assert s.std == pytest.approx(std, abs=1e-12)


def test_one_seed_has_no_spread_and_no_interval():
    s = stats.summarize([61.0])
    assert (s.n, s.mean) == (1, 61.0)
    assert math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_three_seed_percentile_interval_is_the_range():
    # each extreme carries 1/27 > 2.5% of the bootstrap distribution of the mean
    assert stats.bootstrap_ci([20.0, 22.0, 21.0]) == (20.0, 22.0)


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    x = np.array([10.0, 12.0, 11.0, 13.0, 14.0])
    means = np.array([np.mean(c) for c in itertools.product(x, repeat=len(x))])  # all 5^5 resamples
    low, high = np.quantile(means, [0.025, 0.975])
    got = stats.bootstrap_ci(x)
    assert got[0] == pytest.approx(low, abs=0.05)
    assert got[1] == pytest.approx(high, abs=0.05)


def test_bootstrap_is_deterministic():
    assert stats.bootstrap_ci([3.0, 1.0, 4.0, 1.5, 5.0]) == stats.bootstrap_ci([3.0, 1.0, 4.0, 1.5, 5.0])


@pytest.mark.parametrize("x, y", [([23.0, 21.7, 24.0], [20.0, 22.0, 21.0]),
                                  ([40.0, 41.0, 45.0], [20.0, 22.0, 21.0]),
                                  ([21.5, 23.0, 19.0], [20.0, 22.0, 21.0]),
                                  ([60.0, 61.0], [50.0, 52.0, 54.0])])
def test_mann_whitney_p_is_the_exact_permutation_p(x, y):
    result = stats.mann_whitney(x, y)
    assert result.p == pytest.approx(exact_mann_whitney_p(x, y), abs=1e-12)
    assert result.statistic == sum(a > b for a in x for b in y)


def test_cliffs_delta_counts_pairs():
    # 23 > 20,21,22; 21.7 > 20,21 and < 22; 24 > all: 8 greater, 1 smaller of 9 pairs
    assert stats.cliffs_delta([23.0, 21.7, 24.0], [20.0, 22.0, 21.0]) == pytest.approx(7 / 9)


def test_welch_matches_its_formula():
    from scipy.stats import t as student_t

    x, y = np.array([15.0, 17.0, 16.0, 19.0, 18.0]), np.array([10.0, 12.0, 11.0, 13.0, 14.0])
    vx, vy = x.var(ddof=1) / 5, y.var(ddof=1) / 5
    t = (x.mean() - y.mean()) / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / 4 + vy**2 / 4)
    result = stats.welch(x, y)
    assert result.statistic == pytest.approx(t)
    assert result.p == pytest.approx(2 * student_t.sf(abs(t), df))


def test_hedges_g_is_corrected_cohens_d():
    x, y = [15.0, 17.0, 16.0, 19.0, 18.0], [10.0, 12.0, 11.0, 13.0, 14.0]
    pooled = math.sqrt((4 * 2.5 + 4 * 2.5) / 8)  # both samples have variance 2.5
    assert stats.hedges_g(x, y) == pytest.approx((17 - 12) / pooled * (1 - 3 / (4 * 10 - 9)))


def test_holm_adjusts_in_step_down_order_and_stays_monotone():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm_rank(p) == [2, 4, 3, 1]


def test_holm_leaves_untested_out_of_the_family():
    adjusted = stats.holm([0.2, math.nan, 0.1])
    assert adjusted[0] == pytest.approx(0.2) and adjusted[2] == pytest.approx(0.2)
    assert math.isnan(adjusted[1])


def test_holm_caps_at_one():
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


def test_three_seeds_cannot_reach_five_percent():
    assert stats.min_attainable_p(3, 3) == pytest.approx(0.1)
    assert stats.min_attainable_p(5, 5) == pytest.approx(2 / 252)


def test_minimum_of_k_quantiles_equal_enumeration():
    values = [50.0, 40.0, 45.0, math.inf, 38.0, 42.0]
    for k in (1, 2, 3):
        mins = sorted(min(c) for c in itertools.product(values, repeat=k))
        expected = []
        for q in (0.5, 0.025, 0.975):
            expected.append(next(v for v in mins if sum(m <= v for m in mins) / len(mins) >= q))
        assert stats.min_of_k_quantiles(values, k, (0.5, 0.025, 0.975)) == expected
