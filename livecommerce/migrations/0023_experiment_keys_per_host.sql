-- Experiment keys are unique per host, not across all hosts (docs/experiments.md): host B may
-- call its test `bubble-price` although host A has one, and B's create no longer answers 409
-- `key_taken` for A's key (which told B that A had such an experiment, even a draft).
-- Every key lookup is scoped to a host: a client event's room (else goods) gives it.
-- Existing rows stay valid: keys unique across hosts are unique per host. The new index also
-- serves the (host, key) lookups.
ALTER TABLE experiments DROP CONSTRAINT experiments_key_key;
ALTER TABLE experiments ADD CONSTRAINT experiments_host_key_key UNIQUE (host_id, key);
