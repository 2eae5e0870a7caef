"""Micro-benchmark: decode + validate request bodies, and serialize responses, both ways.

"before" is the pre-contract path, kept here verbatim in spirit: ``orjson.loads`` then the hand
checks ``livecommerce/inputs.py`` did (object, allowed keys, each field's type and range).
"after" is the typed contract: one ``msgspec.json.Decoder(Model)`` pass (livecommerce.api).
Responses: ``orjson.dumps(dict)`` before; ``to(Model, dict)`` + msgspec encode after (the
contract converts a service's dict through the response model, which also drops unknown keys).

    .venv/bin/python bench/contract_decode.py [--json out.json]

Prints a Markdown table (ns per call, best of 5 repeats) and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import timeit
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))  # timer_stats.machine()

from timer_stats import machine

from livecommerce.api.contract import decode_body, encode, to
from livecommerce.commerce.goods_api import GoodsCreate
from livecommerce.commerce.orders_api import Order, OrderCreate
from livecommerce.errors import ValidationError

MAX_ID = 2**63 - 1
ORDER_BODY = b'{"goods_id": 1234567, "quantity": 2}'
GOODS_BODY = orjson.dumps({
    "title": "Hand-picked Longjing tea, 250 g", "price_fen": 8800, "stock": 500,
    "description": "Spring harvest. " * 20, "category": "food",
    "images": ["https://img.example/tea-1.jpg", "https://img.example/tea-2.jpg"],
    "room_ids": [12, 13], "status": "on_sale",
})  # fmt: skip
NOW = dt.datetime.now(dt.UTC).isoformat()
ORDER_ROW: dict[str, Any] = {
    "id": 98765, "out_trade_no": "LC0000000000098765", "user_id": 42, "goods_id": 1234567,
    "host_id": 7, "quantity": 2, "unit_price_fen": 8800, "total_fen": 17600,
    "title": "Hand-picked Longjing tea, 250 g", "image": "https://img.example/tea-1.jpg",
    "status": "pending_payment", "carrier": None, "tracking_no": None, "transaction_id": None,
    "cancel_reason": None, "expires_at": NOW, "paid_at": None, "shipped_at": None,
    "completed_at": None, "cancelled_at": None, "refunded_at": None, "created_at": NOW,
    "updated_at": NOW,
}  # fmt: skip


# -- the pre-contract path (orjson + livecommerce/inputs.py's checks) -------------------------


def _object(raw: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("body", "must be valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    for key in data:
        if key not in allowed:
            raise ValidationError(str(key)[:64], "unknown field")
    return data


def _int(data: dict[str, Any], name: str, low: int, high: int, required: bool = True) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, "must be an integer")
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value


def _text(data: dict[str, Any], name: str, max_len: int, min_len: int = 0, required: bool = False,
          choices: tuple[str, ...] | None = None) -> Any:  # fmt: skip
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return None
    if not isinstance(value, str) or "\x00" in value or not min_len <= len(value) <= max_len:
        raise ValidationError(name, "bad text")
    if choices is not None and value not in choices:
        raise ValidationError(name, "bad choice")
    return value


def before_order(raw: bytes) -> tuple[int, int]:
    body = _object(raw, ("goods_id", "quantity"))
    return _int(body, "goods_id", 1, MAX_ID), _int(body, "quantity", 1, 99)


def before_goods(raw: bytes) -> dict[str, Any]:
    body = _object(raw, ("title", "description", "images", "price_fen", "stock", "category",
                         "status", "room_ids"))  # fmt: skip
    images = body.get("images")
    if images is not None:
        if not isinstance(images, list) or len(images) > 9:
            raise ValidationError("images", "bad")
        for item in images:
            if (
                not isinstance(item, str)
                or not 8 <= len(item) <= 500
                or not item.startswith(("https://", "http://"))
                or "\x00" in item
            ):
                raise ValidationError("images", "bad")  # fmt: skip
    rooms = body.get("room_ids")
    if rooms is not None:
        if not isinstance(rooms, list) or len(rooms) > 20:
            raise ValidationError("room_ids", "bad")
        for item in rooms:
            if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_ID:
                raise ValidationError("room_ids", "bad")
    return {
        "title": _text(body, "title", 200, 1, required=True),
        "description": _text(body, "description", 5000),
        "price_fen": _int(body, "price_fen", 0, 10**10),
        "stock": _int(body, "stock", 0, 10**7),
        "category": _text(body, "category", 50),
        "status": _text(body, "status", 20, choices=("draft", "on_sale", "off_sale")),
        "images": images,
        "room_ids": sorted(set(rooms)) if rooms else rooms,
    }


def bench(fn: Any, number: int) -> float:
    """Best-of-5 nanoseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    n = args.number
    assert decode_body(ORDER_BODY, OrderCreate).quantity == before_order(ORDER_BODY)[1]
    assert decode_body(GOODS_BODY, GoodsCreate).title == before_goods(GOODS_BODY)["title"]
    rows = [
        ("order body (2 fields), decode + validate", bench(lambda: before_order(ORDER_BODY), n),
         bench(lambda: decode_body(ORDER_BODY, OrderCreate), n)),
        ("goods body (8 fields, lists, 400 B text), decode + validate",
         bench(lambda: before_goods(GOODS_BODY), n),
         bench(lambda: decode_body(GOODS_BODY, GoodsCreate), n)),
        ("order response (23 fields), serialize", bench(lambda: orjson.dumps(ORDER_ROW), n),
         bench(lambda: encode(to(Order, ORDER_ROW), Order), n)),
    ]  # fmt: skip
    print("| case | before: orjson + hand checks (ns) | after: msgspec model (ns) | after/before |")
    print("|---|---:|---:|---:|")
    for name, old, new in rows:
        print(f"| {name} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |")
    out = args.json or Path(__file__).parent / "results" / f"contract-decode-{dt.date.today()}.json"
    out.write_bytes(orjson.dumps({
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
        "number": n, "rows": [{"case": a, "before_ns": b, "after_ns": c} for a, b, c in rows],
    }, option=orjson.OPT_INDENT_2))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
