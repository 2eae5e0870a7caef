"""Every Redis key name, channel and TTL in one place.

A room's keys share the hash tag ``{room:ID}`` so that the Lua scripts touching them together
stay valid on Redis Cluster. What lives here is fast and rebuildable: sequences, history,
presence, counters. PostgreSQL stays the source of truth (see docs/architecture in README).
"""

from __future__ import annotations

PREFIX = "lc:"
ROOM_CHANNEL_PATTERN = "lc:room:*"
# How long a publish idempotency key is remembered.
PUBLISH_IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def room_tag(room_id: int) -> str:
    return f"{{room:{room_id}}}"


def room_seq(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:seq"


def room_history(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:hist"


def room_state(room_id: int) -> str:
    """Hash: room (JSON info), epoch, bubble (current goods_push frame), viewers, likes."""
    return f"{PREFIX}{room_tag(room_id)}:state"


def room_presence(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:presence"


def room_tick_lock(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:tick"


def room_pending_likes(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:likes"


def room_publish_idem(room_id: int, key: str) -> str:
    return f"{PREFIX}{room_tag(room_id)}:idem:{key}"


def room_push_request(room_id: int, key: str) -> str:
    """String: the request (``goods_id:show_seconds``) a host push's idempotency key is bound to."""
    return f"{PREFIX}{room_tag(room_id)}:pushreq:{key}"


def room_channel(room_id: int) -> str:
    """The room's classic channel (one Redis: every node pattern-subscribes ``lc:room:*``)."""
    return f"lc:room:{room_id}"


def room_shard_channel(room_id: int) -> str:
    """The room's sharded channel (Redis Cluster): it carries the room's hash tag, so the
    publish script SPUBLISHes it in the same slot as the keys it updates, and a node
    SSUBSCRIBEs it on the shard that owns the room (``realtime/shards.py``)."""
    return f"lc:{room_tag(room_id)}"


USER_CHANNEL_PATTERN = "lc:user:*"


def user_channel(user_id: int) -> str:
    """Per-user notices (order paid/shipped, ...) for that user's open sockets on any node."""
    return f"lc:user:{user_id}"


def identity_from_user_channel(channel: bytes) -> str | None:
    tail = channel.rsplit(b":", 1)[-1]
    return f"user:{int(tail)}" if tail.isdigit() else None


def room_id_from_channel(channel: bytes) -> int | None:
    """The room id of a classic (``lc:room:ID``) or sharded (``lc:{room:ID}``) room channel."""
    try:
        return int(channel.removesuffix(b"}").rsplit(b":", 1)[1])
    except (IndexError, ValueError):
        return None


# Timer wheel: one sorted set (score = due time in ms, member = "<schedule id>:<version>"),
# the lease set of claimed members, and a marker that the wheel was built from PostgreSQL
# (missing after Redis lost its data -> rebuild). They share the hash tag {timer}. With
# ``timer.wheel_shards`` = N > 1 there are N such wheels, a schedule on wheel (id mod N), wheel
# k > 0 under the tag {timer:k} (its own slot, so spread over a cluster's shards); every
# dispatcher claims from all of them (timer/wheel.py).
TIMER_WHEEL = f"{PREFIX}{{timer}}:wheel"
TIMER_LEASES = f"{PREFIX}{{timer}}:leases"
TIMER_BUILT = f"{PREFIX}{{timer}}:built"
TIMER_REBUILD_LOCK = f"{PREFIX}{{timer}}:rebuild-lock"


def timer_keys(shard: int) -> tuple[str, str, str]:
    """(wheel, leases, built marker) of timer wheel ``shard`` (0 = the keys above)."""
    if shard == 0:
        return TIMER_WHEEL, TIMER_LEASES, TIMER_BUILT
    tag = f"{PREFIX}{{timer:{shard}}}"
    return f"{tag}:wheel", f"{tag}:leases", f"{tag}:built"


TIMER_WAKE_CHANNEL = "lc:timer:wake"


# Flash sales: a sale's keys share the hash tag {flash:ID} (its scripts touch them together).
# meta: hash {loaded, start_ms, end_ms, limit, stock (units left)}; buyers: hash user id ->
# units held; claims: hash claim id -> "user:quantity" (a claim is returned at most once).
# Rebuilt from PostgreSQL (flash_sales.sold, flash_sale_buyers, flash_sale_orders) when missing.
def flash_tag(sale_id: int) -> str:
    return f"{{flash:{sale_id}}}"


def flash_meta(sale_id: int) -> str:
    return f"{PREFIX}{flash_tag(sale_id)}:meta"


def flash_buyers(sale_id: int) -> str:
    return f"{PREFIX}{flash_tag(sale_id)}:buyers"


def flash_claims(sale_id: int) -> str:
    return f"{PREFIX}{flash_tag(sale_id)}:claims"


def flash_claim_times(sale_id: int) -> str:
    """Sorted set: claims taken in Redis and not yet seen in PostgreSQL, scored by take time."""
    return f"{PREFIX}{flash_tag(sale_id)}:claim_times"


def flash_rooms(sale_id: int) -> str:
    """Set of room ids the sale was pushed into (they get stock-left updates)."""
    return f"{PREFIX}{flash_tag(sale_id)}:rooms"


def flash_stock_throttle(sale_id: int, room_id: int) -> str:
    """SET NX PX marker: a stock update was published to the room recently."""
    return f"{PREFIX}{flash_tag(sale_id)}:throttle:{room_id}"


# Group offers pushed as bubbles (social/offers.py): keys of one offer share {group-offer:ID}.
def group_offer_tag(offer_id: int) -> str:
    return f"{{group-offer:{offer_id}}}"


def group_offer_rooms(offer_id: int) -> str:
    """Set of room ids the offer was pushed into (they get ``group_progress`` frames)."""
    return f"{PREFIX}{group_offer_tag(offer_id)}:rooms"


def group_progress_last(offer_id: int, room_id: int) -> str:
    """The featured group last published to the room (a frame is sent only on a change)."""
    return f"{PREFIX}{group_offer_tag(offer_id)}:last:{room_id}"


# Comment moderation (livecommerce/moderation): a copy of the room's rules from PostgreSQL.
# mod: hash {v (version), host (owner host id), muted (0/1), policy, words (JSON list)};
# mutes: hash author ("user:12") -> muted until (ms since the epoch, 0 = until unmuted).
MODERATION_TTL_SECONDS = 7 * 86400  # refreshed on each load; rebuilt from PostgreSQL when gone


def room_moderation(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:mod"


def room_mutes(room_id: int) -> str:
    return f"{PREFIX}{room_tag(room_id)}:mutes"
