-- A new password ends the agent's sessions (docs/support.md, "Agent accounts and sign-in").
-- An agent's password version: 0 for an account whose password was never changed, one more at
-- every change by the host (PATCH /api/host/support/agents/{id} with a password). An agent's
-- session token carries the version it was signed in with (`sv`); console/session_guard.py
-- reads the current one in the statement that reads the signed-out ids and a host's version
-- (a primary-key lookup), so a session of an older password answers 401 `session_revoked` on
-- every node at once. A counter, not a timestamp: exact, whatever the clocks or the order in
-- which two changes' transactions started. Agent tokens issued before this migration carry no
-- version and count as ended (the agent signs in again once).
ALTER TABLE support_agents ADD COLUMN password_version bigint NOT NULL DEFAULT 0;
