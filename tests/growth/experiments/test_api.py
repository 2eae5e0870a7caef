"""Experiments over real HTTP on real PostgreSQL: lifecycle, assignments, exposures, stickiness."""

from __future__ import annotations

from typing import Any

from livecommerce.growth.experiments.bucketing import assign, hash_value
from tests.commerce.conftest import Shop, bearer
from tests.growth.experiments.conftest import create_started
from tests.support import http


async def test_lifecycle_records_changes(shop: Shop) -> None:
    """Create → start → weight/coverage change → stop; each step is in the change log."""
    _, host = await shop.host()
    exp = await create_started(shop, host, key="title-test", weights=[0.5, 0.5])
    url = f"{shop.url}/api/host/experiments/{exp['id']}"
    status, changed = await http(
        "PATCH", url, json={"weights": [0.2, 0.8], "coverage": 0.5}, headers=bearer(host)
    )
    assert status == 200, changed
    assert isinstance(changed, dict)
    assert changed["weights"] == [0.2, 0.8]
    status, refused = await http(
        "PATCH", url, json={"variants": [{"key": "x"}, {"key": "y"}]}, headers=bearer(host)
    )
    assert status == 409
    assert isinstance(refused, dict)
    assert refused["error"]["code"] == "not_a_draft"
    status, _ = await http("POST", url + "/stop", headers=bearer(host))
    assert status == 200
    status, _ = await http("POST", url + "/stop", headers=bearer(host))
    assert status == 409
    status, detail = await http("GET", url, headers=bearer(host))
    assert status == 200
    assert isinstance(detail, dict)
    assert [c["change"] for c in detail["changes"]] == ["created", "started", "updated", "stopped"]
    assert detail["changes"][2]["weights"] == [0.2, 0.8]
    assert detail["changes"][2]["coverage"] == 0.5


async def test_other_hosts_cannot_see_or_change(shop: Shop) -> None:
    """Another host gets 404 for the experiment. Keys are unique per host: the other host
    creates the same key as its own experiment (201, never a 409 that would reveal ours); a
    second experiment with one host's own key is 409 key_taken."""
    _, host = await shop.host()
    _, other = await shop.host()
    exp = await create_started(shop, host, key="mine")
    url = f"{shop.url}/api/host/experiments/{exp['id']}"
    assert (await http("GET", url, headers=bearer(other)))[0] == 404
    assert (await http("POST", url + "/stop", headers=bearer(other)))[0] == 404
    spec = {"key": "mine", "variants": [{"key": "a"}, {"key": "b"}]}
    create = shop.url + "/api/host/experiments"
    status, theirs = await http("POST", create, headers=bearer(other), json=spec)
    assert status == 201, theirs
    assert isinstance(theirs, dict)
    assert (theirs["key"], theirs["state"]) == ("mine", "draft")
    assert theirs["id"] != exp["id"]
    for token in (host, other):
        status, body = await http("POST", create, headers=bearer(token), json=spec)
        assert status == 409
        assert isinstance(body, dict)
        assert body["error"]["code"] == "key_taken"
    status, listed = await http("GET", create, headers=bearer(other))
    assert isinstance(listed, dict)
    assert [e["id"] for e in listed["experiments"]] == [theirs["id"]]


async def test_bad_weights_are_400(shop: Shop) -> None:
    """Weights that do not sum to 1 or do not match the variants are refused with field weights."""
    _, host = await shop.host()
    for weights in ([0.3, 0.3], [0.2, 0.3, 0.5]):
        status, body = await http(
            "POST",
            shop.url + "/api/host/experiments",
            headers=bearer(host),
            json={"key": "w", "variants": [{"key": "a"}, {"key": "b"}], "weights": weights},
        )
        assert status == 400
        assert isinstance(body, dict)
        assert body["error"]["field"] == "weights"


async def test_assignments_match_offline_bucketing(shop: Shop) -> None:
    """The server's variant equals GrowthBook hash-v2 bucketing of the caller's openid, with
    coverage and a namespace, and the definitions let a client compute the same offline."""
    _, host = await shop.host()
    ns = {"id": "bubbles", "start": 0.0, "end": 0.7}
    exp = await create_started(
        shop, host, key="offline", weights=[0.1, 0.3, 0.6], coverage=0.8, namespace=ns,
        variants=[{"key": "a"}, {"key": "b"}, {"key": "c"}],
    )  # fmt: skip
    for _ in range(8):
        token = await shop.login()
        status, body = await http(
            "GET", shop.url + "/api/experiments/assignments", headers=bearer(token)
        )
        assert status == 200
        assert isinstance(body, dict)
        openid = await shop.pool.fetchval("SELECT openid FROM users ORDER BY id DESC LIMIT 1")
        (mine,) = [a for a in body["assignments"] if a["experiment_id"] == exp["id"]]
        expected = assign(openid, "offline", [0.1, 0.3, 0.6], 0.8, ("bubbles", 0.0, 0.7))
        assert mine["variant"] == (expected if expected >= 0 else None)
        (d,) = body["definitions"]
        n = d["namespace"]
        offline = assign(
            openid, d["seed"], d["weights"], d["coverage"], (n["id"], n["start"], n["end"])
        )
        assert offline == expected


async def test_exposure_recorded_once(shop: Shop) -> None:
    """Exposing twice answers 201 then 200 and stores one row."""
    _, host = await shop.host()
    exp = await create_started(shop, host, key="once")
    token = await shop.login()
    url = f"{shop.url}/api/experiments/{exp['id']}/exposures"
    first = await http("POST", url, headers=bearer(token))
    second = await http("POST", url, headers=bearer(token))
    assert (first[0], second[0]) == (201, 200)
    count = await shop.pool.fetchval(
        "SELECT count(*) FROM experiment_exposures WHERE experiment_id = $1", exp["id"]
    )
    assert count == 1


