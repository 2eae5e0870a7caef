"""Experiment statistics: lifts with confidence intervals, p-values, corrections, health checks.

Pure functions over per-variant sufficient statistics (n, sum, sum of squares); the
distributions and the Holm correction come from SciPy / statsmodels. docs/experiments.md gives
each formula with its source; tests/growth/experiments/test_stats.py checks the numbers against
GrowthBook's stats-engine tests and textbook examples, not against the libraries called here.

Conventions: variant 0 is the control; ``alpha`` is two-sided (0.05 → 95 % intervals); lifts are
treatment minus control (absolute) and treatment / control - 1 (relative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

# GrowthBook's default "estimated sample size" for its sequential confidence sequences.
SEQUENTIAL_TUNING = 5000
SRM_MIN_USERS = 100
SRM_WARN_P = 0.01
SRM_ERROR_P = 0.001


@dataclass(frozen=True, slots=True)
class Sample:
    """One variant's data for one metric: ``n`` exposed users, the sum and sum of squares of
    the per-user values (0/1 for a binomial metric, e.g. fen for GMV)."""

    n: int
    total: float
    total_sq: float
    binomial: bool

    @property
    def mean(self) -> float:
        """The conversion rate (binomial) or the mean per user; 0 with no users."""
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """p(1-p) for a binomial metric, the unbiased sample variance otherwise (0 if n < 2)."""
        if self.binomial:
            p = self.mean
            return p * (1 - p)
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.total**2 / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment against the control for one metric (None where undefined, e.g. no users).

    ``test`` names the fixed-horizon test (``two-proportion z-test`` or ``Welch t-test``);
    the ``sequential_*`` fields come from the mixture SPRT and stay valid under peeking.
    """

    absolute_lift: float | None
    absolute_ci: tuple[float, float] | None
    relative_lift: float | None
    relative_ci: tuple[float, float] | None
    p_value: float | None
    test: str
    sequential_p_value: float | None
    sequential_relative_ci: tuple[float, float] | None


def welch_df(a: Sample, b: Sample) -> float:
    """Welch–Satterthwaite degrees of freedom for the difference of two means."""
    va, vb = a.variance / a.n, b.variance / b.n
    den = va**2 / (a.n - 1) + vb**2 / (b.n - 1)
    return (va + vb) ** 2 / den if den > 0 else math.inf


def relative_se(a: Sample, b: Sample) -> float:
    """Delta-method standard error of mean_b / mean_a - 1 (independent samples).

    Var ≈ var_b / (n_b μ_a²) + μ_b² var_a / (n_a μ_a⁴).
    """
    ma, mb = a.mean, b.mean
    return math.sqrt(b.variance / (b.n * ma**2) + mb**2 * a.variance / (a.n * ma**4))


def mixture_sprt(
    estimate: float, se: float, n: int, alpha: float = 0.05, tuning: float = SEQUENTIAL_TUNING
) -> tuple[float, tuple[float, float]]:
    """Always-valid p-value and confidence sequence of a normal-mixture SPRT.

    The Gaussian-mixture martingale of Robbins (1970) / Johari et al. (mSPRT), in the
    parameterisation of Howard et al. (2021) and Waudby-Smith et al. (arXiv:2103.06476, eqs 9,
    155, 161), as GrowthBook's frequentist sequential engine uses it: ρ from the tuning
    parameter (the sample size at which the boundary is tightest), σ² = se²·n,
    E = exp(ρ² n z² / (2(nρ²+1))) / sqrt(nρ²+1) with z = estimate / se, p = min(1, 1/E);
    the sequence is estimate ± σ·sqrt(2(nρ²+1)·ln(sqrt(nρ²+1)/α) / (n²ρ²)).

    Args:
        estimate: the effect estimate (here the relative lift).
        se: its standard error.
        n: total users in both arms.
    Returns:
        (p, (low, high)).
    """
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    tr = n * rho2 + 1
    st2 = (estimate / se) ** 2 * n if se > 0 else math.inf
    log_e = rho2 * st2 / (2 * tr) - 0.5 * math.log(tr)
    p = 1.0 if log_e <= 0 else math.exp(-log_e)
    s2 = se**2 * n
    half = math.sqrt(s2) * math.sqrt(2 * tr * math.log(math.sqrt(tr) / alpha) / (n**2 * rho2))
    return min(1.0, p), (estimate - half, estimate + half)


