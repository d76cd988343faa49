-- The tldw-ops state store (PostgreSQL). See src/state/ for what each table means.
--
-- Everything lives in the `tldw_ops` schema (the migrator creates it and keeps its own table
-- there), so the store can share a database with other applications. Many deployments and
-- environments share these tables, namespaced by (deployment, environment).
--
-- Timestamps are RFC 3339 UTC text with nine fractional digits
-- (`2025-01-01T00:00:00.000000000Z`), the same encoding as the SQLite store: fixed width and
-- collated "C", so text order is time order; exact to the nanosecond, so `state migrate` from
-- SQLite loses nothing; `started_at::timestamptz` reads them in ad-hoc queries. `seq` breaks
-- ties between applies started in the same instant, in insertion order.

-- One row: the salt of every fingerprint in this store.
CREATE TABLE tldw_ops.meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt BYTEA NOT NULL CHECK (length(salt) = 32),
    created_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE tldw_ops.environments (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (deployment, environment)
);

-- What each environment manages and last applied: hashes only, never values.
CREATE TABLE tldw_ops.managed (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    address TEXT NOT NULL,
    value_hash TEXT NOT NULL,
    sensitive BOOLEAN NOT NULL,
    apply_id TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (deployment, environment, address),
    FOREIGN KEY (deployment, environment) REFERENCES tldw_ops.environments (deployment, environment)
);

-- Secret metadata: fingerprints and ages, never values.
CREATE TABLE tldw_ops.secrets (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    set_at TEXT COLLATE "C" NOT NULL,
    rotated_at TEXT COLLATE "C",
    adopted BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (deployment, environment, name),
    FOREIGN KEY (deployment, environment) REFERENCES tldw_ops.environments (deployment, environment)
);

-- The journal: one row per apply, one per step.
CREATE TABLE tldw_ops.applies (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    kind TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    desired_hash TEXT NOT NULL,
    shared_hash TEXT,
    git_commit TEXT,
    actor_user TEXT NOT NULL,
    actor_host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C",
    outcome TEXT NOT NULL,
    changes BIGINT NOT NULL,
    health_passed BOOLEAN,
    override_reason TEXT,
    message TEXT,
    plan_json TEXT NOT NULL,
    FOREIGN KEY (deployment, environment) REFERENCES tldw_ops.environments (deployment, environment)
);

CREATE INDEX applies_newest_first ON tldw_ops.applies (started_at DESC, seq DESC);
CREATE INDEX applies_of_environment
    ON tldw_ops.applies (deployment, environment, started_at DESC, seq DESC);

CREATE TABLE tldw_ops.steps (
    apply_id TEXT NOT NULL REFERENCES tldw_ops.applies (id),
    step_index BIGINT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    addresses TEXT[] NOT NULL,
    status TEXT NOT NULL,
    before_hash TEXT,
    after_hash TEXT,
    checkpoint_path TEXT,
    checkpoint_hash TEXT,
    before_values TEXT,
    started_at TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C",
    error TEXT,
    PRIMARY KEY (apply_id, step_index)
);

-- Who holds each environment's lock. The lock itself is a session advisory lock on
-- `advisory_key`, held by the backend `session_pid`; a row whose session no longer holds that
-- lock is stale (its process died) and is cleaned when read.
CREATE TABLE tldw_ops.locks (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    advisory_key BIGINT NOT NULL,
    session_pid INTEGER NOT NULL,
    apply_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (deployment, environment),
    FOREIGN KEY (deployment, environment) REFERENCES tldw_ops.environments (deployment, environment)
);
