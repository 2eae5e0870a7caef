-- Analytics events (issue 16): one row per event, client (`source` 'client') or server-side.
--
-- `analytics_events` is partitioned by day of `occurred_at` (the skew-corrected, clamped event
-- time); livecommerce/growth/analytics/partitions.py creates partitions ahead and drops those
-- past `analytics.retention_days`. There is no DEFAULT partition (rows outside every partition
-- make the writer create the missing one and retry).
--
-- Exactly once: a unique index on a partitioned table must include the partition key, and a
-- retried event can get another corrected time (another `sent_at`), so the client event id is
-- made unique in `analytics_event_ids` (not partitioned). The writer inserts there first
-- (ON CONFLICT DO NOTHING RETURNING) and stores only the events it got back, in one statement.
CREATE TABLE analytics_event_ids (
    event_id  uuid PRIMARY KEY,
    stored_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE analytics_events (
    event_id    uuid        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    source      text        NOT NULL,           -- 'client' | 'server'
    clamped     boolean     NOT NULL DEFAULT false,
    actor       text        NOT NULL,           -- 'user:<id>' | 'viewer:<anon-..>' | 'server'
    user_id     bigint,
    room_id     bigint,
    goods_id    bigint,
    push_seq    bigint,                         -- the bubble's seq (or schedule id)
    order_id    bigint,
    amount_fen  bigint,
    page        text,
    variants    jsonb,
    props       jsonb
) PARTITION BY RANGE (occurred_at);

-- The reports' access paths and no more: per room (bubble funnels, room curves, funnels by
-- room) and per goods (goods per day, funnels by goods). Declared on the parent, so every
-- partition gets them.
CREATE INDEX analytics_events_room ON analytics_events (room_id, occurred_at) WHERE room_id IS NOT NULL;
CREATE INDEX analytics_events_goods ON analytics_events (goods_id, occurred_at) WHERE goods_id IS NOT NULL;
-- Retention of the dedup ids (oldest first).
CREATE INDEX analytics_event_ids_stored ON analytics_event_ids (stored_at);
