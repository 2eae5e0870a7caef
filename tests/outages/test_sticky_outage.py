"""A user's join reads its sticky experiment assignments from PostgreSQL; with PostgreSQL down
the join still succeeds (bucketed on the token's openid), it is not refused."""

from __future__ import annotations

import pytest

from livecommerce import keys
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.outages.conftest import Faults
from tests.realtime.conftest import World
from tests.realtime.rawws import RawWS, upgrade_head
from tests.support import AppServer


async def join(server: AppServer, room_id: int, token: str) -> dict[str, object]:
    raw = await RawWS.open(server.url)
    await raw.send(upgrade_head(f"/ws?room={room_id}&token={token}"))
    status, _ = await raw.response_head()
    assert status == 101
    first: dict[str, object] = await raw.recv_json()
    raw.close()
    return first


@pytest.mark.timeout(120)
async def test_user_joins_while_postgres_is_down(
    fault_server: AppServer, fault_world: World, faulty: Faults
) -> None:
    """The room is cached in Redis (a viewer joined before); PostgreSQL stops; a user token's
    join is welcomed after the bounded sticky read fails, and the failure is logged."""
    assert (await join(fault_server, fault_world.room_id, fault_world.viewer_token()))[
        "type"
    ] == "welcome"
    loader = fault_server.app[keys.VIEWER_ENDPOINT].sticky
    await faulty.stop_postgres()
    try:
        loader._running_at = -1e9  # force the read ("is anything running?") now
        token = issue_token(DEV_SECRET, "user", 424242, 3600, openid="oOutage")
        first = await join(fault_server, fault_world.room_id, token)
        assert first["type"] == "welcome", first
    finally:
        await faulty.start_postgres()
