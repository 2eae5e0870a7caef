"""This node's live rooms: who is watching here, and the fan-out of each room frame to them.

Fan-out writes one pre-built WebSocket frame (the same bytes) to every local viewer's transport
with no await in between, so one slow phone never delays the next one; a viewer whose kernel
send buffer plus our write buffer passes ``send_buffer_max_bytes`` is evicted (close 4408) and
will resume on reconnect.

Joining without loss or duplicates (the *seam*): a joining viewer is registered **before** the
room snapshot is read from Redis, so every frame published after the snapshot reaches it:

* phase A — snapshot pending: delivered frames are buffered for it;
* the handler then writes ``welcome`` (state at seq S), the missed frames (N, S], and the buffered
  frames with seq > S;
* phase B — frames with seq <= S still in flight on this node's subscription are skipped for it,
  later ones are written; once this node has delivered seq S it joins the plain live set, where
  the hot loop needs no per-viewer check.

What each viewer *has* (for filling a gap after the subscription broke): a live viewer has every
frame up to the room's ``last_seq``; a welcomed viewer still in ``joining`` has exactly its
``since``; one whose snapshot is pending has nothing to fill yet.

A room's stream reset (new epoch, docs/protocol.md) is answered in-band: :meth:`Hub.begin_resync`
puts every welcomed viewer back to phase A and forgets ``last_seq``; the node then writes each a
``resync`` frame and :meth:`Hub.finish_join` continues as for a join.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from livecommerce.growth.experiments.bubbles import MARKER, VariantFrames
from livecommerce.metrics import Metrics
from livecommerce.realtime import variants
from livecommerce.realtime.conn import Conn as Viewer
from livecommerce.realtime.protocol import CLOSE_TOO_SLOW, ws_text_frame

log = logging.getLogger("livecommerce.hub")


@dataclass
class LocalRoom:
    id: int
    viewers: set[Viewer] = field(default_factory=set)
    joining: dict[Viewer, list[tuple[int, bytes]]] = field(default_factory=dict)
    last_seq: int | None = None  # highest seq this node delivered to the room
    epoch: str | None = None  # the room's epoch this node's welcomed viewers are in
    likes: int = 0  # likes received here since the last tick
    reported: bool = False  # presence reported at least once (so leaving reports 0)
    # Bubble experiments: per experiment definition, each viewer's variant (variants.py).
    plans: dict[Any, dict[Viewer, int]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.viewers) + len(self.joining)


class Hub:
    def __init__(self, metrics: Metrics, send_buffer_max_bytes: int) -> None:
        self.rooms: dict[int, LocalRoom] = {}
        self.metrics = metrics
        self.send_buffer_max = send_buffer_max_bytes
        self.per_ip: dict[str, int] = {}
        self.per_identity: dict[str, int] = {}
        # Open sockets by caller ("user:12"), for notices addressed to a user, not a room. A tuple
        # (at most max_connections_per_user long): 48 bytes per viewer where a set takes 216.
        self.by_identity: dict[str, tuple[Viewer, ...]] = {}
        # Variant pushes seen here: one encoded frame per variant per seq (variants.py).
        self.bubbles = VariantFrames()

    # ------------------------------------------------------------------ membership

    def admit(self, ip: str, identity: str, max_ip: int, max_identity: int) -> bool:
        """Count a new connection against the per-IP and per-user limits; False when over."""
        if self.per_ip.get(ip, 0) >= max_ip or self.per_identity.get(identity, 0) >= max_identity:
            return False
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.per_identity[identity] = self.per_identity.get(identity, 0) + 1
        return True

    def release(self, ip: str, identity: str) -> None:
        for table, key in ((self.per_ip, ip), (self.per_identity, identity)):
            left = table.get(key, 0) - 1
            if left > 0:
                table[key] = left
            else:
                table.pop(key, None)

    def begin_join(self, viewer: Viewer) -> LocalRoom:
        room = self.rooms.get(viewer.room_id)
        if room is None:
            room = self.rooms[viewer.room_id] = LocalRoom(viewer.room_id)
        room.joining[viewer] = []
        self.by_identity[viewer.identity] = (*self.by_identity.get(viewer.identity, ()), viewer)
        self.metrics.viewers.inc()
        return room

    def finish_join(self, viewer: Viewer, snapshot_seq: int, missed: Iterable[bytes]) -> None:
        """Write the missed frames and the buffered ones after the snapshot; go live when caught up.

        The caller has just written the welcome (or resync) frame.
        """
        room = self.rooms[viewer.room_id]
        buffered = room.joining.get(viewer, [])
        for payload in missed:
            viewer.write(variants.replay_frame(self, room, viewer, payload))
        for seq, frame in buffered:
            if seq > snapshot_seq:
                viewer.write(variants.buffered_frame(self, room, viewer, seq, frame))
        viewer.since = snapshot_seq
        room.joining[viewer] = []
        if room.last_seq is not None and room.last_seq >= snapshot_seq:
            del room.joining[viewer]
            room.viewers.add(viewer)

    def rejoin(self, viewer: Viewer) -> None:
        """Back to phase A (buffering) for a mid-connection resume."""
        room = self.rooms[viewer.room_id]
        room.viewers.discard(viewer)
        room.joining[viewer] = []
        viewer.since = None

    def leave(self, viewer: Viewer) -> None:
        room = self.rooms.get(viewer.room_id)
        if room is None:
            return
        mine = self.by_identity.get(viewer.identity)
        if mine is not None and viewer in mine:
            rest = tuple(v for v in mine if v is not viewer)
            if rest:
                self.by_identity[viewer.identity] = rest
            else:
                del self.by_identity[viewer.identity]
        present = viewer in room.viewers or viewer in room.joining
        room.viewers.discard(viewer)
        room.joining.pop(viewer, None)
        for plan in room.plans.values():
            plan.pop(viewer, None)
        if present:
            self.metrics.viewers.dec()
        if room.size == 0 and not room.reported:
            del self.rooms[viewer.room_id]

    def forget_if_empty(self, room_id: int) -> None:
        """Called by the tick after it reported the room's presence as 0."""
        room = self.rooms.get(room_id)
        if room is not None and room.size == 0:
            del self.rooms[room_id]

    # ------------------------------------------------------------------ fan-out

    def have(self, room_id: int) -> int | None:
        """The lowest seq up to which every welcomed local viewer of the room has every frame
        (None: no welcomed viewer here). A gap is filled from here, not from ``last_seq``: the
        first viewers of a room on this node may have had nothing delivered yet."""
        room = self.rooms.get(room_id)
        if room is None:
            return None
        lows = [v.since for v in room.joining if v.since is not None]
        if room.viewers and room.last_seq is not None:
            lows.append(room.last_seq)
        return min(lows) if lows else None

    def begin_resync(self, room_id: int) -> list[Viewer]:
        """The room's stream was reset: every welcomed viewer goes back to phase A (buffering),
        frames buffered for a pending snapshot are dropped (they belong to the old stream; such
        a join checks its snapshot's epoch itself) and ``last_seq`` is forgotten. Returns the
        viewers that now need a ``resync`` frame and :meth:`finish_join`."""
        room = self.rooms.get(room_id)
        if room is None:
            return []
        welcomed = [*room.viewers, *(v for v in room.joining if v.since is not None)]
        for v in room.joining:
            room.joining[v] = []
        for v in welcomed:
            self.rejoin(v)
        room.last_seq = None
        return welcomed

    def pending_snapshots(self, room_id: int) -> list[Viewer]:
        """Viewers of the room whose join (or resume) snapshot has not been written yet."""
        room = self.rooms.get(room_id)
        return [v for v in room.joining if v.since is None] if room is not None else []

    def deliver(self, room_id: int, seq: int, payload: bytes) -> None:
        """Fan one room frame out to this node's viewers (in seq order, each seq once)."""
        room = self.rooms.get(room_id)
        if room is None:
            return
        if MARKER in payload:  # a bubble experiment: each viewer its variant's frame
            entry = self.bubbles.get(room_id, seq, payload)
            if entry is not None:
                variants.deliver_variants(self, room, seq, entry)
                return
        fresh = room.last_seq is None or seq > room.last_seq
        if not fresh and not room.joining:
            return  # already delivered (e.g. gap fill raced the subscription)
        frame = ws_text_frame(payload)
        slow: list[Viewer] = []
        if fresh:
            room.last_seq = seq
            limit = self.send_buffer_max
            for v in room.viewers:
                t = v.transport
                if t is None or t.is_closing():
                    continue
                t.write(frame)
                if t.get_write_buffer_size() > limit:
                    slow.append(v)
            self.metrics.fanout.inc(len(room.viewers))
        if room.joining:
            # Not fresh: a gap fill for welcomed viewers that were behind the live ones.
            for v, buf in list(room.joining.items()):
                if v.since is None:
                    if fresh:
                        buf.append((seq, frame))
                    continue
                if seq > v.since:
                    v.write(frame)
                    v.since = seq  # it now has exactly seq
                    v.first = False  # a live frame reached it: too late to ``resume``
                if v.since == room.last_seq:  # it has what the live viewers have
                    del room.joining[v]
                    room.viewers.add(v)
        for v in slow:
            self.evict(v, CLOSE_TOO_SLOW, "too slow: reconnect and resume")

    def deliver_to(self, identity: str, payload: bytes) -> int:
        """Write a per-user frame (not room-sequenced) to that caller's sockets on this node."""
        viewers = self.by_identity.get(identity)
        if not viewers:
            return 0
        frame = ws_text_frame(payload)
        for v in viewers:
            # Only after its welcome (the first frame, docs/protocol.md): a notice for a socket
            # still joining is skipped (notices are also sent as subscribe messages).
            if v.since is not None and v.transport is not None and not v.transport.is_closing():
                v.write(frame)
        return len(viewers)

    def evict(self, viewer: Viewer, code: int, reason: str, *, slow: bool = True) -> None:
        """Stop writing to ``viewer`` now and close it (``slow``: counted as a send-buffer
        eviction). The close frame is queued behind what the buffer holds; a peer that does
        not answer it is aborted after a bound (``Conn.close``)."""
        self.leave(viewer)
        if slow:
            self.metrics.evictions.inc()
        viewer.close(code, reason)

    def local_viewers(self, room_id: int) -> int:
        room = self.rooms.get(room_id)
        return room.size if room else 0

    def all_viewers(self) -> Iterable[Viewer]:
        for room in list(self.rooms.values()):
            yield from list(room.viewers)
            yield from list(room.joining)
