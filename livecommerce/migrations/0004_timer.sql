-- Scheduled goods pushes: the durable record of every planned bubble and its outcome.
-- The Redis timer wheel only drives firing and is rebuilt from the pending rows here.

CREATE TABLE live_schedules (
    id               bigserial PRIMARY KEY,
    room_id          bigint NOT NULL REFERENCES live_rooms (id) ON DELETE CASCADE,
    goods_id         bigint NOT NULL REFERENCES goods (id),
    show_seconds     integer NOT NULL CHECK (show_seconds > 0),
    -- Absolute due time; NULL while an offset waits for the room's actual start.
    due_at           timestamptz,
    -- Set for "+MM:SS from the actual start" schedules; re-resolved if the start is corrected.
    offset_ms        bigint CHECK (offset_ms >= 0),
    idempotency_key  text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'fired', 'cancelled', 'skipped')),
    -- Bumped on every reschedule: a wheel entry names (id, version), so a stale entry never fires.
    version          integer NOT NULL DEFAULT 1,
    fired_at         timestamptz,
    lateness_ms      integer,
    late             boolean NOT NULL DEFAULT false,
    publish_seq      bigint,
    -- Why a push was skipped: too_late (past timer.max_lateness_seconds), room_not_live, goods_gone.
    skip_reason      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (due_at IS NOT NULL OR offset_ms IS NOT NULL),
    UNIQUE (room_id, idempotency_key)
);
CREATE INDEX live_schedules_pending_idx ON live_schedules (due_at) WHERE status = 'pending';
CREATE INDEX live_schedules_room_idx ON live_schedules (room_id, due_at);
