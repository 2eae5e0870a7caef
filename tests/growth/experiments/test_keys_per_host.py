"""Experiment keys are unique per host (migration 0023), over real HTTP on real PostgreSQL and
Redis: two shops run the same key side by side, each counting only its own viewers; another
host's key is never revealed; assignments can be scoped to a host or a room."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.growth.experiments.bucketing import assign
from tests.realtime.conftest import World, make_world
from tests.support import AppServer, http

KEY = "bubble-price"
VARIANTS = [{"key": "a"}, {"key": "b"}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create(server: AppServer, token: str, key: str, *, start: bool) -> tuple[int, Any]:
    status, exp = await http(
        "POST",
        server.url + "/api/host/experiments",
        json={"key": key, "variants": VARIANTS},
        headers=bearer(token),
    )
    if status != 201 or not start:
        return status, exp
    status, exp = await http(
        "POST", f"{server.url}/api/host/experiments/{exp['id']}/start", headers=bearer(token)
    )
    assert status == 200, exp
    return 201, exp


async def viewers(pool: asyncpg.Pool, n: int) -> list[tuple[int, str, str]]:
    """``n`` users: (id, openid, token as login issues it)."""
    rows = await pool.fetch(
        "INSERT INTO users (openid) SELECT $1 || g FROM generate_series(0, $2 - 1) g"
        " RETURNING id, openid",
        "oKeys" + uuid.uuid4().hex[:6] + "-",
        n,
    )
    return [
        (r["id"], r["openid"], issue_token(DEV_SECRET, "user", r["id"], 3600, openid=r["openid"]))
        for r in rows
    ]


def variant_key(openid: str, key: str) -> str:
    """The user's variant of a 50/50 experiment seeded with its key (the default seed)."""
    return ["a", "b"][assign(openid, key, [0.5, 0.5], 1.0, None)]


async def test_another_hosts_key_is_never_revealed(server: AppServer, pool: asyncpg.Pool) -> None:
    """Whatever another host has under a key (a draft, a running or a stopped experiment), a
    host creating that key gets 201 and its own experiment; only its own duplicate is 409."""
    a, b = await make_world(pool), await make_world(pool)
    for i, state in enumerate(("draft", "running", "stopped")):
        key = f"secret-{i}"
        status, theirs = await create(server, a.host_token, key, start=state != "draft")
        assert status == 201, theirs
        if state == "stopped":
            url = f"{server.url}/api/host/experiments/{theirs['id']}/stop"
            assert (await http("POST", url, headers=bearer(a.host_token)))[0] == 200
        status, mine = await create(server, b.host_token, key, start=False)
        assert status == 201, (state, mine)
        assert (mine["key"], mine["state"], mine["description"]) == (key, "draft", "")
        assert mine["id"] != theirs["id"]
        status, again = await create(server, b.host_token, key, start=False)
        assert (status, again["error"]["code"]) == (409, "key_taken")
    rows = await pool.fetch("SELECT host_id, key FROM experiments ORDER BY id")
    assert [(r["host_id"], r["key"]) for r in rows] == [
        (h, f"secret-{i}") for i in range(3) for h in (a.host_id, b.host_id)
    ]


async def test_assignments_can_be_scoped_to_a_host_or_room(
    server: AppServer, pool: asyncpg.Pool
) -> None:
    """Unscoped, the answer holds both hosts' experiments with one key, told apart by
    `host_id`; `host_id` / `room_id` keep one host's; an unknown room is 404; both are 400."""
    a, b = await make_world(pool), await make_world(pool)
    _, exp_a = await create(server, a.host_token, KEY, start=True)
    _, exp_b = await create(server, b.host_token, KEY, start=True)
    ((_, openid, token),) = await viewers(pool, 1)
    url = server.url + "/api/experiments/assignments"

    async def answer(query: str = "") -> dict[str, Any]:
        status, body = await http("GET", url + query, headers=bearer(token))
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    everything = await answer()
    pairs = {(x["experiment_id"], x["host_id"], x["key"]) for x in everything["assignments"]}
    assert pairs == {(exp_a["id"], a.host_id, KEY), (exp_b["id"], b.host_id, KEY)}
    defs = {(d["id"], d["host_id"], d["key"]) for d in everything["definitions"]}
    assert defs == pairs
    expected = variant_key(openid, KEY)
    assert {x["variant_key"] for x in everything["assignments"]} == {expected}
    for query, exp, host in (
        (f"?host_id={a.host_id}", exp_a, a.host_id),
        (f"?room_id={b.room_id}", exp_b, b.host_id),
    ):
        scoped = await answer(query)
        assert [(x["experiment_id"], x["host_id"]) for x in scoped["assignments"]] == [
            (exp["id"], host)
        ]
        assert [d["id"] for d in scoped["definitions"]] == [exp["id"]]
    assert (await answer("?host_id=987654321"))["assignments"] == []
    status, body = await http("GET", url + "?room_id=987654321", headers=bearer(token))
    assert (status, body["error"]["code"]) == (404, "not_found")
    both = f"?host_id={a.host_id}&room_id={a.room_id}"
    status, body = await http("GET", url + both, headers=bearer(token))
    assert (status, body["error"]["field"]) == (400, "room_id")