def compare(control: Sample, treatment: Sample, alpha: float = 0.05) -> Comparison:
    """Treatment vs control: lifts with (1-alpha) intervals and two-sided p-values.

    Binomial metrics: absolute CI by the unpooled normal (Wald) interval, p by the pooled
    two-proportion z-test; relative CI by the delta method with the normal quantile.
    Continuous metrics: Welch's t-test, with the Welch df for both the absolute and (delta
    method) relative intervals. The relative numbers are None when the control mean is 0.
    """
    a, b = control, treatment
    binomial = a.binomial
    test = "two-proportion z-test" if binomial else "Welch t-test"
    if a.n < 2 or b.n < 2:
        return Comparison(None, None, None, None, None, test, None, None)
    diff = b.mean - a.mean
    se = math.sqrt(a.variance / a.n + b.variance / b.n)
    if binomial:
        q = float(sps.norm.ppf(1 - alpha / 2))
        if a.total + b.total in (0, a.n + b.n):
            p_value: float | None = 1.0
        else:
            _, pv = proportions_ztest([b.total, a.total], [b.n, a.n])
            p_value = float(pv)
    else:
        df = welch_df(a, b)
        q = (
            float(sps.t.ppf(1 - alpha / 2, df))
            if math.isfinite(df)
            else float(sps.norm.ppf(1 - alpha / 2))
        )
        if se > 0:
            res = sps.ttest_ind_from_stats(
                b.mean,
                math.sqrt(b.variance),
                b.n,
                a.mean,
                math.sqrt(a.variance),
                a.n,
                equal_var=False,
            )
            p_value = float(res.pvalue)
        else:
            p_value = None
    abs_ci = (diff - q * se, diff + q * se)
    if a.mean == 0:
        return Comparison(diff, abs_ci, None, None, p_value, test, None, None)
    rel = b.mean / a.mean - 1
    rse = relative_se(a, b)
    rel_ci = (rel - q * rse, rel + q * rse)
    seq_p: float | None = None
    seq_ci: tuple[float, float] | None = None
    if rse > 0:
        seq_p, seq_ci = mixture_sprt(rel, rse, a.n + b.n, alpha)
    return Comparison(diff, abs_ci, rel, rel_ci, p_value, test, seq_p, seq_ci)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    if not p_values:
        return []
    _, adjusted, _, _ = multipletests(list(p_values), method="holm")
    return [float(x) for x in adjusted]


@dataclass(frozen=True, slots=True)
class Srm:
    """Sample-ratio mismatch: chi-squared goodness of fit of exposed users to the weights.

    ``status``: ``"ok"``, ``"warning"`` (p < 0.01), ``"error"`` (p < 0.001), or
    ``"not_enough_data"`` (fewer than 100 exposed users: no p-value computed).
    """

    p_value: float | None
    chi_squared: float | None
    status: str


def srm(counts: Sequence[int], weights: Sequence[float]) -> Srm:
    """The SRM check over per-variant exposed counts and the configured weights."""
    total = sum(counts)
    if total < SRM_MIN_USERS:
        return Srm(None, None, "not_enough_data")
    wsum = sum(weights)
    expected = [w / wsum * total for w in weights]
    res = sps.chisquare(list(counts), expected)
    p = float(res.pvalue)
    status = "error" if p < SRM_ERROR_P else "warning" if p < SRM_WARN_P else "ok"
    return Srm(p, float(res.statistic), status)
