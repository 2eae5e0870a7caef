-- Customer service (issue 18): a conversation with a human (queued, with an agent, or closed)
-- that sees no message for `support.idle_seconds` goes back to the bot (docs/support.md).
-- last_message_at: the buyer's latest message (processed) or the agent's latest reply; the idle
-- clock runs from the later of it and the latest transition (updated_at).
ALTER TABLE support_conversations ADD COLUMN last_message_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX support_conversations_idle_idx ON support_conversations (last_message_at)
    WHERE state <> 'bot';
