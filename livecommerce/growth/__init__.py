"""Growth capabilities: analytics (events, funnels) and experiments (A/B bucketing, statistics)."""
