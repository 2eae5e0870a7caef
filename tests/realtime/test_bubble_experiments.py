"""Bubble experiments over real sockets on real PostgreSQL and Redis: each viewer its variant,
once, again after a resume; the socket's variant equals the REST assignment (sticky too);
scheduled variant pushes; exposures from impressions; bad input and ownership."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from livecommerce import keys
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.growth.experiments.bucketing import assign
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer, http

CREATIVES = [
    {"variant": "a"},
    {"variant": "b", "title": "Spring tea, 20% off", "price_display": "¥8.0", "show_seconds": 45},
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def experiment(
    server: AppServer, world: World, key: str, *, start: bool = True, **spec: Any
) -> dict[str, Any]:
    body = {"key": key, "variants": [{"key": "a"}, {"key": "b"}], **spec}
    status, exp = await http(
        "POST", server.url + "/api/host/experiments", json=body, headers=world.host_headers()
    )
    assert status == 201, exp
    if start:
        url = f"{server.url}/api/host/experiments/{exp['id']}/start"
        status, exp = await http("POST", url, headers=world.host_headers())
        assert status == 200, exp
    assert isinstance(exp, dict)
    return exp


async def users(pool: asyncpg.Pool, n: int, prefix: str) -> list[tuple[int, str]]:
    rows = await pool.fetch(
        "INSERT INTO users (openid) SELECT $1 || g FROM generate_series(0, $2 - 1) g"
        " RETURNING id, openid",
        prefix + uuid.uuid4().hex[:6] + "-",
        n,
    )
    return [(r["id"], r["openid"]) for r in rows]


def user_token(user_id: int, openid: str | None) -> str:
    """A user token as login issues it (with the openid claim), or an older one without."""
    return issue_token(DEV_SECRET, "user", user_id, 3600, openid=openid)


async def rest_variant(server: AppServer, token: str, exp_id: int) -> str | None:
    status, body = await http(
        "GET", server.url + "/api/experiments/assignments", headers=bearer(token)
    )
    assert status == 200, body
    found = [a for a in body["assignments"] if a["experiment_id"] == exp_id]
    assert len(found) == 1
    return found[0]["variant_key"]  # type: ignore[no-any-return]


async def push(server: AppServer, world: World, **extra: Any) -> tuple[int, Any]:
    return await http(
        "POST", f"{server.url}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[0], "show_seconds": 30, **extra},
        headers=world.host_headers(),
    )  # fmt: skip


def check_creative(frame: dict[str, Any], variant: str) -> None:
    assert frame["experiment"]["variant"] == variant
    assert "creatives" not in frame["experiment"]
    assert "weights" not in frame["experiment"]
    if variant == "b":
        assert frame["goods"]["title"] == "Spring tea, 20% off"
        assert frame["goods"]["price_display"] == "¥8.0"
        assert frame["show_seconds"] == 45
    else:
        assert frame["goods"]["title"] == "Goods 0"
        assert "price_display" not in frame["goods"]
        assert frame["show_seconds"] == 30
    assert frame["goods"]["price_fen"] == 1000  # what is charged never changes


async def test_each_viewer_gets_its_variant_once_and_again_after_resume(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Users (token with and without the openid claim), anonymous viewers and the host each get
    one frame of the push's seq with the creative of their variant; a user's variant equals
    GET /api/experiments/assignments; the node encoded each variant once; viewers that drop
    and resume get the missed variant push again in their variant, with no gap or duplicate."""
    exp = await experiment(server, world, "bubble-title")
    people = await users(pool, 24, "oLive")
    tokens = [user_token(u, o if i % 4 else None) for i, (u, o) in enumerate(people)]
    anon = [world.viewer_token() for _ in range(6)]
    viewers = [TestViewer(server.ws_url(), world.room_id, t) for t in [*tokens, *anon]]
    host = TestViewer(server.ws_url(), world.room_id, world.host_token)
    await asyncio.gather(*(v.connect() for v in [*viewers, host]))
    expected = [await rest_variant(server, t, exp["id"]) for t in tokens]
    anon_subjects = [_subject(t) for t in anon]
    expected += [["a", "b"][assign(s, exp["seed"], exp["weights"])] for s in anon_subjects]
    assert set(expected) == {"a", "b"}

    status, body = await push(server, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201, body
    seq = body["seq"]
    everyone = [*viewers, host]
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 1 for v in everyone))
    for v, want in zip(viewers, expected, strict=True):
        (frame,) = v.of_type("goods_push")
        assert frame["seq"] == seq
        check_creative(frame, want)
        assert frame["experiment"]["included"] is True
    (hosted,) = host.of_type("goods_push")
    check_creative(hosted, "a")
    assert hosted["experiment"]["included"] is False
    assert server.app[keys.HUB].bubbles.encoded == 3  # a, b, and the control for outsiders

    # A later joiner sees its variant in the welcome's bubble.
    late = TestViewer(server.ws_url(), world.room_id, tokens[1])
    welcome = await late.connect()
    check_creative(welcome["bubble"], expected[1])
    await late.close()

    # Half drop; a variant push and a plain push go out; they resume.
    dropped = viewers[::2]
    for v in dropped:
        await v.drop()
    status, again = await push(server, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201
    status, plain = await push(server, world)
    assert status == 201
    await asyncio.gather(*(v.connect(resume=True) for v in dropped))
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 3 for v in viewers))
    for v, want in zip(viewers, expected, strict=True):
        pushes = v.of_type("goods_push")
        assert [f["seq"] for f in pushes] == [seq, again["seq"], plain["seq"]]
        check_creative(pushes[0], want)
        check_creative(pushes[1], want)
        assert "experiment" not in pushes[2]
        got = v.seqs()  # every frame once, in order (presence frames may come between)
        assert got == list(range(got[0], got[-1] + 1))
        assert got[0] <= seq
    for v in everyone:
        await v.close()


