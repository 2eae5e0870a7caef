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
-- Retention of the dedup ids (oldest first): BRIN, as ids are appended in stored_at order (a
-- few pages, next to nothing per insert, unlike a second B-tree on the hot path).
CREATE INDEX analytics_event_ids_stored ON analytics_event_ids USING brin (stored_at);

-- Server-side events, recorded in the same transaction as the fact they describe (so exactly
-- once, by construction, with no edit to the services): order placed / paid / refunded, group
-- formed / failed, flash-sale purchase. The event id is derived from what makes the fact unique
-- (md5 of '<type>:<row id>' as a uuid). A missing partition (maintenance has not run) must never
-- fail an order: the insert is then skipped, with a WARNING in the server log.
-- (Pushes are recorded by the app from the room publish path: growth/analytics/server_events.py.)
CREATE FUNCTION lc_analytics_server_event(
    p_type text, p_key text, p_user bigint, p_goods bigint, p_order bigint, p_amount bigint,
    p_props jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := md5(p_type || ':' || p_key)::uuid;
BEGIN
    INSERT INTO analytics_event_ids (event_id) VALUES (v_id) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO analytics_events (event_id, type, occurred_at, received_at, source, actor,
                                  user_id, goods_id, order_id, amount_fen, props)
    VALUES (v_id, p_type, clock_timestamp(), clock_timestamp(), 'server',
            CASE WHEN p_user IS NULL THEN 'server' ELSE 'user:' || p_user END,
            p_user, p_goods, p_order, p_amount, p_props);
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'analytics: no partition for %, event % not recorded', clock_timestamp(), p_type;
END $$;

CREATE FUNCTION lc_analytics_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM lc_analytics_server_event('order_placed', NEW.id::text, NEW.user_id, NEW.goods_id,
                                          NEW.id, NEW.total_fen, jsonb_build_object('quantity', NEW.quantity));
    ELSIF NEW.status = 'paid' THEN
        PERFORM lc_analytics_server_event('order_paid', NEW.id::text, NEW.user_id, NEW.goods_id,
                                          NEW.id, NEW.total_fen, NULL);
    ELSIF NEW.status = 'refunded' THEN
        PERFORM lc_analytics_server_event('order_refunded', NEW.id::text, NEW.user_id,
                                          NEW.goods_id, NEW.id, NEW.total_fen, NULL);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_analytics_insert AFTER INSERT ON orders FOR EACH ROW
    EXECUTE FUNCTION lc_analytics_order();
CREATE TRIGGER orders_analytics_status AFTER UPDATE OF status ON orders FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('paid', 'refunded'))
    EXECUTE FUNCTION lc_analytics_order();

CREATE FUNCTION lc_analytics_group() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_goods bigint;
BEGIN
    SELECT goods_id INTO v_goods FROM group_offers WHERE id = NEW.offer_id;
    PERFORM lc_analytics_server_event(
        CASE WHEN NEW.status = 'succeeded' THEN 'group_formed' ELSE 'group_failed' END,
        NEW.id::text, NULL, v_goods, NULL, NULL,
        jsonb_build_object('group_id', NEW.id, 'size', NEW.size, 'paid', NEW.paid));
    RETURN NULL;
END $$;
CREATE TRIGGER groups_analytics AFTER UPDATE OF status ON groups FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('succeeded', 'failed'))
    EXECUTE FUNCTION lc_analytics_group();

CREATE FUNCTION lc_analytics_flash() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_order record;
BEGIN
    SELECT goods_id, total_fen INTO v_order FROM orders WHERE id = NEW.order_id;
    PERFORM lc_analytics_server_event('flash_sale_purchase', NEW.order_id::text, NEW.user_id,
                                      v_order.goods_id, NEW.order_id, v_order.total_fen,
                                      jsonb_build_object('sale_id', NEW.sale_id,
                                                         'quantity', NEW.quantity));
    RETURN NULL;
END $$;
CREATE TRIGGER flash_sale_orders_analytics AFTER INSERT ON flash_sale_orders FOR EACH ROW
    EXECUTE FUNCTION lc_analytics_flash();