async def _impressions(server: AppServer, token: str, events: list[dict[str, Any]]) -> None:
    evs = [
        {"id": str(uuid.uuid4()), "type": "bubble_impression", "push_seq": 1, **e} for e in events
    ]
    status, body = await http(
        "POST", server.url + "/api/events", json={"events": evs}, headers=bearer(token)
    )
    assert status == 200, body
    assert body["stored"] == len(evs)


async def _exposed(pool: asyncpg.Pool) -> dict[int, set[tuple[int, str]]]:
    rows = await pool.fetch("SELECT experiment_id, user_id, variant FROM experiment_exposures")
    out: dict[int, set[tuple[int, str]]] = {}
    for r in rows:
        out.setdefault(r["experiment_id"], set()).add((r["user_id"], "ab"[r["variant"]]))
    return out


async def test_two_hosts_run_one_key_independently(server: AppServer, pool: asyncpg.Pool) -> None:
    """Both hosts create and run `bubble-price`. A bubble_impression's key is read in the
    host of its room (else of its goods): each experiment's exposures and results hold only its
    own shop's viewers, and a key the event's host does not have records nothing."""
    a, b = await make_world(pool), await make_world(pool)
    _, exp_a = await create(server, a.host_token, KEY, start=True)
    _, exp_b = await create(server, b.host_token, KEY, start=True)
    _, only_b = await create(server, b.host_token, "only-b", start=True)
    (a1, a2, a3, b1, b2, b3) = await viewers(pool, 6)

    def claim(user: tuple[int, str, str], world: World, *, room: bool = True) -> dict[str, Any]:
        where: dict[str, Any] = {"goods_id": world.goods_ids[0]}
        if room:
            where["room_id"] = world.room_id
        return {**where, "variants": {KEY: variant_key(user[1], KEY)}}

    # a1 also claims `only-b` in A's room (A has no such experiment: nothing); b1 in B's room.
    await _impressions(server, a1[2], [
        {**claim(a1, a), "variants": {KEY: variant_key(a1[1], KEY), "only-b": "a"}}
    ])  # fmt: skip
    await _impressions(server, a2[2], [claim(a2, a)])
    await _impressions(server, a3[2], [claim(a3, a, room=False)])  # goods only: A's goods
    await _impressions(server, b1[2], [
        {**claim(b1, b), "variants": {KEY: variant_key(b1[1], KEY),
                                      "only-b": variant_key(b1[1], "only-b")}}
    ])  # fmt: skip
    await _impressions(server, b2[2], [claim(b2, b)])
    # b3: B's room wins over a goods id of A's on the same event.
    await _impressions(server, b3[2], [{**claim(b3, b), "goods_id": a.goods_ids[0]}])

    expected = {
        exp_a["id"]: {(u[0], variant_key(u[1], KEY)) for u in (a1, a2, a3)},
        exp_b["id"]: {(u[0], variant_key(u[1], KEY)) for u in (b1, b2, b3)},
        only_b["id"]: {(b1[0], variant_key(b1[1], "only-b"))},
    }
    deadline = asyncio.get_running_loop().time() + 10
    while await _exposed(pool) != expected:
        assert asyncio.get_running_loop().time() < deadline, await _exposed(pool)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # nothing else arrives late
    assert await _exposed(pool) == expected
    sticky = await pool.fetch("SELECT experiment_id, user_id FROM experiment_assignments")
    assert {(r["experiment_id"], r["user_id"]) for r in sticky} == {
        (e, u) for e, users in expected.items() for u, _ in users
    }

    for world, exp, mine in ((a, exp_a, (a1, a2, a3)), (b, exp_b, (b1, b2, b3))):
        status, res = await http(
            "GET",
            f"{server.url}/api/host/experiments/{exp['id']}/results",
            headers=bearer(world.host_token),
        )
        assert status == 200, res
        per_variant = [sum(variant_key(u[1], KEY) == v for u in mine) for v in "ab"]
        assert [v["users"] for v in res["variants"]] == per_variant
        assert res["multi_variant_users"] == 0
