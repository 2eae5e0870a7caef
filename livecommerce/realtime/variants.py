"""Bubble experiments on this node's sockets: every viewer the creative of its variant.

A variant push (``growth/experiments/bubbles.py``) is published once, with one seq. Here:

* **Hash attribute.** A user socket buckets on the user's openid, the attribute of ``GET
  /api/experiments/assignments``: it comes in the token's ``oid`` claim (set at login), or, for
  a token without one, from the one PostgreSQL read below. An anonymous viewer buckets on its
  viewer id (the token subject ``anon-…``); a host is never included (control creative).
* **Sticky assignments** are loaded once per user connection (:func:`load_bucketing`: one
  indexed read, skipped while no experiment runs) into ``conn.ab.sticky``; the variant a
  connection is shown of a sticky experiment is added to it, so it does not move during the
  connection when the weights change (the exposure its client reports stores the same one).
* **Plans.** The first time a node delivers a push of an experiment *definition* (id, seed,
  weights, coverage, namespace, stickiness: ``bubbles.definition_key``) in a room, it decides
  every local viewer's variant once (``LocalRoom.plans``, no await, no I/O); later pushes with
  the same definition, resumes and gap fills reuse it. Joiners get an entry when first needed.
* **Fan-out** (:func:`deliver_variants`) writes each viewer one of the per-variant frames
  encoded once per node (``VariantFrames``): a dict lookup per viewer instead of none.

Replays (missed frames of a resume, frames buffered while joining, the welcome's ``bubble``, a
``resync``) pick the same variant through the same plan, so a viewer who resumes sees its
variant again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from livecommerce.auth.tokens import Claims
from livecommerce.growth.experiments.bubbles import (
    MARKER,
    DefinitionKey,
    Entry,
    choose,
    definition_key,
    variant_bubble,
)
from livecommerce.growth.experiments.bulk import assign_many
from livecommerce.realtime.protocol import CLOSE_TOO_SLOW, encode, ws_text_frame

if TYPE_CHECKING:
    from livecommerce.realtime.conn import Conn
    from livecommerce.realtime.hub import Hub, LocalRoom

log = logging.getLogger("livecommerce.variants")
MAX_PLANS = 8  # experiment definitions remembered per room (oldest dropped)
RUNNING_TTL_SECONDS = 5.0  # how long "is any experiment running?" is trusted
LOAD_TIMEOUT_SECONDS = 2.0

Plan = dict["Conn", int]


@dataclass(slots=True)
class Bucketing:
    """A user connection's hash attribute and sticky assignments (experiment id → variant)."""

    hash_id: str
    sticky: dict[int, int]


