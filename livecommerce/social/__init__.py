"""Social commerce: flash sales, the points ledger and group buying (see each module)."""
