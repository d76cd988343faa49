-- The tldw-ops state store (SQLite). See src/state/ for what each table means.
--
-- Timestamps are RFC 3339 UTC text with nine fractional digits
-- (`2025-01-01T00:00:00.000000000Z`): fixed width, so text order is time order, exact to the
-- nanosecond, and readable with the sqlite3 shell. `seq` breaks ties between applies started
-- in the same instant, in insertion order.

-- One row: the salt of every fingerprint in this store.
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt BLOB NOT NULL CHECK (length(salt) = 32),
    created_at TEXT NOT NULL
);

CREATE TABLE environments (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (deployment, environment)
);

-- What each environment manages and last applied: hashes only, never values.
CREATE TABLE managed (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    address TEXT NOT NULL,
    value_hash TEXT NOT NULL,
    sensitive INTEGER NOT NULL CHECK (sensitive IN (0, 1)),
    apply_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (deployment, environment, address),
    FOREIGN KEY (deployment, environment) REFERENCES environments (deployment, environment)
);

-- Secret metadata: fingerprints and ages, never values.
CREATE TABLE secrets (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    set_at TEXT NOT NULL,
    rotated_at TEXT,
    adopted INTEGER NOT NULL CHECK (adopted IN (0, 1)),
    source TEXT NOT NULL,
    PRIMARY KEY (deployment, environment, name),
    FOREIGN KEY (deployment, environment) REFERENCES environments (deployment, environment)
);

-- The journal: one row per apply, one per step.
CREATE TABLE applies (
    seq INTEGER PRIMARY KEY,
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
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    changes INTEGER NOT NULL,
    health_passed INTEGER CHECK (health_passed IN (0, 1)),
    override_reason TEXT,
    message TEXT,
    plan_json TEXT NOT NULL,
    FOREIGN KEY (deployment, environment) REFERENCES environments (deployment, environment)
);

CREATE INDEX applies_newest_first ON applies (started_at DESC, seq DESC);
CREATE INDEX applies_of_environment ON applies (deployment, environment, started_at DESC, seq DESC);

CREATE TABLE steps (
    apply_id TEXT NOT NULL REFERENCES applies (id),
    step_index INTEGER NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    -- A JSON array of address strings.
    addresses TEXT NOT NULL,
    status TEXT NOT NULL,
    before_hash TEXT,
    after_hash TEXT,
    checkpoint_path TEXT,
    checkpoint_hash TEXT,
    before_values TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error TEXT,
    PRIMARY KEY (apply_id, step_index)
);

-- At most one holder per environment, written under BEGIN IMMEDIATE.
CREATE TABLE locks (
    deployment TEXT NOT NULL,
    environment TEXT NOT NULL,
    apply_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (deployment, environment),
    FOREIGN KEY (deployment, environment) REFERENCES environments (deployment, environment)
);