class StickyLoader:
    """Loads a joining user's :class:`Bucketing` (one per node; see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._running_at = -1e9
        self._running = True
        self.loads = 0  # PostgreSQL reads made (tests, metrics)

    async def _any_running(self) -> bool:
        now = time.monotonic()
        if now - self._running_at > RUNNING_TTL_SECONDS:
            self._running = bool(
                await self.pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM experiments WHERE state = 'running')"
                )
            )
            self._running_at = now
        return self._running

    async def load(self, claims: Claims) -> Bucketing | None:
        """The user's bucketing (None for viewers and hosts, or a user unknown to PostgreSQL).

        Never raises for a backend fault: without PostgreSQL the token's openid is used with no
        sticky assignment (logged), so a join never fails because of experiments.
        """
        if claims.kind != "user":
            return None
        user_id = int(claims.subject)
        try:
            async with asyncio.timeout(LOAD_TIMEOUT_SECONDS):
                if claims.openid is not None and not await self._any_running():
                    return Bucketing(claims.openid, {})
                self.loads += 1
                rows = await self.pool.fetch(
                    """SELECT u.openid, a.experiment_id, a.variant FROM users u
                       LEFT JOIN experiment_assignments a ON a.user_id = u.id
                        AND a.experiment_id IN
                            (SELECT id FROM experiments WHERE state = 'running')
                       WHERE u.id = $1""",
                    user_id,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("sticky assignments not loaded for user %s: %r", user_id, exc)
            return Bucketing(claims.openid, {}) if claims.openid is not None else None
        if not rows:
            return None
        sticky = {r["experiment_id"]: r["variant"] for r in rows if r["experiment_id"] is not None}
        return Bucketing(claims.openid or rows[0]["openid"], sticky)


def _hash_id(v: Conn) -> tuple[str | None, Bucketing | None]:
    """What ``v`` is bucketed on (None: a host, or a user unknown to PostgreSQL)."""
    ab: Bucketing | None = v.ab
    if ab is not None:
        return ab.hash_id, ab
    kind, _, subject = v.identity.partition(":")
    return (subject if kind == "viewer" and subject else None), None


def viewer_variant(definition: Mapping[str, Any], v: Conn) -> int:
    """``v``'s variant index for a push's experiment object (-1: not included, control)."""
    hash_id, ab = _hash_id(v)
    if ab is None:
        return choose(definition, hash_id)
    exp_id = definition["id"]
    i = choose(definition, hash_id, ab.sticky.get(exp_id))
    if i >= 0 and definition.get("sticky", True):
        ab.sticky[exp_id] = i  # what this connection was shown stays put
    return i


def decide_all(definition: Mapping[str, Any], viewers: list[Conn]) -> Plan:
    """Every viewer's variant at once (:func:`bulk.assign_many`: a few ms for 10,000), equal to
    :func:`viewer_variant` for each."""
    plan: Plan = {}
    todo: list[tuple[Conn, str, Bucketing | None]] = []
    exp_id, sticky = definition["id"], definition.get("sticky", True)
    n = len(definition["creatives"])
    for v in viewers:
        hash_id, ab = _hash_id(v)
        stored = ab.sticky.get(exp_id) if ab is not None and sticky else None
        if stored is not None and 0 <= stored < n:
            plan[v] = stored
        elif hash_id is None:
            plan[v] = -1
        else:
            todo.append((v, hash_id, ab))
    ns = definition.get("namespace")
    found = assign_many(
        [h for _, h, _ in todo],
        definition["seed"],
        definition["weights"],
        definition["coverage"],
        (ns[0], ns[1], ns[2]) if ns else None,
    )
    for (v, _, ab), i in zip(todo, found, strict=True):
        plan[v] = i
        if ab is not None and sticky and i >= 0:
            ab.sticky[exp_id] = i
    return plan


def plan_for(room: LocalRoom, definition: Mapping[str, Any], key: DefinitionKey) -> Plan:
    """The room's plan for a definition: every present viewer's variant, decided once."""
    plan = room.plans.get(key)
    if plan is None:
        plan = decide_all(definition, [*room.viewers, *room.joining])
        room.plans[key] = plan
        if len(room.plans) > MAX_PLANS:
            del room.plans[next(iter(room.plans))]
    return plan


def variant_in(room: LocalRoom, definition: Mapping[str, Any], key: DefinitionKey, v: Conn) -> int:
    """``v``'s variant in the room's plan (added when ``v`` came after the plan)."""
    plan = plan_for(room, definition, key)
    i = plan.get(v)
    if i is None:
        i = plan[v] = viewer_variant(definition, v)
    return i


def deliver_variants(hub: Hub, room: LocalRoom, seq: int, entry: Entry) -> None:
    """:meth:`Hub.deliver` for a variant push: the same ordering and joining rules, each viewer
    the frame of its variant (frames prepared once; one dict lookup per viewer)."""
    fresh = room.last_seq is None or seq > room.last_seq
    if not fresh and not room.joining:
        return
    frames = entry.frames
    plan = plan_for(room, entry.definition, entry.key)
    slow: list[Conn] = []
    if fresh:
        room.last_seq = seq
        limit = hub.send_buffer_max
        for v in room.viewers:
            t = v.transport
            if t is None or t.is_closing():
                continue
            i = plan.get(v)
            if i is None:
                i = plan[v] = viewer_variant(entry.definition, v)
            t.write(frames[i])
            if t.get_write_buffer_size() > limit:
                slow.append(v)
        hub.metrics.fanout.inc(len(room.viewers))
    if room.joining:
        for v, buf in list(room.joining.items()):
            frame = frames[variant_in(room, entry.definition, entry.key, v)]
            if v.since is None:
                if fresh:
                    buf.append((seq, frame))
                continue
            if seq > v.since:
                v.write(frame)
                v.since = seq
                v.first = False  # a live frame reached it: too late to ``resume``
            if v.since == room.last_seq:
                del room.joining[v]
                room.viewers.add(v)
    for v in slow:
        hub.evict(v, CLOSE_TOO_SLOW, "too slow: reconnect and resume")


def _seq_of(payload: bytes) -> int | None:
    if not payload.startswith(b'{"seq":'):
        return None
    try:
        return int(payload[7 : payload.find(b",", 7)])
    except ValueError:
        return None


def replay_frame(hub: Hub, room: LocalRoom, v: Conn, payload: bytes) -> bytes:
    """The frame of a history payload (a resume's missed frame) for viewer ``v``."""
    if MARKER in payload:
        seq = _seq_of(payload)
        entry = hub.bubbles.get(room.id, seq, payload) if seq is not None else None
        if entry is not None:
            return entry.frames[variant_in(room, entry.definition, entry.key, v)]
    return ws_text_frame(payload)


def buffered_frame(hub: Hub, room: LocalRoom, v: Conn, seq: int, frame: bytes) -> bytes:
    """A frame buffered for ``v`` while it joined, re-picked for its variant."""
    entry = hub.bubbles.peek(room.id, seq)
    if entry is None:
        return frame
    return entry.frames[variant_in(room, entry.definition, entry.key, v)]


def personal_bubble(hub: Hub, room_id: int, v: Conn, body: dict[str, Any]) -> None:
    """Replace a ``welcome``/``resync`` body's variant ``bubble`` by ``v``'s variant (in place)."""
    bubble = body.get("bubble")
    if not isinstance(bubble, dict) or "experiment" not in bubble:
        return
    room = hub.rooms.get(room_id)
    exp = bubble["experiment"]
    if room is None or not isinstance(exp, dict) or "creatives" not in exp:
        return
    body["bubble"] = _still_showing(
        variant_bubble(bubble, variant_in(room, exp, definition_key(exp), v))
    )


def _still_showing(bubble: dict[str, Any]) -> dict[str, Any] | None:
    """The variant's bubble while its own show time lasts (the snapshot kept the frame for
    the longest variant), else None."""
    if bubble["ts"] + bubble.get("show_seconds", 0) * 1000 > time.time() * 1000:
        return bubble
    return None


def resync_writer(hub: Hub, room_id: int, body: dict[str, Any]) -> Callable[[Conn], bytes]:
    """The ``resync`` frame for each viewer: one frame when the bubble is plain, else one per
    variant (encoded once each)."""
    plain = ws_text_frame(encode(body))
    bubble = body.get("bubble")
    room = hub.rooms.get(room_id)
    if room is None or not isinstance(bubble, dict) or "experiment" not in bubble:
        return lambda _v: plain
    exp = bubble["experiment"]
    key = definition_key(exp)
    cache: dict[int, bytes] = {}

    def frame(v: Conn) -> bytes:
        i = variant_in(room, exp, key, v)
        if i not in cache:
            mine = _still_showing(variant_bubble(bubble, i))
            cache[i] = ws_text_frame(encode({**body, "bubble": mine}))
        return cache[i]

    return frame