def _subject(token: str) -> str:
    from livecommerce.auth.tokens import verify_token

    return verify_token(DEV_SECRET, token).subject


async def test_sticky_assignment_wins_over_a_weight_change(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """Users exposed under 50/50 keep their variant on the socket after the weights move to
    10/90 (as REST does); users never exposed follow the new weights."""
    exp = await experiment(server, world, "sticky-bubble")
    people = await users(pool, 40, "oSticky")
    tokens = [user_token(u, o) for u, o in people]
    exposed = tokens[:20]
    for t in exposed:
        url = f"{server.url}/api/experiments/{exp['id']}/exposures"
        status, _ = await http("POST", url, headers=bearer(t))
        assert status == 201
    before = {t: await rest_variant(server, t, exp["id"]) for t in tokens}
    url = f"{server.url}/api/host/experiments/{exp['id']}"
    status, changed = await http(
        "PATCH", url, json={"weights": [0.1, 0.9]}, headers=world.host_headers()
    )
    assert status == 200, changed
    after = {t: await rest_variant(server, t, exp["id"]) for t in tokens}
    moved = [t for t in exposed if ["a", "b"][assign(_oid(people, t), exp["seed"], [0.1, 0.9])]
             != before[t]]  # fmt: skip
    assert moved, "some exposed users would move without stickiness"
    assert all(after[t] == before[t] for t in exposed)
    viewers = [TestViewer(server.ws_url(), world.room_id, t) for t in tokens]
    await asyncio.gather(*(v.connect() for v in viewers))
    status, _ = await push(server, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 1 for v in viewers))
    for v, t in zip(viewers, tokens, strict=True):
        check_creative(v.of_type("goods_push")[0], after[t] or "a")
        await v.close()


def _oid(people: list[tuple[int, str]], token: str) -> str:
    uid = int(_subject(token))
    return next(o for u, o in people if u == uid)


async def test_bad_pushes_are_refused(server: AppServer, world: World) -> None:
    """Unknown or another host's experiment → 400 experiment_id; variants not matching the
    experiment's → 400 variants; half the pair → 400; draft or stopped → 409."""
    exp = await experiment(server, world, "checked")
    draft = await experiment(server, world, "drafty", start=False)
    status, other = await http(
        "POST", server.url + "/api/host/experiments",
        json={"key": "others", "variants": [{"key": "a"}, {"key": "b"}]},
        headers=bearer(world.other_host_token),
    )  # fmt: skip
    assert status == 201
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"experiment_id": 987654, "variants": CREATIVES}, 400, "experiment_id"),
        ({"experiment_id": other["id"], "variants": CREATIVES}, 400, "experiment_id"),
        ({"experiment_id": exp["id"], "variants": CREATIVES[:1] * 2}, 400, "variants"),
        (
            {"experiment_id": exp["id"], "variants": [*CREATIVES[:1], {"variant": "c"}]},
            400,
            "variants",
        ),
        ({"experiment_id": exp["id"]}, 400, "variants"),
        ({"variants": CREATIVES}, 400, "experiment_id"),
        ({"experiment_id": draft["id"], "variants": CREATIVES}, 409, "experiment_not_running"),
        (
            {"experiment_id": exp["id"], "variants": [{"variant": "a", "title": ""}, CREATIVES[1]]},
            400,
            "",
        ),
    ]
    for body, want, what in cases:
        status, answer = await push(server, world, **body)
        assert status == want, (body, answer)
        if want == 400 and what:
            assert what in str(answer["error"].get("field", "")) + answer["error"]["message"], (
                body,
                answer,
            )
        elif want == 409:
            assert answer["error"]["code"] == what
    url = f"{server.url}/api/host/experiments/{exp['id']}/stop"
    assert (await http("POST", url, headers=world.host_headers()))[0] == 200
    status, answer = await push(server, world, experiment_id=exp["id"], variants=CREATIVES)
    assert (status, answer["error"]["code"]) == (409, "experiment_not_running")
    # Another host cannot push in this room at all (404, as a missing room).
    status, _ = await http(
        "POST", f"{server.url}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[0], "experiment_id": other["id"],
              "variants": CREATIVES},
        headers=bearer(world.other_host_token),
    )  # fmt: skip
    assert status == 404


