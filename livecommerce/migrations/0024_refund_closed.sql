-- Refunds that WeChat Pay closes (REFUND.CLOSED: the buyer was NOT paid back; WeChat closes a
-- refund that stayed processing for 7 days without enough merchant balance, and a closed
-- out_refund_no is final: money can only go back under a new one). See commerce/refunds.py.
--
-- A closed refund no longer counts as refunded (every sum already skips 'closed'), and in the
-- transaction that closes it (refunds.close):
--   * an order that refund had left `refunded` by a host's decision (goodwill, approved
--     after-sales) goes back to where it was (paid / shipped / completed) so the host can refund
--     it again; a refund the shop owes whatever happens (a second payment, a failed group, a
--     late payment, ...) is re-issued as a new refund row (reissue_of, source 'reissue:<id>');
--   * the order event 'refund_closed' below gives back the purchase points the refund had
--     reversed (once), and for an order that went back, the points spent on it that its full
--     refund had restored, and its group membership.

-- The re-issue of a closed refund (one at most: its source_key 'reissue:<closed id>' is unique).
ALTER TABLE refunds ADD COLUMN reissue_of bigint REFERENCES refunds (id);

-- Ledger kinds: purchase points given back because the refund that reversed them was closed
-- (delta >= 0; shortfall = the earlier reversals' shortfall cancelled, never taken, so not
-- credited), and the points spent on an order taken again when its full refund was closed
-- (the spend restore undone; shortfall = what the buyer had already used).
ALTER TABLE points_entries DROP CONSTRAINT points_entries_kind_check;
ALTER TABLE points_entries ADD CONSTRAINT points_entries_kind_check CHECK (kind IN (
    'checkin', 'share', 'purchase', 'purchase_reversal', 'spend', 'spend_restore', 'expire',
    'purchase_restore', 'spend_restore_reversal'));

-- A refund that becomes closed (any path: notification, query, a create answer) adds one order
-- event in the same transaction, applied by the social worker after the refund's own 'refund'
-- event (one order's events apply in order), exactly once like the others.
CREATE FUNCTION lc_refund_closed_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_events (order_id, user_id, old_status, new_status, refund_id)
    SELECT NEW.order_id, NEW.user_id, o.status, 'refund_closed', NEW.id
    FROM orders o WHERE o.id = NEW.order_id;
    PERFORM pg_notify('lc_order_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER refunds_closed_event AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN (NEW.status = 'closed' AND OLD.status IS DISTINCT FROM 'closed')
    EXECUTE FUNCTION lc_refund_closed_event();

-- An order leaves `refunded` only when its refund was closed (back to paid / shipped /
-- completed): that move records no paid event (which would count a group member again or
-- refund a group order as "paid late"); the 'refund_closed' event carries its effects.
CREATE OR REPLACE TRIGGER orders_social_events AFTER UPDATE OF status ON orders FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND OLD.status <> 'refunded'
          AND NEW.status IN ('paid', 'cancelled', 'refunded'))
    EXECUTE FUNCTION lc_order_event();

-- A payment marked refund_required again after its refund was closed (an after-sales request
-- approved again for an order that went back): the next refund gets a new source key
-- ('payment:<txn>:2', ...), since the closed row keeps 'payment:<txn>'. What is owed is still
-- what is left after the refunds that are not closed, so a live refund covering it adds none.
CREATE OR REPLACE FUNCTION lc_refund_required() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    left_fen bigint;
    base text := 'payment:' || NEW.transaction_id;
    earlier bigint;
BEGIN
    SELECT NEW.amount_fen - COALESCE(sum(amount_fen), 0) INTO left_fen
    FROM refunds WHERE transaction_id = NEW.transaction_id AND status <> 'closed';
    IF left_fen > 0 THEN
        SELECT count(*) INTO earlier FROM refunds
        WHERE source_key = base OR left(source_key, length(base) + 1) = base || ':';
        INSERT INTO refunds (order_id, user_id, transaction_id, amount_fen, payment_fen, reason,
                             source_key)
        SELECT NEW.order_id, o.user_id, NEW.transaction_id, left_fen, NEW.amount_fen,
               COALESCE(o.cancel_reason, 'refund_required'),
               CASE WHEN earlier = 0 THEN base ELSE base || ':' || (earlier + 1) END
        FROM orders o WHERE o.id = NEW.order_id
        ON CONFLICT (source_key) DO NOTHING;
        PERFORM pg_notify('lc_refunds', '');
    END IF;
    RETURN NULL;
END $$;
