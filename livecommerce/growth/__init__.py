"""Growth: analytics (event ingestion, reports) and experiments."""
