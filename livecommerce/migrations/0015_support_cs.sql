-- Customer service (issue 18): WeChat message push inbox, conversations, the reply quota
-- ledger, outgoing replies and FAQ rules.

-- Every message/event WeChat pushed, once: dedup_key is 'm:<MsgId>' or, for events (no MsgId),
-- 'e:<FromUserName>:<CreateTime>'. The UNIQUE key is what makes WeChat's 3 tries (and two nodes
-- receiving them) one row; processed_at is set in the same transaction as the work it did.
CREATE TABLE support_inbox (
    id            bigserial PRIMARY KEY,
    dedup_key     text NOT NULL UNIQUE,
    openid        text NOT NULL,
    msg_type      text NOT NULL,
    content       text NOT NULL DEFAULT '',
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    outcome       text
);
CREATE INDEX support_inbox_pending_idx ON support_inbox (id) WHERE processed_at IS NULL;
CREATE INDEX support_inbox_openid_idx ON support_inbox (openid, id DESC);

-- One conversation per buyer (openid): who holds it (bot, queue, an agent) and its context.
-- Agents: accounts a host creates for their shop. Presence is a lease (online_until), renewed
-- by the agent's page: a refresh or reconnect within the lease changes nothing. `active` counts
-- the conversations the agent holds (<= capacity): assignment picks the least busy.
CREATE TABLE support_agents (
    id                bigserial PRIMARY KEY,
    host_id           bigint NOT NULL REFERENCES hosts (id),
    name              text NOT NULL,
    capacity          integer NOT NULL CHECK (capacity BETWEEN 1 AND 100),
    active            integer NOT NULL DEFAULT 0 CHECK (active >= 0 AND active <= capacity),
    online_until      timestamptz,
    last_assigned_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_agents_host_idx ON support_agents (host_id, id);

CREATE TABLE support_conversations (
    id               bigserial UNIQUE,
    openid           text PRIMARY KEY,
    agent_id         bigint REFERENCES support_agents (id),
    queued_at        timestamptz,
    state            text NOT NULL DEFAULT 'bot'
                       CHECK (state IN ('bot', 'queued', 'agent', 'closed')),
    misses           integer NOT NULL DEFAULT 0,
    session_from     text NOT NULL DEFAULT '',
    -- The goods the buyer last showed interest in (SessionFrom 'goods:<id>' or a goods card).
    last_goods_id    bigint,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'agent') = (agent_id IS NOT NULL))
);
CREATE INDEX support_conversations_queue_idx ON support_conversations (queued_at, id)
    WHERE state = 'queued';
CREATE INDEX support_conversations_agent_idx ON support_conversations (agent_id)
    WHERE state = 'agent';

-- WeChat's reply window per buyer: a user message opens 5 replies within 48 h; entering the
-- session 2 within 1 min. Reset when the message is *received* (before the ack, as WeChat sees
-- it), consumed before every send. Its own table: the ack path never waits for a conversation
-- lock held by processing.
CREATE TABLE support_windows (
    openid        text PRIMARY KEY,
    last_user_at  timestamptz NOT NULL,
    window_until  timestamptz NOT NULL,
    window_limit  integer NOT NULL,
    window_sent   integer NOT NULL DEFAULT 0 CHECK (window_sent >= 0),
    -- Set when the "an answer is waiting" subscribe message went out for this closed window.
    followed_up   boolean NOT NULL DEFAULT false
);

-- Every state change of a conversation (bot -> queued -> agent -> closed -> bot), for audit.
CREATE TABLE support_transitions (
    id          bigserial PRIMARY KEY,
    openid      text NOT NULL,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    reason      text NOT NULL,
    agent_id    bigint,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_transitions_openid_idx ON support_transitions (openid, id);

-- Replies decided while processing an inbox row (seq = 0, 1, ... within it): sent after the
-- acknowledgement. skipped_quota = not sent because the window was closed or used up.
CREATE TABLE support_replies (
    id            bigserial PRIMARY KEY,
    inbox_id      bigint REFERENCES support_inbox (id),
    seq           integer NOT NULL DEFAULT 0,
    openid        text NOT NULL,
    kind          text NOT NULL,
    body          jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'skipped_quota', 'refused', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    claimed_until timestamptz,
    errcode       integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    UNIQUE (inbox_id, seq)
);
CREATE INDEX support_replies_pending_idx ON support_replies (id) WHERE state = 'pending';
CREATE INDEX support_replies_openid_idx ON support_replies (openid, id DESC);

-- FAQ rules (host-editable): keywords (any matches), higher priority wins.
CREATE TABLE support_faq (
    id           bigserial PRIMARY KEY,
    host_id      bigint REFERENCES hosts (id),
    keywords     text[] NOT NULL,
    answer       text NOT NULL,
    page_path    text,
    priority     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);
