-- The notification outbox: events for a user (order paid/shipped, group succeeded, ...) are
-- inserted in the same transaction as the change they announce, then delivered by a sender
-- task: to the user's open sockets (live) and as a WeChat subscribe message (durable).

CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id),
    kind             text NOT NULL CHECK (length(kind) BETWEEN 1 AND 50),
    -- One notification per event however often the event is applied (replays, retries).
    dedupe_key       text NOT NULL UNIQUE,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
