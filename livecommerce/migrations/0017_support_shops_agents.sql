-- Customer service, second part (issue 18): conversations scoped to a shop (a host), agents as
-- accounts with their own sign-in, canned replies per shop.

-- The shop a conversation belongs to (see docs/support.md, "Which shop"): set from the chat's
-- context (SessionFrom room/goods, a goods card, one of the buyer's own orders) while the bot
-- holds it, frozen while queued or with an agent. NULL = unscoped: only the admin (or
-- support.default_host_id) sees it.
ALTER TABLE support_conversations ADD COLUMN host_id bigint REFERENCES hosts (id);
DROP INDEX support_conversations_queue_idx;
CREATE INDEX support_conversations_queue_idx ON support_conversations (host_id, queued_at, id)
    WHERE state = 'queued';

-- An agent signs in with `login` (unique across agents) and a password hashed like a host's
-- (scrypt, livecommerce/console/passwords.py). Pre-existing agents have no login until the host
-- sets one.
ALTER TABLE support_agents ADD COLUMN login text UNIQUE;
ALTER TABLE support_agents ADD COLUMN password_hash text;

-- Canned replies of a shop, used from the agent workspace.
CREATE TABLE support_canned (
    id          bigserial PRIMARY KEY,
    host_id     bigint NOT NULL REFERENCES hosts (id),
    title       text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_canned_host_idx ON support_canned (host_id, id);

-- "The goods the buyer most recently tapped" (the shop of an otherwise unscoped hand-off and
-- the agent's view of the buyer): a user's latest events that name goods. Partial: only
-- events of a signed-in user about goods are indexed.
CREATE INDEX analytics_events_user_goods ON analytics_events (user_id, occurred_at DESC)
    WHERE user_id IS NOT NULL AND goods_id IS NOT NULL;
