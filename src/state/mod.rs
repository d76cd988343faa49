//! The state store: what each environment manages and last applied (hashes only, never secret
//! values), secret metadata, the apply journal, and locks. One trait, two backends: SQLite
//! (default, `.tldw-ops/state.db` beside the YAML) and PostgreSQL (`postgres://…`, for teams).
//! Both use sqlx with their own migrations, and one SQL layer (`journal`) for everything but
//! opening and locking. Commands that only read state open it with [`open_read_only`].
//!
//! Nothing here stores a secret value. Fingerprints are salted with one random salt per store
//! (so fingerprints compare across the environments of a store, for promotion, but not across
//! stores). This module owns storage only: no planning, no providers.
//!
//! Timestamps are stored as fixed-width RFC 3339 UTC text with nine fractional digits in both
//! backends (see `codec`): exact, ordered as text, readable in a database shell, and identical
//! across backends so `state migrate` copies them unchanged.

mod codec;
mod journal;
pub mod location;
mod migrate;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod test_pg;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use migrate::{MigrationReport, migrate_history};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Identifies one environment of one deployment. Many can share a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EnvironmentKey {
    pub deployment: String,
    pub environment: String,
}

impl EnvironmentKey {
    /// The environment a desired-state file declares (its deployment `default` when it names
    /// none, as compiling it does).
    pub fn of(spec: &crate::spec::types::Spec) -> EnvironmentKey {
        EnvironmentKey {
            deployment: spec
                .deployment
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            environment: spec.environment.clone(),
        }
    }
}

impl std::fmt::Display for EnvironmentKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.deployment == "default" {
            write!(formatter, "{}", self.environment)
        } else {
            write!(formatter, "{}/{}", self.deployment, self.environment)
        }
    }
}

pub use crate::model::state::{EnvironmentState, ManagedRecord, SecretMeta};

/// How an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still running, or the process died (an unfinished apply).
    Running,
    Succeeded,
    /// A step or gate failed and everything was undone.
    RolledBack,
    /// Something failed and could not be undone: needs a person.
    Failed,
    /// An unfinished apply that `rollback --unfinished` undid.
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Some(match text {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "rolled_back" => Outcome::RolledBack,
            "failed" => Outcome::Failed,
            "abandoned" => Outcome::Abandoned,
            _ => return None,
        })
    }
}

/// One apply, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub id: String,
    pub environment: EnvironmentKey,
    /// `apply`, `rollback`, `resume`, `restore`.
    pub kind: String,
    pub plan_hash: String,
    pub desired_hash: String,
    /// Hash of the shared layers (the files this environment extends), for promotion.
    pub shared_hash: Option<String>,
    pub git_commit: Option<String>,
    pub actor_user: String,
    pub actor_host: String,
    pub pid: u32,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub outcome: Outcome,
    pub changes: u32,
    /// Whether the health gates passed at the end (None when there were none).
    pub health_passed: Option<bool>,
    /// The reason given with `--override-promotion`.
    pub override_reason: Option<String>,
    /// A short human summary of how it ended (errors, what was undone).
    pub message: Option<String>,
    /// The plan JSON this apply executes (secret-free by construction), so it can be resumed.
    pub plan_json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Started,
    Done,
    Failed,
    /// Skipped because its after-state was already there.
    Skipped,
    UndoStarted,
    Undone,
    UndoFailed,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::UndoStarted => "undo_started",
            StepStatus::Undone => "undone",
            StepStatus::UndoFailed => "undo_failed",
        }
    }

    pub fn parse(text: &str) -> Option<StepStatus> {
        Some(match text {
            "started" => StepStatus::Started,
            "done" => StepStatus::Done,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            "undo_started" => StepStatus::UndoStarted,
            "undone" => StepStatus::Undone,
            "undo_failed" => StepStatus::UndoFailed,
            _ => return None,
        })
    }
}

