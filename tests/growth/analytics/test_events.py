"""events.py's and judge.py's pure parts: exact times, the ids the one-pass decode reads."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from livecommerce.growth.analytics import events
from livecommerce.growth.analytics.events import Limits, Rejection, ms_to_dt
from livecommerce.growth.analytics.judge import fast_uuid, parse_fast

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_ms_to_dt_is_exact_and_its_cache_bounded() -> None:
    rng = random.Random(7)
    values = [0, 999, 1000, -1, -1001, 1_764_540_000_123, 253_402_300_799_999]
    values += [rng.randint(-(10**12), 253_402_300_799_999) for _ in range(20_000)]
    for ms in values:
        assert ms_to_dt(ms) == EPOCH + timedelta(milliseconds=ms), ms
    assert len(events._SECONDS) <= events._SECONDS_MAX


def test_fast_uuid_reads_what_msgspec_reads_and_nothing_else() -> None:
    u = uuid.uuid4()
    for text in (str(u), str(u).upper(), u.hex, u.hex.upper()):
        got = fast_uuid(text)
        assert got is not None, text
        assert (got, got.int, str(got)) == (u, u.int, str(u)), text
    for text in (
        "", "x", "not-a-uuid", "{" + str(u) + "}", "urn:uuid:" + str(u), "----" + u.hex,
        str(u)[:-1], str(u) + "0", "zz" + str(u)[2:], u.hex[:-1], str(u).replace("-", "_"),
    ):  # fmt: skip
        assert fast_uuid(text) is None, text


def one_pass(body: bytes) -> tuple[list[Any], list[Rejection]]:
    """``body`` through the one-pass decode (a viewer, no clock offset): (rows, rejections)."""
    got = parse_fast(
        body, actor="viewer:v", user_id=None, received_ms=1_764_540_000_000, offset_ms=0,
        limits=Limits(2048, 60_000, 86_400_000), max_events=100,
    )  # fmt: skip
    assert got is not None
    return got[0], got[1]


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("{%s}", True),  # uuid.UUID's other forms, as the field-by-field path reads them
        ("urn:uuid:%s", True),
        ("%s!", False),
        ("not-a-uuid", False),
    ],
)
def test_one_pass_reads_ids_as_the_field_path_does(text: str, stored: bool) -> None:
    u = uuid.UUID(int=uuid.uuid4().int)
    ev = {"id": text % u if "%s" in text else text, "type": "page_view"}
    body = orjson.dumps({"events": [ev, {"id": str(uuid.uuid4()), "type": "share"}]})
    rows, rejected = one_pass(body)
    if stored:
        assert rows[0][0] == u
        assert not rejected
    else:
        assert [(r.index, r.code) for r in rejected] == [(0, "bad_uuid")]
        assert len(rows) == 1


@pytest.mark.parametrize("form", ["canonical", "upper", "bare", "braces"])
def test_only_rfc_9562_variant_ids_are_read_in_every_form(form: str) -> None:
    """The one-pass decode reads the variant from the text; it must agree with the int."""
    ids = [uuid.UUID(int=uuid.uuid4().int & ~(0b111 << 61) | (v << 61)) for v in range(8)]
    texts = {
        "canonical": str, "upper": lambda u: str(u).upper(), "bare": lambda u: u.hex,
        "braces": lambda u: "{" + str(u) + "}",
    }  # fmt: skip
    body = orjson.dumps({"events": [{"id": texts[form](u), "type": "share"} for u in ids]})
    rows, rejected = one_pass(body)
    assert [r[0] for r in rows] == [u for u in ids if (u.int >> 62) & 0b11 == 0b10]
    assert {r.index for r in rejected} == {i for i, u in enumerate(ids) if (u.int >> 62) & 3 != 2}
    assert {r.code for r in rejected} == {"bad_uuid"}