BLANK_CREATIVES = [
    pytest.param("title", " ", id="title-space"),
    pytest.param("title", "\u3000\t\n", id="title-ideographic-space-tab-newline"),
    pytest.param("price_display", "   ", id="price-spaces"),
    pytest.param("price_display", "\u00a0", id="price-no-break-space"),
    # Invisible characters that are not whitespace show an empty bubble all the same.
    pytest.param("title", "\u200b", id="title-zero-width-space"),
    pytest.param("title", " \u200b\u200d\ufeff\u2060 ", id="title-zero-width-mix"),
    pytest.param("title", "\u3164", id="title-hangul-filler"),
    pytest.param("price_display", "\u00ad\u180e", id="price-soft-hyphen-mongolian-separator"),
    pytest.param("price_display", "\u2800", id="price-braille-blank"),
]


@pytest.mark.parametrize(("field", "blank"), BLANK_CREATIVES)
async def test_blank_creative_text_is_refused(
    server: AppServer, world: World, pool: asyncpg.Pool, field: str, blank: str
) -> None:
    """A creative ``title`` or ``price_display`` of whitespace alone would show a blank bubble:
    400 ``invalid`` on ``variants.<field>``, for a push and a schedule alike; nothing is
    published or stored. The same text with a visible character is accepted."""
    exp = await experiment(server, world, "blank-" + field.replace("_", "-"))
    variants = [CREATIVES[0], {**CREATIVES[1], field: blank}]
    body = {"experiment_id": exp["id"], "variants": variants}
    status, answer = await push(server, world, **body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid"
    assert answer["error"]["field"] == f"variants.{field}"
    url = f"{server.url}/api/rooms/{world.room_id}/schedules"
    at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    sched = {"goods_id": world.goods_ids[0], "idempotency_key": "blank", "at": at, **body}
    before = await pool.fetchval("SELECT count(*) FROM live_schedules")
    status, answer = await http("POST", url, json=sched, headers=world.host_headers())
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["field"]) == ("invalid", f"variants.{field}")
    assert await pool.fetchval("SELECT count(*) FROM live_schedules") == before
    visible = [CREATIVES[0], {**CREATIVES[1], field: f"{blank}x{blank}"}]
    status, answer = await push(server, world, experiment_id=exp["id"], variants=visible)
    assert status == 201, answer


async def test_idempotent_variant_push(server: AppServer, world: World) -> None:
    """A replay with the same key and creatives answers the first seq; other creatives → 409."""
    exp = await experiment(server, world, "idem")
    body = {"experiment_id": exp["id"], "variants": CREATIVES, "idempotency_key": "k1"}
    status, first = await push(server, world, **body)
    assert status == 201
    status, again = await push(server, world, **body)
    assert (status, again["seq"], again["duplicate"]) == (200, first["seq"], True)
    changed = {**body, "variants": [CREATIVES[0], {**CREATIVES[1], "title": "Other"}]}
    status, answer = await push(server, world, **changed)
    assert (status, answer["error"]["code"]) == (409, "idempotency_key_reused")


