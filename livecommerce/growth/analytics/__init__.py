"""Analytics: client and server events into a day-partitioned PostgreSQL store, and reports."""
