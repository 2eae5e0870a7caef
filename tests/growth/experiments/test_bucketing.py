"""Bucketing: GrowthBook's SDK vectors, distribution, independence, namespaces, stability."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from livecommerce.growth.experiments.bucketing import (
    assign,
    bucket_ranges,
    choose_variation,
    equal_weights,
    hash_value,
    in_namespace,
)

CASES = json.loads((Path(__file__).parent / "growthbook_cases.json").read_text())
USERS = [f"oUser{i:06d}x" for i in range(100_000)]


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash_vectors(seed: str, value: str, version: int, expected: float | None) -> None:
    """hash() equals GrowthBook's published value for v1, v2 and an unknown version."""
    assert hash_value(seed, value, version) == expected


@pytest.mark.parametrize(("name", "args", "expected"), CASES["getBucketRange"])
def test_bucket_range_vectors(name: str, args: list, expected: list[list[float]]) -> None:
    """bucket_ranges() equals GrowthBook's getBucketRange vectors (coverage, weights, fallbacks)."""
    n, coverage, weights = args
    got = bucket_ranges(n, 1.0 if coverage is None else coverage, weights)
    flat = [x for r in got for x in r]
    assert flat == pytest.approx([x for r in expected for x in r]), name


@pytest.mark.parametrize(("name", "n", "ranges", "expected"), CASES["chooseVariation"])
def test_choose_variation_vectors(name: str, n: float, ranges: list, expected: int) -> None:
    """choose_variation() equals GrowthBook's chooseVariation vectors."""
    assert choose_variation(n, [tuple(r) for r in ranges]) == expected, name


@pytest.mark.parametrize(("name", "user", "ns", "expected"), CASES["inNamespace"])
def test_in_namespace_vectors(name: str, user: str, ns: list, expected: bool) -> None:
    """in_namespace() equals GrowthBook's inNamespace vectors."""
    assert in_namespace(user, (ns[0], ns[1], ns[2])) is expected, name


@pytest.mark.parametrize(("n", "expected"), CASES["getEqualWeights"])
def test_equal_weights_vectors(n: int, expected: list[float]) -> None:
    """equal_weights() equals GrowthBook's getEqualWeights vectors."""
    assert equal_weights(n) == pytest.approx(expected, abs=1e-8)


def test_non_ascii_ids_hash_over_utf16_code_units() -> None:
    """A non-BMP character hashes as two UTF-16 units, as JavaScript's charCodeAt sees it."""
    assert hash_value("s", "😀", 2) != hash_value("s", "\ud83d", 2)
    assert hash_value("s", "用户", 2) is not None


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.1, 0.3, 0.6]])
def test_distribution_matches_weights(weights: list[float]) -> None:
    """100,000 synthetic openids split by the weights (chi-squared not rejected at p = 0.001)."""
    counts = [0] * len(weights)
    for u in USERS:
        counts[assign(u, "dist-exp", weights)] += 1
    expected = [w * len(USERS) for w in weights]
    assert stats.chisquare(counts, expected).pvalue > 0.001, counts


def test_two_experiments_are_independent() -> None:
    """Variants of two experiments are independent (contingency chi-squared not rejected)."""
    table = [[0, 0], [0, 0]]
    for u in USERS:
        table[assign(u, "exp-a", [0.5, 0.5])][assign(u, "exp-b", [0.5, 0.5])] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001, table


def test_namespaces_never_overlap() -> None:
    """Two experiments on disjoint ranges of one namespace never share a user."""
    left = {u for u in USERS if assign(u, "a", [0.5, 0.5], namespace=("bubbles", 0, 0.4)) >= 0}
    right = {u for u in USERS if assign(u, "b", [0.5, 0.5], namespace=("bubbles", 0.4, 1)) >= 0}
    assert left
    assert right
    assert not left & right
    assert 0.35 < len(left) / len(USERS) < 0.45


def test_coverage_drops_users_without_moving_the_rest() -> None:
    """Raising coverage only adds users: nobody included at 50 % changes variant at 100 %."""
    for u in USERS[:20_000]:
        half = assign(u, "cov", [0.5, 0.5], coverage=0.5)
        if half >= 0:
            assert assign(u, "cov", [0.5, 0.5], coverage=1.0) == half


def test_assignment_is_stable_across_processes() -> None:
    """A fresh interpreter (a restart) computes the same variants (no per-process hash salt)."""
    code = (
        "from livecommerce.growth.experiments.bucketing import assign;"
        "print([assign(f'u{i}', 'stable', [0.1, 0.3, 0.6]) for i in range(500)])"
    )
    env = {"PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == str([assign(f"u{i}", "stable", [0.1, 0.3, 0.6]) for i in range(500)])