async def test_scheduled_variant_push(server: AppServer, world: World, pool: asyncpg.Pool) -> None:
    """A scheduled push naming an experiment fires once with each viewer's variant; schedule
    validation mirrors the immediate push (a draft may be scheduled, a stopped one not)."""
    exp = await experiment(server, world, "scheduled-bubble")
    people = await users(pool, 12, "oSched")
    tokens = [user_token(u, o) for u, o in people]
    viewers = [TestViewer(server.ws_url(), world.room_id, t) for t in tokens]
    await asyncio.gather(*(v.connect() for v in viewers))
    expected = [await rest_variant(server, t, exp["id"]) for t in tokens]
    at = (datetime.now(UTC) + timedelta(milliseconds=600)).isoformat()
    url = f"{server.url}/api/rooms/{world.room_id}/schedules"
    body = {
        "goods_id": world.goods_ids[0], "idempotency_key": "s1", "at": at, "show_seconds": 30,
        "experiment_id": exp["id"], "variants": list(reversed(CREATIVES)),
    }  # fmt: skip
    status, row = await http("POST", url, json=body, headers=world.host_headers())
    assert status == 201, row
    assert row["experiment_id"] == exp["id"]
    assert row["creatives"][1]["title"] == "Spring tea, 20% off"  # in variant order
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 1 for v in viewers))
    for v, want in zip(viewers, expected, strict=True):
        frame = v.of_type("goods_push")[0]
        assert frame["schedule_id"] == row["id"]
        check_creative(frame, want or "a")
        await v.close()
    draft = await experiment(server, world, "sched-draft", start=False)
    later = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    body["at"] = later
    ok = {**body, "idempotency_key": "s2", "experiment_id": draft["id"]}
    assert (await http("POST", url, json=ok, headers=world.host_headers()))[0] == 201
    stop = f"{server.url}/api/host/experiments/{exp['id']}/stop"
    assert (await http("POST", stop, headers=world.host_headers()))[0] == 200
    stopped = {**body, "idempotency_key": "s3"}
    status, answer = await http("POST", url, json=stopped, headers=world.host_headers())
    assert (status, answer["error"]["code"]) == (409, "experiment_not_running")
    bad = {**ok, "idempotency_key": "s4", "variants": CREATIVES[:1] * 2}
    status, answer = await http("POST", url, json=bad, headers=world.host_headers())
    assert (status, answer["error"]["field"]) == (400, "variants")


async def test_impressions_record_exposures_once(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A user's bubble_impression carrying its variant records one exposure (and the sticky
    assignment), however often it is sent; a claim of another variant records nothing."""
    exp = await experiment(server, world, "exposed-bubble")
    (uid, openid), (uid2, openid2) = await users(pool, 2, "oImp")
    token, token2 = user_token(uid, openid), user_token(uid2, openid2)
    v, v2 = (TestViewer(server.ws_url(), world.room_id, t) for t in (token, token2))
    await v.connect()
    await v2.connect()
    status, body = await push(server, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201
    await wait_until(lambda: v.of_type("goods_push") and v2.of_type("goods_push"))
    mine = v.of_type("goods_push")[0]["experiment"]["variant"]
    theirs = v2.of_type("goods_push")[0]["experiment"]["variant"]
    forged = "b" if theirs == "a" else "a"

    def impression(variant: str) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()), "type": "bubble_impression", "room_id": world.room_id,
            "goods_id": world.goods_ids[0], "push_seq": body["seq"],
            "variants": {"exposed-bubble": variant},
        }  # fmt: skip

    for _ in range(3):
        await v.send({"type": "track", "events": [impression(mine)]})
    await v2.send({"type": "track", "events": [impression(forged)]})
    await wait_until(lambda: len([o for o in v.others if o.get("type") == "tracked"]) == 3)
    await wait_until(lambda: any(o.get("type") == "tracked" for o in v2.others))

    async def exposures() -> list[asyncpg.Record]:
        return await pool.fetch(
            "SELECT user_id, variant FROM experiment_exposures WHERE experiment_id = $1",
            exp["id"],
        )

    deadline = asyncio.get_running_loop().time() + 10
    while not await exposures():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    rows = await exposures()
    assert [(r["user_id"], ["a", "b"][r["variant"]]) for r in rows] == [(uid, mine)]
    stored = await pool.fetchval(
        "SELECT variant FROM experiment_assignments WHERE user_id = $1 AND experiment_id = $2",
        uid,
        exp["id"],
    )
    assert ["a", "b"][stored] == mine
    await v.close()
    await v2.close()


async def test_welcome_bubble_lasts_for_its_own_variant(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """The control shows 1 s, variant b 30 s: a joiner after 1.5 s sees the bubble only if b."""
    exp = await experiment(server, world, "show-time")
    people = await users(pool, 16, "oShow")
    tokens = [user_token(u, o) for u, o in people]
    want = {t: await rest_variant(server, t, exp["id"]) for t in tokens}
    assert set(want.values()) == {"a", "b"}
    creatives = [{"variant": "a", "show_seconds": 1}, {"variant": "b", "show_seconds": 30}]
    status, _ = await push(server, world, experiment_id=exp["id"], variants=creatives)
    assert status == 201
    await asyncio.sleep(1.5)
    for t in tokens:
        v = TestViewer(server.ws_url(), world.room_id, t)
        bubble = (await v.connect())["bubble"]
        if want[t] == "b":
            assert bubble["experiment"]["variant"] == "b"
            assert bubble["show_seconds"] == 30
        else:
            assert bubble is None
        await v.close()


async def test_sticky_read_only_while_experiments_run(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A user socket reads PostgreSQL at join only while some experiment runs (or for a token
    without the openid claim); viewers never."""
    loader = server.app[keys.VIEWER_ENDPOINT].sticky
    (uid, openid), (uid2, _) = await users(pool, 2, "oRead")
    for token in (user_token(uid, openid), world.viewer_token()):
        v = TestViewer(server.ws_url(), world.room_id, token)
        await v.connect()
        await v.close()
    assert loader.loads == 0
    v = TestViewer(server.ws_url(), world.room_id, user_token(uid2, None))  # an older token
    await v.connect()
    await v.close()
    assert loader.loads == 1
    await experiment(server, world, "now-running")
    loader._running_at = -1e9  # the 5 s cache of "nothing runs" has expired
    v = TestViewer(server.ws_url(), world.room_id, user_token(uid, openid))
    await v.connect()
    await v.close()
    assert loader.loads == 2


