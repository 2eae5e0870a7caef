"""Schemathesis over every documented operation of the running app, with every built-in check.

The app runs on a real port (real PostgreSQL and Redis); the Schemathesis CLI runs in a child
process against its /api/openapi.json, once per principal (viewer, user, host, agent), with all checks:
no 5xx, responses conform to their schema and content type, every status is documented,
negative data is rejected, valid data accepted, auth is not ignored, and so on.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.commerce.conftest import Shop
from tests.support import http

ST = Path(sys.executable).with_name("st")
MAX_EXAMPLES = os.environ.get("LIVECOMMERCE_SCHEMATHESIS_EXAMPLES", "12")


def config(doc: dict[str, Any]) -> str:
    """schemathesis.toml: `positive_data_acceptance` expects 2xx/401/403/404/409 for any
    request that fits the schema; operations whose document lists `x-rules` (a 400 for a rule
    no schema can say: ownership, config limits, cross-field rules) may also answer 400."""
    ruled = sorted(
        op["operationId"]
        for item in doc["paths"].values()
        for op in item.values()
        if op.get("x-rules")
    )
    ids = ", ".join(f'"{i}"' for i in ruled)
    return (
        f"[[operations]]\ninclude-operation-id = [{ids}]\n"
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", '
        '"404", "409"]\n'
    )


async def _run(url: str, token: str, tmp: Path) -> tuple[int, str]:
    _, doc = await http("GET", url + "/api/openapi.json")
    assert isinstance(doc, dict)
    (tmp / "schemathesis.toml").write_text(config(doc))
    proc = await asyncio.create_subprocess_exec(
        str(ST), "--config-file", str(tmp / "schemathesis.toml"), "run", f"{url}/api/openapi.json", "--checks", "all",
        "--max-examples", MAX_EXAMPLES, "--seed", "20261130", "--workers", "1",
        "--generation-database", "none", "--request-timeout", "20",
        "--phases", "examples,coverage,fuzzing", "--no-color", "--suppress-health-check", "all",
        "-H", f"Authorization: Bearer {token}",
        "--report", "junit", "--report-dir", str(tmp),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("principal", ["viewer", "user", "host", "agent"])
async def test_schemathesis_all_checks_pass(shop: Shop, principal: str, tmp_path: Path) -> None:
    """Every documented operation passes every Schemathesis check as this principal."""
    host_id, host = await shop.host()
    await shop.goods(host_id)
    if principal == "host":
        token = host
    elif principal == "agent":  # a customer-service agent of the host's shop
        status, agent = await http(
            "POST", shop.url + "/api/host/support/agents", headers={"Authorization": f"Bearer {host}"},
            json={"name": "Fuzz", "login": "fuzz-agent", "password": "fuzz-password"},
        )  # fmt: skip
        assert status == 201, agent
        # An agent session token of the password version a new account has (0; docs/support.md)
        token = issue_token(DEV_SECRET, "agent", agent["id"], 3600, session=0)  # type: ignore[index]
    elif principal == "user":
        token = await shop.login()
    else:
        _, answer = await http("POST", shop.url + "/api/tokens/viewer")
        token = answer["token"]  # type: ignore[index]
    assert token != issue_token(DEV_SECRET, "viewer", "x", 1)
    code, out = await _run(shop.url, token, tmp_path)
    assert code == 0, out[-20000:]
