"""User notifications: a PostgreSQL outbox and the sender that delivers it."""
