-- Commerce: WeChat login state, goods feed index, orders and WeChat Pay payments.
-- Money is integer fen everywhere. Orders snapshot the price; stock is reserved by a
-- conditional UPDATE on goods (never negative: goods.stock has CHECK (stock >= 0)).

-- The session_key WeChat returns at login: kept server-side only (never in a response or log).
ALTER TABLE users ADD COLUMN wx_session_key text NOT NULL DEFAULT '';

-- The waterfall feed walks goods newest first by id (immutable, so stable under inserts and
-- edits); partial indexes serve the unfiltered and per-category feeds.
CREATE INDEX goods_feed_idx ON goods (id DESC) WHERE status = 'on_sale';
CREATE INDEX goods_feed_category_idx ON goods (category, id DESC) WHERE status = 'on_sale';
CREATE INDEX goods_host_idx ON goods (host_id);

CREATE TABLE orders (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id),
    goods_id         bigint NOT NULL REFERENCES goods (id),
    host_id          bigint REFERENCES hosts (id),
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_fen   bigint NOT NULL CHECK (unit_price_fen >= 0),
    total_fen        bigint NOT NULL CHECK (total_fen >= 0),
    title            text NOT NULL,
    image            text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'pending_payment' CHECK (status IN
                       ('pending_payment', 'paid', 'shipped', 'completed', 'cancelled', 'refunded')),
    -- True while this order holds `quantity` units of goods.stock (pending, paid, shipped...).
    stock_held       boolean NOT NULL DEFAULT true,
    idempotency_key  text NOT NULL,
    carrier          text,
    tracking_no      text,
    transaction_id   text,
    cancel_reason    text,
    expires_at       timestamptz NOT NULL,
    paid_at          timestamptz,
    shipped_at       timestamptz,
    completed_at     timestamptz,
    cancelled_at     timestamptz,
    refunded_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_user_idx ON orders (user_id, id DESC);
CREATE INDEX orders_host_idx ON orders (host_id, id DESC);
CREATE INDEX orders_due_idx ON orders (expires_at) WHERE status = 'pending_payment';

-- One row per WeChat Pay transaction id: the primary key is what makes a notification apply
-- exactly once (a replay finds its row and is answered "already processed").
CREATE TABLE payments (
    transaction_id  text PRIMARY KEY,
    order_id        bigint NOT NULL REFERENCES orders (id),
    amount_fen      bigint NOT NULL CHECK (amount_fen >= 0),
    -- applied: the order became paid; refund_required: the money must go back (the order was
    -- cancelled and its stock sold, or it was already paid by another transaction).
    outcome         text NOT NULL CHECK (outcome IN ('applied', 'refund_required')),
    payer_openid    text NOT NULL DEFAULT '',
    success_time    text NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order_idx ON payments (order_id);
