-- Comment moderation (issue 14): per-room rules, muted authors, comments held for the host.
-- PostgreSQL is the record; Redis keeps a copy for the comment path (lc:{room:ID}:mod/:mutes),
-- written with `version` so an older copy never replaces a newer one, rebuilt when missing.

-- One row per room that has rules (no row = defaults). unchecked_policy: what happens to a
-- comment WeChat's content check could not judge (outage, author without an openid).
CREATE TABLE room_moderation (
    room_id           bigint PRIMARY KEY REFERENCES live_rooms (id) ON DELETE CASCADE,
    room_muted        boolean NOT NULL DEFAULT false,
    unchecked_policy  text NOT NULL DEFAULT 'show' CHECK (unchecked_policy IN ('hold', 'show')),
    blocked_words     text[] NOT NULL DEFAULT '{}',
    version           bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A muted author in a room: 'user:<id>', 'viewer:<id>' or 'host:<id>' (the comment frame's
-- user kind and id). muted_until NULL: until unmuted.
CREATE TABLE room_mutes (
    room_id      bigint NOT NULL REFERENCES live_rooms (id) ON DELETE CASCADE,
    author       text NOT NULL CHECK (length(author) BETWEEN 3 AND 40),
    muted_until  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, author)
);

-- Comments waiting for the host: WeChat said `review`, or they could not be checked and the
-- room's policy is `hold`. Approved ones are published once (published_seq).
CREATE TABLE held_comments (
    id             bigserial PRIMARY KEY,
    room_id        bigint NOT NULL REFERENCES live_rooms (id) ON DELETE CASCADE,
    author         text NOT NULL,
    text           text NOT NULL,
    reason         text NOT NULL CHECK (reason IN ('review', 'unchecked')),
    status         text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'approved', 'rejected')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz,
    published_seq  bigint
);
CREATE INDEX held_comments_pending_idx ON held_comments (room_id, id) WHERE status = 'held';
