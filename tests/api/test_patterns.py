"""Every `pattern` of the OpenAPI document (msgspec checks them with Python's `re.search`) ends
where the value ends: Python's `$` also matches before a final newline, so `^[a-z]+$` took
"abc\n" as a value of its own (an experiment key, an agent login, an idempotency key)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecommerce.api.decode import _DIGITS, IDEMPOTENCY_KEY
from tests.api.test_security import document
from tests.support import AppServer


def patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from patterns(item)


def takes_a_final_newline(pattern: str, value: str) -> bool:
    """Whether a value that matches ``pattern`` still matches with a newline added, where the
    pattern does not take a newline inside the value (its character classes refuse it)."""
    return (
        re.search(pattern, value + "\n") is not None and re.fullmatch(pattern, value + "\n") is None
    )


async def test_no_pattern_takes_a_final_newline(server: AppServer) -> None:
    found = sorted(set(patterns(await document(server))))
    assert len(found) >= 15, found
    bad: list[str] = []

    @settings(max_examples=1, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        for pattern in found:
            value = data.draw(st.from_regex(pattern, fullmatch=True))
            if takes_a_final_newline(pattern, value):
                bad.append(pattern)

    check()
    assert bad == [], bad


def test_the_raw_decoders_refuse_a_final_newline() -> None:
    assert _DIGITS.match("12")
    assert not _DIGITS.match("12\n")
    assert IDEMPOTENCY_KEY.match("key-1")
    assert not IDEMPOTENCY_KEY.match("key-1\n")


def test_an_experiment_key_with_a_final_newline_is_refused() -> None:
    from livecommerce.growth.experiments.api import Key

    assert msgspec.convert("price_test", Key) == "price_test"
    try:
        msgspec.convert("price_test\n", Key)
    except msgspec.ValidationError:
        pass
    else:
        raise AssertionError("a key ending in a newline was taken")
