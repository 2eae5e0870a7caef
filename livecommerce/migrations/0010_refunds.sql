-- Refunds through WeChat Pay v3 (POST /v3/refund/domestic/refunds), and after-sales requests.
--
-- One row per refund we owe. out_refund_no = 'RF' || zero-padded id: made once per row, sent
-- unchanged on every retry, so WeChat Pay makes the refund at most once. source_key names why
-- the refund exists (unique): a payment that must go back in full ('payment:<transaction id>',
-- created by the trigger below whatever code path marked it refund_required, approved
-- after-sales requests included), or a host's goodwill refund ('goodwill:<order>:<key>').
--
-- States: pending (not yet accepted by WeChat) -> processing -> success | abnormal | closed.
-- Refunds of one payment never add up to more than it paid: every insert locks the payment row
-- and checks the sum of the refunds that are not closed.
CREATE TABLE refunds (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL REFERENCES orders (id),
    user_id          bigint NOT NULL REFERENCES users (id),
    transaction_id   text NOT NULL REFERENCES payments (transaction_id),
    amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
    payment_fen      bigint NOT NULL CHECK (payment_fen >= amount_fen),
    reason           text NOT NULL,
    source_key       text NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'success', 'abnormal', 'closed')),
    refund_id        text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX refunds_due_idx ON refunds (next_attempt_at) WHERE status IN ('pending', 'processing');
CREATE INDEX refunds_order_idx ON refunds (order_id, id);
CREATE INDEX refunds_txn_idx ON refunds (transaction_id);

-- The URL WeChat Pay notifies for this order's payment (set at prepay): refund notifications
-- go to its sibling /api/pay/wechat/refund-notify when wechatpay.refund_notify_url is empty.
ALTER TABLE orders ADD COLUMN pay_notify_url text;

-- A payment marked refund_required (double payment, late payment with the stock gone, a failed
-- group, a released flash-sale unit, ...) gets its refund row in the same transaction: what is
-- left of it after earlier (e.g. goodwill) refunds.
CREATE FUNCTION lc_refund_required() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    left_fen bigint;
BEGIN
    SELECT NEW.amount_fen - COALESCE(sum(amount_fen), 0) INTO left_fen
    FROM refunds WHERE transaction_id = NEW.transaction_id AND status <> 'closed';
    IF left_fen > 0 THEN
        INSERT INTO refunds (order_id, user_id, transaction_id, amount_fen, payment_fen, reason,
                             source_key)
        SELECT NEW.order_id, o.user_id, NEW.transaction_id, left_fen, NEW.amount_fen,
               COALESCE(o.cancel_reason, 'refund_required'), 'payment:' || NEW.transaction_id
        FROM orders o WHERE o.id = NEW.order_id
        ON CONFLICT (source_key) DO NOTHING;
        PERFORM pg_notify('lc_refunds', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER payments_refund_required AFTER INSERT OR UPDATE OF outcome ON payments
    FOR EACH ROW WHEN (NEW.outcome = 'refund_required')
    EXECUTE FUNCTION lc_refund_required();

-- After-sales: a buyer asks for a refund of a paid or shipped order; the host decides.
-- requested -> approved (the order is refunded, its payment refund_required) | rejected.
CREATE TABLE after_sales (
    id            bigserial PRIMARY KEY,
    order_id      bigint NOT NULL REFERENCES orders (id),
    user_id       bigint NOT NULL REFERENCES users (id),
    host_id       bigint REFERENCES hosts (id),
    reason        text NOT NULL,
    return_goods  boolean NOT NULL DEFAULT false,
    status        text NOT NULL DEFAULT 'requested'
                    CHECK (status IN ('requested', 'approved', 'rejected')),
    host_note     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz
);
-- At most one open request per order.
CREATE UNIQUE INDEX after_sales_open_idx ON after_sales (order_id) WHERE status = 'requested';
CREATE INDEX after_sales_host_idx ON after_sales (host_id, status, id);