/// One step of an apply, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub apply_id: String,
    /// Position in the plan, from 0.
    pub index: u32,
    /// `ensure_env_file`, `ensure_config_file`, `ensure_quotas`, `restart`, ...
    pub kind: String,
    /// What it acts on: a file path or a URL.
    pub target: String,
    pub addresses: Vec<String>,
    pub status: StepStatus,
    /// Hash of the target before and after (file content hash, or a hash of the API values).
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    /// Path of the before-image on the target host (mode 0600), never its content.
    pub checkpoint_path: Option<String>,
    pub checkpoint_hash: Option<String>,
    /// Non-secret before-values for API steps, as JSON, to undo them.
    pub before_values: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
}

/// Who holds an environment's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub apply_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: Timestamp,
}

/// What to record when an apply succeeds: the new managed set and secret metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Address -> (value hash, sensitive). Replaces the managed set of the environment.
    pub managed: BTreeMap<String, (String, bool)>,
    /// Secret name -> metadata. Replaces the secret metadata of the environment.
    pub secrets: BTreeMap<String, SecretMeta>,
}

/// A row of `state list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSummary {
    pub environment: EnvironmentKey,
    pub managed: u32,
    pub last_apply: Option<ApplyRecord>,
    pub lock: Option<LockHolder>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {location}: {source}")]
    Database {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("state store {location}: migration failed: {source}")]
    Migrate {
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot create state directory {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("environment {environment} is locked by apply {} on {} (pid {}) since {}", holder.apply_id, holder.host, holder.pid, holder.started_at)]
    Locked {
        environment: EnvironmentKey,
        holder: LockHolder,
    },
    #[error("no apply with id `{0}`")]
    UnknownApply(String),
    #[error("state store {location} holds corrupt data: {detail}")]
    Corrupt { location: String, detail: String },
    #[error("state store {location} is not a SQLite database")]
    NotADatabase {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("state location {location}: {reason}")]
    Location { location: String, reason: String },
    #[error(
        "cannot migrate state from {from} into {to}: the target already has environments \
         fingerprinted with a different salt"
    )]
    SaltConflict { from: String, to: String },
}

/// The operations every backend provides. Async because both backends are sqlx.
#[allow(async_fn_in_trait)]
pub trait StateStore {
    /// Where this store is, for messages (a path or a URL without its password).
    fn location(&self) -> String;

    /// The environment's state, creating the environment (with a new random salt) when it is
    /// not known yet.
    async fn environment(&self, key: &EnvironmentKey) -> Result<EnvironmentState, StateError>;

