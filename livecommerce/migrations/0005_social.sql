-- Social commerce: flash sales, the points ledger, group buying, and the order-event outbox that
-- connects them to the order state machine without touching its code.
-- Money is integer fen; points are integers.

-- Order events (transactional outbox). Every order move to paid, cancelled or refunded — by any
-- code path: buyer, reaper, payment notification, refund — inserts one row here in the same
-- transaction, and wakes the social workers (NOTIFY). Workers on any node claim rows with
-- FOR UPDATE SKIP LOCKED, apply the social effect and delete the row in one transaction, so
-- each event's effect happens once (effects are idempotent by key besides).
CREATE TABLE order_events (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    user_id     bigint NOT NULL,
    old_status  text NOT NULL,
    new_status  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order_idx ON order_events (order_id, id);

CREATE FUNCTION lc_order_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_events (order_id, user_id, old_status, new_status)
    VALUES (NEW.id, NEW.user_id, OLD.status, NEW.status);
    PERFORM pg_notify('lc_order_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER orders_social_events AFTER UPDATE OF status ON orders FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('paid', 'cancelled', 'refunded'))
    EXECUTE FUNCTION lc_order_event();

-- Flash sales. `sold` counts units held by live orders of the sale (pending, paid, shipped,
-- completed) and never exceeds `stock`: the final guard behind the Redis stock gate, and what
-- Redis is rebuilt from after a restart.
CREATE TABLE flash_sales (
    id               bigserial PRIMARY KEY,
    host_id          bigint NOT NULL REFERENCES hosts (id),
    goods_id         bigint NOT NULL REFERENCES goods (id),
    sale_price_fen   bigint NOT NULL CHECK (sale_price_fen >= 0),
    stock            integer NOT NULL CHECK (stock > 0),
    sold             integer NOT NULL DEFAULT 0 CHECK (sold >= 0 AND sold <= stock),
    per_user_limit   integer NOT NULL CHECK (per_user_limit > 0),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flash_sales_goods_idx ON flash_sales (goods_id);

-- Units each buyer holds in a sale (the per-user limit's guard in PostgreSQL).
CREATE TABLE flash_sale_buyers (
    sale_id   bigint NOT NULL REFERENCES flash_sales (id),
    user_id   bigint NOT NULL REFERENCES users (id),
    quantity  integer NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (sale_id, user_id)
);

-- The orders of a sale; `claim` is the Redis claim id, `holding` is true until the unit goes
-- back to the sale (cancel, unpaid timeout, refund) — flipped once, conditionally.
CREATE TABLE flash_sale_orders (
    order_id  bigint PRIMARY KEY REFERENCES orders (id),
    sale_id   bigint NOT NULL REFERENCES flash_sales (id),
    user_id   bigint NOT NULL REFERENCES users (id),
    quantity  integer NOT NULL CHECK (quantity > 0),
    claim     text NOT NULL,
    holding   boolean NOT NULL DEFAULT true
);
CREATE INDEX flash_sale_orders_sale_idx ON flash_sale_orders (sale_id) WHERE holding;

-- Points. One account row per user: every ledger change locks it first (per-user
-- serialization), and its CHECK is the last word on "the balance never goes negative".
CREATE TABLE points_accounts (
    user_id  bigint PRIMARY KEY REFERENCES users (id),
    balance  integer NOT NULL DEFAULT 0 CHECK (balance >= 0)
);

-- The ledger: immutable entries, one per event, unique per (user, idempotency key).
CREATE TABLE points_entries (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id),
    kind             text NOT NULL CHECK (kind IN ('checkin', 'share', 'purchase',
                       'purchase_reversal', 'spend', 'spend_restore', 'expire')),
    delta            integer NOT NULL,
    balance_after    integer NOT NULL CHECK (balance_after >= 0),
    -- The calendar day of the entry in the configured points time zone.
    day              date NOT NULL,
    idempotency_key  text NOT NULL,
    order_id         bigint,
    -- Points a reversal could not take back because they were already spent.
    shortfall        integer NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX points_entries_user_idx ON points_entries (user_id, id DESC);
CREATE INDEX points_entries_share_idx ON points_entries (user_id, day) WHERE kind = 'share';

CREATE FUNCTION lc_points_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'points_entries are immutable' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER points_entries_immutable BEFORE UPDATE OR DELETE ON points_entries
    FOR EACH ROW EXECUTE FUNCTION lc_points_immutable();

-- Credits arrive in lots with an expiry; spending takes the soonest-expiring lots first.
CREATE TABLE points_lots (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    entry_id    bigint NOT NULL REFERENCES points_entries (id),
    amount      integer NOT NULL CHECK (amount > 0),
    remaining   integer NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX points_lots_user_idx ON points_lots (user_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX points_lots_due_idx ON points_lots (expires_at) WHERE remaining > 0;

-- Which lots each debit took from (to restore a spend exactly, and to audit).
CREATE TABLE points_debits (
    entry_id  bigint NOT NULL REFERENCES points_entries (id),
    lot_id    bigint NOT NULL REFERENCES points_lots (id),
    amount    integer NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, lot_id)
);

-- One check-in per user per calendar day (in the configured time zone): the unique key is
-- the guard, not a read-then-write.
CREATE TABLE points_checkins (
    user_id  bigint NOT NULL REFERENCES users (id),
    day      date NOT NULL,
    PRIMARY KEY (user_id, day)
);

-- Group buying. An offer on a goods; groups of `size` members who each pay the group price.
CREATE TABLE group_offers (
    id                bigserial PRIMARY KEY,
    host_id           bigint NOT NULL REFERENCES hosts (id),
    goods_id          bigint NOT NULL REFERENCES goods (id),
    group_price_fen   bigint NOT NULL CHECK (group_price_fen >= 0),
    size              integer NOT NULL CHECK (size BETWEEN 2 AND 100),
    fill_seconds      integer NOT NULL CHECK (fill_seconds > 0),
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX group_offers_goods_idx ON group_offers (goods_id);

-- pending: the opener has not paid yet (not joinable); open: joinable until expires_at;
-- succeeded: `size` members paid; failed: expired unfilled (members refunded);
-- cancelled: the opener never paid.
-- `seats` counts members holding a seat (pending or paid): joins take a seat with a conditional
-- UPDATE (seats < size), so a group can never have more than `size` members.
CREATE TABLE groups (
    id            bigserial PRIMARY KEY,
    offer_id      bigint NOT NULL REFERENCES group_offers (id),
    leader_id     bigint NOT NULL REFERENCES users (id),
    size          integer NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'open', 'succeeded', 'failed', 'cancelled')),
    seats         integer NOT NULL DEFAULT 1 CHECK (seats >= 0 AND seats <= size),
    paid          integer NOT NULL DEFAULT 0 CHECK (paid >= 0 AND paid <= size),
    expires_at    timestamptz,
    finished_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_open_idx ON groups (offer_id, expires_at) WHERE status = 'open';
CREATE INDEX groups_due_idx ON groups (expires_at) WHERE status = 'open';

CREATE TABLE group_members (
    group_id   bigint NOT NULL REFERENCES groups (id),
    user_id    bigint NOT NULL REFERENCES users (id),
    order_id   bigint NOT NULL UNIQUE REFERENCES orders (id),
    status     text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'paid', 'cancelled', 'refunded')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);

-- Success notifications: one row per member, created when the group flips to succeeded; a
-- sender claims rows with FOR UPDATE SKIP LOCKED and marks them sent (or refused/failed).
CREATE TABLE group_notifications (
    group_id    bigint NOT NULL REFERENCES groups (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'refused',
                  'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_notifications_due_idx ON group_notifications (next_at) WHERE status = 'pending';
