-- Group-success messages now go through the shared notification outbox (0006): one queue,
-- one sender, one retry policy for every subscribe message.
DROP TABLE group_notifications;