async def test_resume_on_another_node_keeps_the_variant(
    make_server: Any, world: World, pool: asyncpg.Pool
) -> None:
    """Two nodes on one Redis: viewers of node A drop and resume on node B; the missed variant
    push replays in the variant they saw on A, and B's live pushes agree too."""
    node_a, node_b = await make_server(), await make_server()
    exp = await experiment(node_a, world, "two-nodes")
    people = await users(pool, 16, "oNodes")
    tokens = [user_token(u, o) for u, o in people] + [world.viewer_token() for _ in range(4)]
    viewers = [TestViewer(node_a.ws_url(), world.room_id, t) for t in tokens]
    await asyncio.gather(*(v.connect() for v in viewers))
    status, first = await push(node_a, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201
    await wait_until(lambda: all(v.of_type("goods_push") for v in viewers))
    seen = [v.of_type("goods_push")[0]["experiment"]["variant"] for v in viewers]
    assert set(seen) == {"a", "b"}
    for v in viewers:
        await v.drop()
    status, missed = await push(node_b, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201
    await asyncio.gather(*(v.connect(node_b.ws_url(), resume=True) for v in viewers))
    status, live = await push(node_a, world, experiment_id=exp["id"], variants=CREATIVES)
    assert status == 201
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 3 for v in viewers))
    for v, want in zip(viewers, seen, strict=True):
        assert v.welcomes[-1]["resumed"] is True
        pushes = v.of_type("goods_push")
        assert [f["seq"] for f in pushes] == [first["seq"], missed["seq"], live["seq"]]
        for f in pushes:
            check_creative(f, want)
        await v.close()


async def test_scheduled_push_of_an_experiment_not_running_shows_the_control(
    server: AppServer, world: World
) -> None:
    """A schedule made with a draft experiment that is still a draft when it fires pushes the
    goods' own creative, with no experiment, to everyone."""
    draft = await experiment(server, world, "never-started", start=False)
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    await v.connect()
    at = (datetime.now(UTC) + timedelta(milliseconds=500)).isoformat()
    body = {
        "goods_id": world.goods_ids[0], "idempotency_key": "d1", "at": at, "show_seconds": 30,
        "experiment_id": draft["id"], "variants": CREATIVES,
    }  # fmt: skip
    url = f"{server.url}/api/rooms/{world.room_id}/schedules"
    status, row = await http("POST", url, json=body, headers=world.host_headers())
    assert status == 201, row
    await wait_until(lambda: len(v.of_type("goods_push")) == 1)
    frame = v.of_type("goods_push")[0]
    assert frame["schedule_id"] == row["id"]
    assert "experiment" not in frame
    assert frame["goods"]["title"] == "Goods 0"
    await v.close()