async def _user_that_moves(shop: Shop, seed: str) -> str:
    """Log in users until one is in variant 0 at 50/50 and variant 1 at 5/95."""
    while True:
        token = await shop.login()
        openid = await shop.pool.fetchval("SELECT openid FROM users ORDER BY id DESC LIMIT 1")
        n = hash_value(seed, openid, 2)
        assert n is not None
        if 0.05 <= n < 0.5:
            return token


async def _variant(shop: Shop, token: str, exp_id: int) -> Any:
    status, body = await http(
        "GET", shop.url + "/api/experiments/assignments", headers=bearer(token)
    )
    assert status == 200
    assert isinstance(body, dict)
    return next(a["variant"] for a in body["assignments"] if a["experiment_id"] == exp_id)


async def test_sticky_assignment_survives_weight_change(shop: Shop) -> None:
    """An exposed user keeps variant 0 after 50/50 → 5/95; with sticky off they move to 1."""
    _, host = await shop.host()
    sticky = await create_started(shop, host, key="sticky-on", weights=[0.5, 0.5])
    loose = await create_started(
        shop, host, key="sticky-off", weights=[0.5, 0.5], sticky=False, seed="sticky-on"
    )
    token = await _user_that_moves(shop, "sticky-on")
    for exp in (sticky, loose):
        status, body = await http(
            "POST", f"{shop.url}/api/experiments/{exp['id']}/exposures", headers=bearer(token)
        )
        assert status == 201
        assert isinstance(body, dict)
        assert body["assignment"]["variant"] == 0
        status, _ = await http(
            "PATCH",
            f"{shop.url}/api/host/experiments/{exp['id']}",
            headers=bearer(host),
            json={"weights": [0.05, 0.95]},
        )
        assert status == 200
    assert await _variant(shop, token, sticky["id"]) == 0
    assert await _variant(shop, token, loose["id"]) == 1
    # The non-sticky user is now exposed to a second variant: excluded from results, counted.
    status, _ = await http(
        "POST", f"{shop.url}/api/experiments/{loose['id']}/exposures", headers=bearer(token)
    )
    assert status == 201
    status, res = await http(
        "GET", f"{shop.url}/api/host/experiments/{loose['id']}/results", headers=bearer(host)
    )
    assert status == 200
    assert isinstance(res, dict)
    assert res["multi_variant_users"] == 1
    assert [v["users"] for v in res["variants"]] == [0, 0]
    assert "multi_variant_users_excluded" in res["warnings"]


async def test_exposure_of_a_draft_is_409(shop: Shop) -> None:
    """An exposure to an experiment that is not running is refused with not_running."""
    _, host = await shop.host()
    status, created = await http(
        "POST",
        shop.url + "/api/host/experiments",
        headers=bearer(host),
        json={"key": "drafty", "variants": [{"key": "a"}, {"key": "b"}]},
    )
    assert status == 201
    assert isinstance(created, dict)
    token = await shop.login()
    status, body = await http(
        "POST", f"{shop.url}/api/experiments/{created['id']}/exposures", headers=bearer(token)
    )
    assert status == 409
    assert isinstance(body, dict)
    assert body["error"]["code"] == "not_running"


async def test_window_limits_assignments(shop: Shop) -> None:
    """A running experiment outside its active window is not assigned; inside it is."""
    _, host = await shop.host()
    past = await create_started(
        shop,
        host,
        key="past",
        starts_at="2020-01-01T00:00:00Z",
        ends_at="2020-02-01T00:00:00+08:00",
    )
    assert past["ends_at"].startswith("2020-01-31T16:00:00")
    now = await create_started(shop, host, key="now", starts_at="2020-01-01T00:00:00Z")
    token = await shop.login()
    status, body = await http(
        "GET", shop.url + "/api/experiments/assignments", headers=bearer(token)
    )
    assert status == 200
    assert isinstance(body, dict)
    assert [a["experiment_id"] for a in body["assignments"]] == [now["id"]]
    status, _ = await http(
        "PATCH",
        f"{shop.url}/api/host/experiments/{past['id']}",
        headers=bearer(host),
        json={"ends_at": None},
    )
    assert status == 200
    status, body = await http(
        "GET", shop.url + "/api/experiments/assignments", headers=bearer(token)
    )
    assert isinstance(body, dict)
    assert sorted(a["experiment_id"] for a in body["assignments"]) == sorted(
        [past["id"], now["id"]]
    )


async def test_patch_cannot_invert_the_window(shop: Shop) -> None:
    """A change that would end the window before it starts is 400 on `ends_at`, as at
    creation — given in one body or against the stored bound — and changes nothing."""
    _, host = await shop.host()
    exp = await create_started(shop, host, key="window", starts_at="2030-01-01T00:00:00Z")
    url = f"{shop.url}/api/host/experiments/{exp['id']}"
    for change in (
        {"ends_at": "2029-01-01T00:00:00Z"},
        {"starts_at": "2031-01-01T00:00:00Z", "ends_at": "2030-06-01T00:00:00Z"},
        {"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
    ):
        status, body = await http("PATCH", url, json=change, headers=bearer(host))
        assert status == 400, (change, body)
        assert isinstance(body, dict)
        assert body["error"]["field"] == "ends_at"
    status, body = await http("GET", url, headers=bearer(host))
    assert isinstance(body, dict)
    assert body["starts_at"].startswith("2030-01-01T00:00:00")
    assert body["ends_at"] is None
    status, body = await http(
        "PATCH", url, json={"ends_at": "2030-02-01T00:00:00Z"}, headers=bearer(host)
    )
    assert status == 200, body