    /// Takes the environment's lock for `holder`, or reports who has it. Not reentrant: a second
    /// `lock` is refused even for the same apply. Creates the environment when missing.
    async fn lock(&self, key: &EnvironmentKey, holder: &LockHolder) -> Result<(), StateError>;
    /// Releases the lock if `apply_id` holds it. On PostgreSQL only the store that took a lock
    /// can release it (it lives in that store's session); elsewhere only a stale row is cleaned.
    async fn unlock(&self, key: &EnvironmentKey, apply_id: &str) -> Result<(), StateError>;
    /// Clears any lock and returns who held it. On PostgreSQL this ends the session holding
    /// it: the way out when a holder hangs, or its host vanished without closing the connection.
    async fn force_unlock(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError>;
    /// Who holds the lock. A holder known to be dead (its PostgreSQL session is gone, or its
    /// process on this host is) is stale: it is removed and not reported.
    async fn lock_holder(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError>;

    /// Journals a new apply. It starts `Running` with no `finished_at`, whatever `record` says.
    async fn begin_apply(&self, record: &ApplyRecord) -> Result<(), StateError>;
    /// Journals something that ran without steps or a lock (a restore drill) as it ended, in one
    /// statement: it is never seen `Running`, so no crash leaves it unfinished.
    async fn record_finished(&self, record: &ApplyRecord) -> Result<(), StateError>;
    /// Inserts or replaces one step row (by apply id and index). Fails with `UnknownApply` when
    /// the apply was never begun.
    async fn write_step(&self, step: &StepRecord) -> Result<(), StateError>;
    /// Ends an apply. On `Succeeded`, `record` replaces what the environment manages and its
    /// secret metadata, in the same transaction (an address whose hash did not change keeps the
    /// apply and time that set it). `record` is ignored for any other outcome.
    async fn finish_apply(
        &self,
        apply_id: &str,
        outcome: Outcome,
        finished_at: Timestamp,
        health_passed: Option<bool>,
        message: Option<&str>,
        record: Option<&Record>,
    ) -> Result<(), StateError>;

    /// The newest apply of this environment still `Running`, if any.
    async fn unfinished_apply(
        &self,
        key: &EnvironmentKey,
    ) -> Result<Option<ApplyRecord>, StateError>;
    async fn apply_record(&self, apply_id: &str) -> Result<Option<ApplyRecord>, StateError>;
    /// The steps of an apply in plan order. Fails with `UnknownApply` for an unknown id.
    async fn steps(&self, apply_id: &str) -> Result<Vec<StepRecord>, StateError>;
    /// Applies, newest first, optionally of one environment.
    async fn applies(
        &self,
        key: Option<&EnvironmentKey>,
        limit: u32,
    ) -> Result<Vec<ApplyRecord>, StateError>;
    async fn environments(&self) -> Result<Vec<EnvironmentSummary>, StateError>;
}

/// The backend a location names. What the command line holds.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Opens the store at `location` and runs its migrations: `postgres://…` or `postgresql://…` is
/// PostgreSQL; `sqlite://…`, `sqlite:…` or anything without a URL scheme is a SQLite file.
/// For the commands that write (apply, rollback, import, backup, state migrate and unlock).
pub async fn open(location: &str) -> Result<Store, StateError> {
    Ok(match parse_location(location)? {
        Location::Postgres(url) => Store::Postgres(PostgresStore::connect(url).await?),
        Location::Sqlite(path) => Store::Sqlite(SqliteStore::open(path).await?),
    })
}

/// Opens the store at `location` to read it only (plan, drift, history, `state list`): one
/// connection, the schema checked by a single version read instead of the migrator, and no
/// write at all, not even to register a new environment or clean a stale lock row.
///
/// A store that cannot simply be read is opened as [`open`] opens it, exactly as before: one
/// that does not exist yet (a first plan creates it with its salt, so that the desired hash a
/// saved plan carries is the one a later apply computes), one whose schema is older than this
/// build (it is migrated, with the migrator's messages), and one whose schema version is not
/// the one this build knows (the migrator reports it).
pub async fn open_read_only(location: &str) -> Result<Store, StateError> {
    Ok(match parse_location(location)? {
        Location::Postgres(url) => match PostgresStore::connect_read_only(url).await? {
            Some(store) => Store::Postgres(store),
            None => Store::Postgres(PostgresStore::connect(url).await?),
        },
        Location::Sqlite(path) => match SqliteStore::open_read_only(path).await? {
            Some(store) => Store::Sqlite(store),
            None => Store::Sqlite(SqliteStore::open(path).await?),
        },
    })
}

/// What a state location names.
enum Location<'a> {
    Postgres(&'a str),
    Sqlite(&'a Path),
}

fn parse_location(location: &str) -> Result<Location<'_>, StateError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Location::Postgres(location));
    }
    let path = match location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
    {
        Some(rest) => rest,
        None if has_url_scheme(location) => {
            return Err(StateError::Location {
                location: postgres::redact_url(location),
                reason: "only sqlite:// and postgres:// URLs, or a path, can hold state".into(),
            });
        }
        None => location,
    };
    if path.is_empty() || path.contains('?') {
        return Err(StateError::Location {
            location: location.to_string(),
            reason: "a SQLite location is a file path, without query parameters".into(),
        });
    }
    Ok(Location::Sqlite(Path::new(path)))
}

impl Store {
    /// Closes the store's connections (see [`journal::SqlStore::close`]).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }
}

/// `scheme://` at the start, as opposed to a path (which may contain `:` but not a scheme).
fn has_url_scheme(location: &str) -> bool {
    location.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Where state lives when nothing says otherwise: `.tldw-ops/state.db` beside the YAML.
pub fn default_location(yaml_file: &Path) -> PathBuf {
    yaml_file
        .parent()
        .unwrap_or(Path::new(""))
        .join(".tldw-ops")
        .join("state.db")
}

impl StateStore for Store {
    fn location(&self) -> String {
        match self {
            Store::Sqlite(store) => store.location(),
            Store::Postgres(store) => store.location(),
        }
    }

    async fn environment(&self, key: &EnvironmentKey) -> Result<EnvironmentState, StateError> {
        match self {
            Store::Sqlite(store) => store.environment(key).await,
            Store::Postgres(store) => store.environment(key).await,
        }
    }

    async fn lock(&self, key: &EnvironmentKey, holder: &LockHolder) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => store.lock(key, holder).await,
            Store::Postgres(store) => store.lock(key, holder).await,
        }
    }

