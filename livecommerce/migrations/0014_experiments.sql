-- A/B experiments (livecommerce/growth/experiments): definitions, their change log, sticky
-- assignments and exposures. Bucketing is computed (GrowthBook hash v2), never stored, except
-- the sticky assignment written at a user's first exposure.

CREATE TABLE experiments (
    id                 bigserial PRIMARY KEY,
    host_id            bigint NOT NULL REFERENCES hosts (id),
    key                text NOT NULL UNIQUE,
    description        text NOT NULL DEFAULT '',
    -- [{"key": "control", "name": "..."}, ...]; variant 0 is the control.
    variants           jsonb NOT NULL,
    weights            float8[] NOT NULL,
    coverage           float8 NOT NULL CHECK (coverage >= 0 AND coverage <= 1),
    seed               text NOT NULL,
    namespace_id       text,
    namespace_start    float8,
    namespace_end      float8,
    starts_at          timestamptz,
    ends_at            timestamptz,
    primary_metric     text NOT NULL,
    guardrail_metrics  text[] NOT NULL DEFAULT '{}',
    sticky             boolean NOT NULL DEFAULT true,
    state              text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'running', 'stopped')),
    started_at         timestamptz,
    stopped_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(weights) = jsonb_array_length(variants))
);
CREATE INDEX experiments_host_idx ON experiments (host_id, id DESC);
CREATE INDEX experiments_running_idx ON experiments (id) WHERE state = 'running';

-- Every change of state, weights or coverage (creation included), newest last.
CREATE TABLE experiment_changes (
    id             bigserial PRIMARY KEY,
    experiment_id  bigint NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    change         text NOT NULL,  -- created | updated | started | stopped
    weights        float8[] NOT NULL,
    coverage       float8 NOT NULL,
    state          text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiment_changes_exp_idx ON experiment_changes (experiment_id, id);

-- The variant a user was first exposed to (sticky experiments read it before hashing).
CREATE TABLE experiment_assignments (
    experiment_id  bigint NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    user_id        bigint NOT NULL REFERENCES users (id),
    variant        integer NOT NULL CHECK (variant >= 0),
    assigned_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, experiment_id)
);

-- One row per (experiment, user, variant) the user was shown: once by the primary key, so a
-- retried exposure is a no-op. A user with rows for two variants (a non-sticky experiment whose
-- weights moved them) is excluded from results and counted.
CREATE TABLE experiment_exposures (
    experiment_id  bigint NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    user_id        bigint NOT NULL REFERENCES users (id),
    variant        integer NOT NULL CHECK (variant >= 0),
    first_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, user_id, variant)
);
