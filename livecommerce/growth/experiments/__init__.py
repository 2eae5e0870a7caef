"""A/B experiments: GrowthBook-compatible bucketing, storage, assignments, results statistics."""