    async fn unlock(&self, key: &EnvironmentKey, apply_id: &str) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => store.unlock(key, apply_id).await,
            Store::Postgres(store) => store.unlock(key, apply_id).await,
        }
    }

    async fn force_unlock(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        match self {
            Store::Sqlite(store) => store.force_unlock(key).await,
            Store::Postgres(store) => store.force_unlock(key).await,
        }
    }

    async fn lock_holder(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        match self {
            Store::Sqlite(store) => store.lock_holder(key).await,
            Store::Postgres(store) => store.lock_holder(key).await,
        }
    }

    async fn begin_apply(&self, record: &ApplyRecord) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => store.begin_apply(record).await,
            Store::Postgres(store) => store.begin_apply(record).await,
        }
    }

    async fn record_finished(&self, record: &ApplyRecord) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => store.record_finished(record).await,
            Store::Postgres(store) => store.record_finished(record).await,
        }
    }

    async fn write_step(&self, step: &StepRecord) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => store.write_step(step).await,
            Store::Postgres(store) => store.write_step(step).await,
        }
    }

    async fn finish_apply(
        &self,
        apply_id: &str,
        outcome: Outcome,
        finished_at: Timestamp,
        health_passed: Option<bool>,
        message: Option<&str>,
        record: Option<&Record>,
    ) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => {
                store
                    .finish_apply(
                        apply_id,
                        outcome,
                        finished_at,
                        health_passed,
                        message,
                        record,
                    )
                    .await
            }
            Store::Postgres(store) => {
                store
                    .finish_apply(
                        apply_id,
                        outcome,
                        finished_at,
                        health_passed,
                        message,
                        record,
                    )
                    .await
            }
        }
    }

    async fn unfinished_apply(
        &self,
        key: &EnvironmentKey,
    ) -> Result<Option<ApplyRecord>, StateError> {
        match self {
            Store::Sqlite(store) => store.unfinished_apply(key).await,
            Store::Postgres(store) => store.unfinished_apply(key).await,
        }
    }

    async fn apply_record(&self, apply_id: &str) -> Result<Option<ApplyRecord>, StateError> {
        match self {
            Store::Sqlite(store) => store.apply_record(apply_id).await,
            Store::Postgres(store) => store.apply_record(apply_id).await,
        }
    }

    async fn steps(&self, apply_id: &str) -> Result<Vec<StepRecord>, StateError> {
        match self {
            Store::Sqlite(store) => store.steps(apply_id).await,
            Store::Postgres(store) => store.steps(apply_id).await,
        }
    }

    async fn applies(
        &self,
        key: Option<&EnvironmentKey>,
        limit: u32,
    ) -> Result<Vec<ApplyRecord>, StateError> {
        match self {
            Store::Sqlite(store) => store.applies(key, limit).await,
            Store::Postgres(store) => store.applies(key, limit).await,
        }
    }

    async fn environments(&self) -> Result<Vec<EnvironmentSummary>, StateError> {
        match self {
            Store::Sqlite(store) => store.environments().await,
            Store::Postgres(store) => store.environments().await,
        }
    }
}
