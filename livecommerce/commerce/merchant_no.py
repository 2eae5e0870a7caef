"""Merchant numbers sent to WeChat Pay (``out_trade_no``, ``out_refund_no``) and row encoding.

A number is a two-letter prefix and the row id in 16 digits (18 of WeChat Pay's allowed
``[0-9A-Za-z]``), fixed per row so every retry of a call is idempotent at WeChat Pay.
"""

from __future__ import annotations

from typing import Any

import asyncpg


def make(prefix: str, row_id: int) -> str:
    """``prefix`` + the id in 16 digits (``LC0000000000000042``)."""
    return f"{prefix}{row_id:016d}"


def parse(prefix: str, value: object) -> int | None:
    """The row id of a number made by :func:`make` with ``prefix``; None for anything else."""
    if not isinstance(value, str) or len(value) != 18 or not value.startswith(prefix):
        return None
    digits = value[2:]
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def row_json(row: asyncpg.Record, times: tuple[str, ...]) -> dict[str, Any]:
    """The row as a dict, the ``times`` columns as ISO 8601 strings (or None)."""
    out = {k: row[k] for k in row.keys() if k not in times}  # noqa: SIM118 (Record)
    for k in times:
        out[k] = row[k].isoformat() if row[k] is not None else None
    return out
