"""Results statistics checked against published numbers (GrowthBook's engine tests, textbooks).

Expected values come from outside SciPy/statsmodels: growthbook/growthbook
packages/stats/tests/frequentist/test_tests.py (MIT; its stats engine's own tests, rounded to 5
decimals there), Mendel's dihybrid cross as worked in statistics textbooks, the Holm–Bonferroni
example of Holm (1979) as reproduced on Wikipedia, and a worked two-proportion z-test
(https://homeworksource.com/p/1008622: pooled proportion 0.7314815, SE 0.03949401, z -1.266015).
"""

from __future__ import annotations

import math

import pytest

from livecommerce.growth.experiments.stats import Sample, compare, holm, mixture_sprt, srm

# GrowthBook TestTwoSidedTTest.setUp: SampleMeanStatistic(sum, sum_squares, n).
GB_A = Sample(n=3407, total=1396.87, total_sq=52377.9767, binomial=False)
GB_B = Sample(n=3461, total=2422.7, total_sq=134698.29, binomial=False)


def test_welch_absolute_matches_growthbook() -> None:
    """Welch absolute lift, 95 % CI and p equal GrowthBook's test_two_sided_ttest_absolute."""
    c = compare(GB_A, GB_B)
    assert c.absolute_lift == pytest.approx(0.29, abs=5e-5)
    assert c.absolute_ci == pytest.approx((0.04538, 0.53462), abs=1e-5)
    assert c.p_value == pytest.approx(0.02016, abs=1e-5)
    assert c.test == "Welch t-test"


def test_delta_method_relative_matches_growthbook() -> None:
    """Relative lift and its delta-method CI equal GrowthBook's test_two_sided_ttest (relative)."""
    c = compare(GB_A, GB_B)
    assert c.relative_lift == pytest.approx(0.70732, abs=1e-5)
    assert c.relative_ci == pytest.approx((-0.03526, 1.44989), abs=1e-5)


def test_mixture_sprt_matches_growthbook_sequential_means() -> None:
    """The always-valid CS and p equal GrowthBook's test_sequential_test_runs (tuning 1000)."""
    a = Sample(n=3000, total=1396.87, total_sq=52377.9767, binomial=False)
    c = compare(a, GB_B)
    assert c.relative_lift == pytest.approx(0.50336, abs=1e-5)
    from livecommerce.growth.experiments.stats import relative_se

    p, ci = mixture_sprt(c.relative_lift or 0, relative_se(a, GB_B), a.n + GB_B.n, tuning=1000)
    assert ci == pytest.approx((-0.55844, 1.56516), abs=1e-5)
    assert p == 1


def test_mixture_sprt_matches_growthbook_sequential_proportions() -> None:
    """Sequential CS on a relative conversion lift equals test_sequential_test_runs_prop."""
    a = Sample(n=3000, total=1396, total_sq=1396, binomial=True)
    b = Sample(n=3461, total=2422, total_sq=2422, binomial=True)
    c = compare(a, b)
    assert c.relative_lift == pytest.approx(0.50386, abs=1e-5)
    assert c.sequential_relative_ci == pytest.approx((0.40098, 0.60675), abs=1e-5)
    assert c.sequential_p_value == pytest.approx(0.0, abs=1e-5)


def test_sequential_interval_is_wider_than_fixed_horizon() -> None:
    """The always-valid interval contains the fixed-horizon one (the price of peeking)."""
    c = compare(GB_A, GB_B)
    assert c.sequential_relative_ci
    assert c.relative_ci
    assert c.sequential_relative_ci[0] < c.relative_ci[0]
    assert c.sequential_relative_ci[1] > c.relative_ci[1]
    assert (c.sequential_p_value or 0) >= (c.p_value or 0)


def test_two_proportion_z_test_worked_example() -> None:
    """140/200 vs 255/340: the worked pooled z = -1.266015; two-sided normal p = erfc(|z|/sqrt 2)."""
    c = compare(
        Sample(n=340, total=255, total_sq=255, binomial=True),
        Sample(n=200, total=140, total_sq=140, binomial=True),
    )
    assert c.test == "two-proportion z-test"
    assert c.p_value == pytest.approx(math.erfc(1.266015 / math.sqrt(2)), abs=1e-6)
    assert c.absolute_lift == pytest.approx(0.70 - 0.75)


def test_holm_textbook_example() -> None:
    """Holm's example p = (0.01, 0.04, 0.03, 0.005): adjusted (0.03, 0.06, 0.06, 0.02)."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]


def test_chi_squared_mendel_peas() -> None:
    """Mendel's 315/108/101/32 against 9:3:3:1 gives chi-squared 0.470, p 0.925 (no SRM)."""
    s = srm([315, 108, 101, 32], [9, 3, 3, 1])
    assert s.chi_squared == pytest.approx(0.470, abs=1e-3)
    assert s.p_value == pytest.approx(0.925, abs=1e-3)
    assert s.status == "ok"


def test_srm_raised_on_skewed_sample() -> None:
    """A 50/50 experiment with 5,000 vs 5,400 exposed users is an SRM error (p < 0.001)."""
    assert srm([5000, 5400], [0.5, 0.5]).status == "error"
    assert srm([5000, 5300], [0.5, 0.5]).status == "warning"
    assert srm([5000, 5050], [0.5, 0.5]).status == "ok"


def test_srm_waits_for_100_users() -> None:
    """Below 100 exposed users no SRM p-value is computed, however skewed."""
    s = srm([10, 80], [0.5, 0.5])
    assert s.status == "not_enough_data"
    assert s.p_value is None


def test_tiny_samples_give_no_numbers() -> None:
    """With fewer than 2 users in an arm, lifts and p-values are None rather than NaN."""
    c = compare(Sample(1, 1, 1, True), Sample(5, 1, 1, True))
    assert c.p_value is None
    assert c.relative_lift is None
