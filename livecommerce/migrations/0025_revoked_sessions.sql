-- Sign-out ends that one session on the server (docs/api.md, "Console"; auth/revocation.py).
-- A console or agent session's token carries a random id (`sid`); signing out records it here
-- until the token's own expiry, and every /api/ request presenting that token answers 401
-- `session_revoked` (checked in console/session_guard.py with the host's password version:
-- one statement, primary-key lookups). Rows past expires_at are deleted by each node's purge.
CREATE TABLE revoked_sessions (
    sid         text PRIMARY KEY,
    kind        text NOT NULL,
    subject     text NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_sessions_expires_idx ON revoked_sessions (expires_at);
