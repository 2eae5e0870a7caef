-- Every refund row reverses its share of the order's purchase points (partial refunds too).
--
-- A refund row (any path: the refund_required trigger, a host's goodwill refund, an approved
-- after-sales request) adds one order event 'refund' in the transaction that creates it. The
-- social worker applies it like the other order events (once: applied and deleted in one
-- transaction) and reverses the purchase credit up to
--     floor(credited x refunded / paid)
-- where refunded is the sum of the refunds of the order's own payment that are not closed:
-- partial refunds add up, the reversals never exceed the credit, and a refund of another
-- transaction of the same order (a double payment) reverses nothing.
ALTER TABLE order_events ADD COLUMN refund_id bigint;

CREATE FUNCTION lc_refund_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_events (order_id, user_id, old_status, new_status, refund_id)
    SELECT NEW.order_id, NEW.user_id, o.status, 'refund', NEW.id
    FROM orders o WHERE o.id = NEW.order_id;
    PERFORM pg_notify('lc_order_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER refunds_order_event AFTER INSERT ON refunds
    FOR EACH ROW EXECUTE FUNCTION lc_refund_event();
