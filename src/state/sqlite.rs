//! The SQLite state store: one file per deployment directory (`.tldw-ops/state.db` beside the
//! YAML), opened in WAL mode with `synchronous=FULL` because it is a journal (a power loss must
//! not lose a `started` step), and a 5 s busy timeout so concurrent commands wait for each
//! other instead of failing. It owns the file, its migrations (`migrations/sqlite/`) and the
//! lock rows; it knows nothing of plans or providers.
//!
//! Locks are rows in `locks`, taken under `BEGIN IMMEDIATE` so the check for an existing holder
//! and the insert happen under SQLite's write lock: two processes cannot both see the row
//! missing. A holder on this host whose process no longer exists is stale and is replaced; a
//! holder on another host is never second-guessed (only `force_unlock` removes it).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};

use super::codec::{
    Columns, merge_managed, optional_timestamp_text, timestamp_text, unpack_managed, wide,
};
use super::migrate::{ImportedEnvironment, SaltAdoption};
use super::{
    ApplyRecord, EnvironmentKey, EnvironmentState, EnvironmentSummary, LockHolder, ManagedRecord,
    Outcome, Record, SecretMeta, StateError, StateStore, StepRecord,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `SQLITE_NOTADB`: the file exists but is not a SQLite database.
const NOT_A_DATABASE: &str = "26";

pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
    /// This machine's name, to recognise lock holders whose process can be checked.
    host: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the store at `path` and runs its migrations. Missing
    /// parent directories are created with mode 0700 and a new file with mode 0600: the store
    /// holds no secret values, but the salt and fingerprints are best kept private.
    pub async fn open(path: &Path) -> Result<SqliteStore, StateError> {
        let location = path.display().to_string();
        prepare_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| open_error(&location, source))?;
        if !migrations_current(&pool).await {
            // sqlx's migrator takes no lock on SQLite: two processes opening a new store at
            // once would both create the tables. Serialise them with a lock file.
            let lock_path = path.with_extension("db.migrate-lock");
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|source| StateError::Directory {
                    path: lock_path.display().to_string(),
                    source,
                })?;
            lock.lock().map_err(|source| StateError::Directory {
                path: lock_path.display().to_string(),
                source,
            })?;
            if !migrations_current(&pool).await {
                MIGRATOR.run(&pool).await.map_err(|source| match source {
                    MigrateError::Execute(source) => open_error(&location, source),
                    source => StateError::Migrate {
                        location: location.clone(),
                        source,
                    },
                })?;
            }
            drop(lock);
        }
        let store = SqliteStore {
            pool,
            location,
            host: crate::settings::hostname(),
        };
        store.ensure_salt().await?;
        Ok(store)
    }

    fn error(&self, source: sqlx::Error) -> StateError {
        StateError::Database {
            location: self.location.clone(),
            source,
        }
    }

    fn columns<'r>(&'r self, row: &'r SqliteRow) -> Columns<'r, SqliteRow> {
        Columns::new(row, &self.location)
    }

    /// Creates the store's salt on first open; later opens keep it (and do not write).
    async fn ensure_salt(&self) -> Result<(), StateError> {
        let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT salt FROM meta WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| self.error(source))?;
        if existing.is_some() {
            return Ok(());
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).expect("the operating system random source is available");
        sqlx::query(
            "INSERT INTO meta (id, salt, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(salt.as_slice())
        .bind(timestamp_text(Timestamp::now()))
        .execute(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        Ok(())
    }

    pub(super) async fn salt(&self) -> Result<Vec<u8>, StateError> {
        sqlx::query_scalar("SELECT salt FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|source| self.error(source))
    }

    /// Takes `salt` as this store's salt unless environments already use another one.
    pub(super) async fn adopt_salt(&self, salt: &[u8]) -> Result<SaltAdoption, StateError> {
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.error(source))?;
        let current: Vec<u8> = sqlx::query_scalar("SELECT salt FROM meta WHERE id = 1")
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        if current == salt {
            return Ok(SaltAdoption::Same);
        }
        let environments: i64 = sqlx::query_scalar("SELECT count(*) FROM environments")
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        if environments > 0 {
            return Ok(SaltAdoption::Conflict);
        }
        sqlx::query("UPDATE meta SET salt = ? WHERE id = 1")
            .bind(salt)
            .execute(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))?;
        Ok(SaltAdoption::Copied)
    }

    /// Creates the environment when missing and, when the target has neither managed rows nor
    /// secret metadata for it, copies `state`'s. What the target already has wins.
    pub(super) async fn import_environment(
        &self,
        key: &EnvironmentKey,
        state: &EnvironmentState,
    ) -> Result<ImportedEnvironment, StateError> {
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.error(source))?;
        let created = ensure_environment(&mut transaction, key)
            .await
            .map_err(|source| self.error(source))?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM managed WHERE deployment = ?1 AND environment = ?2)
                  + (SELECT count(*) FROM secrets WHERE deployment = ?1 AND environment = ?2)",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_one(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?;
        let mut imported = ImportedEnvironment {
            created,
            ..ImportedEnvironment::default()
        };
        if existing == 0 {
            insert_managed(&mut transaction, key, &state.managed)
                .await
                .map_err(|source| self.error(source))?;
            insert_secrets(&mut transaction, key, &state.secrets)
                .await
                .map_err(|source| self.error(source))?;
            imported.managed = state.managed.len();
            imported.secrets = state.secrets.len();
        }
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))?;
        Ok(imported)
    }

    /// Copies an apply and its steps as they are, unless an apply with that id is already
    /// here. Returns the number of steps copied, or `None` when the apply was already present.
    pub(super) async fn import_apply(
        &self,
        record: &ApplyRecord,
        steps: &[StepRecord],
    ) -> Result<Option<usize>, StateError> {
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.error(source))?;
        ensure_environment(&mut transaction, &record.environment)
            .await
            .map_err(|source| self.error(source))?;
        let inserted = insert_apply(&mut transaction, record, INSERT_APPLY_IF_ABSENT)
            .await
            .map_err(|source| self.error(source))?;
        if !inserted {
            return Ok(None);
        }
        for step in steps {
            upsert_step(&mut transaction, step)
                .await
                .map_err(|source| self.error(source))?;
        }
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))?;
        Ok(Some(steps.len()))
    }

    /// The pool, for tests that look under the hood (migration bookkeeping).
    #[cfg(test)]
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether `holder` is known to be gone: it ran on this host and its process is not there.
    fn holder_is_dead(&self, holder: &LockHolder) -> bool {
        holder.host == self.host && process_is_gone(holder.pid)
    }

    async fn read_holder(
        &self,
        connection: &mut SqliteConnection,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError> {
        let row = sqlx::query(
            "SELECT apply_id, host, pid, started_at FROM locks
              WHERE deployment = ? AND environment = ?",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&mut *connection)
        .await
        .map_err(|source| self.error(source))?;
        row.map(|row| self.columns(&row).holder()).transpose()
    }

    async fn last_apply(&self, key: &EnvironmentKey) -> Result<Option<ApplyRecord>, StateError> {
        let row = sqlx::query(
            "SELECT * FROM applies WHERE deployment = ? AND environment = ?
              ORDER BY started_at DESC, seq DESC LIMIT 1",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        row.map(|row| self.columns(&row).apply()).transpose()
    }
}

impl StateStore for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn environment(&self, key: &EnvironmentKey) -> Result<EnvironmentState, StateError> {
        // Planning reads state on every run: only a new environment takes the write lock (and
        // its fsync); a known one is read in a plain read transaction.
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM environments WHERE deployment = ? AND environment = ?",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        let mut transaction = if known.is_some() {
            self.pool.begin().await
        } else {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        }
        .map_err(|source| self.error(source))?;
        if known.is_none() {
            ensure_environment(&mut transaction, key)
                .await
                .map_err(|source| self.error(source))?;
        }
        let salt: Vec<u8> = sqlx::query_scalar("SELECT salt FROM meta WHERE id = 1")
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        let packed: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(address || char(31) || value_hash || char(31) || sensitive
                                 || char(31) || apply_id || char(31) || updated_at, char(30))
               FROM managed WHERE deployment = ? AND environment = ?",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_one(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?;
        let managed = unpack_managed(packed.as_deref(), &self.location)?;
        let secrets = sqlx::query(
            "SELECT * FROM secrets WHERE deployment = ? AND environment = ? ORDER BY name",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_all(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?
        .iter()
        .map(|row| self.columns(row).secret())
        .collect::<Result<BTreeMap<_, _>, _>>()?;
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))?;
        Ok(EnvironmentState {
            salt,
            managed,
            secrets,
        })
    }

    async fn lock(&self, key: &EnvironmentKey, holder: &LockHolder) -> Result<(), StateError> {
        // IMMEDIATE takes the write lock now, so no other process can insert a holder between
        // our check and our insert.
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.error(source))?;
        ensure_environment(&mut transaction, key)
            .await
            .map_err(|source| self.error(source))?;
        if let Some(existing) = self.read_holder(&mut transaction, key).await? {
            if !self.holder_is_dead(&existing) {
                return Err(StateError::Locked {
                    environment: key.clone(),
                    holder: existing,
                });
            }
            tracing::warn!(
                environment = %key,
                apply_id = %existing.apply_id,
                pid = existing.pid,
                "taking over the lock of a process that no longer exists"
            );
        }
        sqlx::query(
            "INSERT INTO locks (deployment, environment, apply_id, host, pid, started_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (deployment, environment) DO UPDATE SET
                 apply_id = excluded.apply_id, host = excluded.host, pid = excluded.pid,
                 started_at = excluded.started_at",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(&holder.apply_id)
        .bind(&holder.host)
        .bind(wide(holder.pid))
        .bind(timestamp_text(holder.started_at))
        .execute(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))
    }

    async fn unlock(&self, key: &EnvironmentKey, apply_id: &str) -> Result<(), StateError> {
        sqlx::query("DELETE FROM locks WHERE deployment = ? AND environment = ? AND apply_id = ?")
            .bind(&key.deployment)
            .bind(&key.environment)
            .bind(apply_id)
            .execute(&self.pool)
            .await
            .map_err(|source| self.error(source))?;
        Ok(())
    }

    async fn force_unlock(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        let row = sqlx::query(
            "DELETE FROM locks WHERE deployment = ? AND environment = ?
             RETURNING apply_id, host, pid, started_at",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        row.map(|row| self.columns(&row).holder()).transpose()
    }

    async fn lock_holder(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(|source| self.error(source))?;
        let Some(holder) = self.read_holder(&mut connection, key).await? else {
            return Ok(None);
        };
        if !self.holder_is_dead(&holder) {
            return Ok(Some(holder));
        }
        tracing::warn!(
            environment = %key,
            apply_id = %holder.apply_id,
            pid = holder.pid,
            "removing the lock of a process that no longer exists"
        );
        // Only this holder's row: a live process may have replaced it since we read it.
        sqlx::query(
            "DELETE FROM locks WHERE deployment = ? AND environment = ?
                AND apply_id = ? AND host = ? AND pid = ?",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(&holder.apply_id)
        .bind(&holder.host)
        .bind(wide(holder.pid))
        .execute(&mut *connection)
        .await
        .map_err(|source| self.error(source))?;
        Ok(None)
    }

    async fn begin_apply(&self, record: &ApplyRecord) -> Result<(), StateError> {
        let running = ApplyRecord {
            outcome: Outcome::Running,
            finished_at: None,
            ..record.clone()
        };
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.error(source))?;
        ensure_environment(&mut transaction, &record.environment)
            .await
            .map_err(|source| self.error(source))?;
        insert_apply(&mut transaction, &running, INSERT_APPLY)
            .await
            .map_err(|source| self.error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))
    }

    async fn write_step(&self, step: &StepRecord) -> Result<(), StateError> {
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(|source| self.error(source))?;
        upsert_step(&mut connection, step)
            .await
            .map_err(|source| match &source {
                sqlx::Error::Database(error) if error.is_foreign_key_violation() => {
                    StateError::UnknownApply(step.apply_id.clone())
                }
                _ => self.error(source),
            })
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
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.error(source))?;
        let row = sqlx::query(
            "UPDATE applies SET outcome = ?, finished_at = ?, health_passed = ?, message = ?
              WHERE id = ? RETURNING deployment, environment",
        )
        .bind(outcome.as_str())
        .bind(timestamp_text(finished_at))
        .bind(health_passed)
        .bind(message)
        .bind(apply_id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?
        .ok_or_else(|| StateError::UnknownApply(apply_id.to_string()))?;
        let key = self.columns(&row).key()?;
        if let (Outcome::Succeeded, Some(record)) = (outcome, record) {
            let existing =
                sqlx::query("SELECT * FROM managed WHERE deployment = ? AND environment = ?")
                    .bind(&key.deployment)
                    .bind(&key.environment)
                    .fetch_all(&mut *transaction)
                    .await
                    .map_err(|source| self.error(source))?
                    .iter()
                    .map(|row| self.columns(row).managed())
                    .collect::<Result<BTreeMap<_, _>, _>>()?;
            let managed = merge_managed(&existing, record, apply_id, finished_at);
            for table in [DELETE_MANAGED, DELETE_SECRETS] {
                sqlx::query(table)
                    .bind(&key.deployment)
                    .bind(&key.environment)
                    .execute(&mut *transaction)
                    .await
                    .map_err(|source| self.error(source))?;
            }
            insert_managed(&mut transaction, &key, &managed)
                .await
                .map_err(|source| self.error(source))?;
            insert_secrets(&mut transaction, &key, &record.secrets)
                .await
                .map_err(|source| self.error(source))?;
        }
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))
    }

    async fn unfinished_apply(
        &self,
        key: &EnvironmentKey,
    ) -> Result<Option<ApplyRecord>, StateError> {
        let row = sqlx::query(
            "SELECT * FROM applies WHERE deployment = ? AND environment = ? AND outcome = ?
              ORDER BY started_at DESC, seq DESC LIMIT 1",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(Outcome::Running.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        row.map(|row| self.columns(&row).apply()).transpose()
    }

    async fn apply_record(&self, apply_id: &str) -> Result<Option<ApplyRecord>, StateError> {
        let row = sqlx::query("SELECT * FROM applies WHERE id = ?")
            .bind(apply_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| self.error(source))?;
        row.map(|row| self.columns(&row).apply()).transpose()
    }

    async fn steps(&self, apply_id: &str) -> Result<Vec<StepRecord>, StateError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        let known: Option<i64> = sqlx::query_scalar("SELECT seq FROM applies WHERE id = ?")
            .bind(apply_id)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        if known.is_none() {
            return Err(StateError::UnknownApply(apply_id.to_string()));
        }
        let rows = sqlx::query("SELECT * FROM steps WHERE apply_id = ? ORDER BY step_index")
            .bind(apply_id)
            .fetch_all(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        rows.iter()
            .map(|row| {
                let columns = self.columns(row);
                let addresses: String = columns.get("addresses")?;
                let addresses =
                    serde_json::from_str(&addresses).map_err(|error| StateError::Corrupt {
                        location: self.location.clone(),
                        detail: format!(
                            "addresses of step {apply_id} are not a JSON list: {error}"
                        ),
                    })?;
                columns.step(addresses)
            })
            .collect()
    }

    async fn applies(
        &self,
        key: Option<&EnvironmentKey>,
        limit: u32,
    ) -> Result<Vec<ApplyRecord>, StateError> {
        let rows = match key {
            Some(key) => {
                sqlx::query(
                    "SELECT * FROM applies WHERE deployment = ? AND environment = ?
                      ORDER BY started_at DESC, seq DESC LIMIT ?",
                )
                .bind(&key.deployment)
                .bind(&key.environment)
                .bind(wide(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query("SELECT * FROM applies ORDER BY started_at DESC, seq DESC LIMIT ?")
                    .bind(wide(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(|source| self.error(source))?;
        rows.iter().map(|row| self.columns(row).apply()).collect()
    }

    async fn environments(&self) -> Result<Vec<EnvironmentSummary>, StateError> {
        let rows = sqlx::query(
            "SELECT e.deployment, e.environment,
                    (SELECT count(*) FROM managed m
                      WHERE m.deployment = e.deployment AND m.environment = e.environment)
                        AS managed
               FROM environments e ORDER BY e.deployment, e.environment",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        let mut summaries = Vec::with_capacity(rows.len());
        for row in &rows {
            let columns = self.columns(row);
            let environment = columns.key()?;
            summaries.push(EnvironmentSummary {
                managed: columns.narrow("managed")?,
                last_apply: self.last_apply(&environment).await?,
                lock: self.lock_holder(&environment).await?,
                environment,
            });
        }
        Ok(summaries)
    }
}

/// Whether every migration this build knows is already applied with the same checksum, so
/// opening the store need not take the write lock the migrator takes.
async fn migrations_current(pool: &SqlitePool) -> bool {
    let applied: Result<Vec<(i64, Vec<u8>)>, _> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(pool)
            .await;
    let Ok(applied) = applied else {
        return false;
    };
    MIGRATOR.iter().all(|migration| {
        applied.iter().any(|(version, checksum)| {
            *version == migration.version && **checksum == *migration.checksum
        })
    })
}

/// Creates the missing parent directories (0700) and the database file (0600), so neither is
/// ever world-readable, not even for the moment before SQLite would create it.
fn prepare_file(path: &Path) -> Result<(), StateError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(parent)
            .map_err(|source| StateError::Directory {
                path: parent.display().to_string(),
                source,
            })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // SQLite treats an empty file as an empty database. An existing file is left as it is,
    // and any other failure is SQLite's to explain when it opens the path.
    let _ = options.open(path);
    Ok(())
}

/// Turns a failure to open the file into the clearest error: a file that is not a database
/// says so.
fn open_error(location: &str, source: sqlx::Error) -> StateError {
    let not_a_database = matches!(
        &source,
        sqlx::Error::Database(error) if error.code().as_deref() == Some(NOT_A_DATABASE)
    );
    if not_a_database {
        StateError::NotADatabase {
            location: location.to_string(),
            source,
        }
    } else {
        StateError::Database {
            location: location.to_string(),
            source,
        }
    }
}

/// Whether process `pid` is known not to exist on this machine. Without `/proc` nothing is
/// known, and a holder is presumed alive.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Inserts the environment row when missing; true when it was created.
async fn ensure_environment(
    connection: &mut SqliteConnection,
    key: &EnvironmentKey,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO environments (deployment, environment, created_at) VALUES (?, ?, ?)
         ON CONFLICT (deployment, environment) DO NOTHING",
    )
    .bind(&key.deployment)
    .bind(&key.environment)
    .bind(timestamp_text(Timestamp::now()))
    .execute(&mut *connection)
    .await?;
    Ok(result.rows_affected() == 1)
}

const DELETE_MANAGED: &str = "DELETE FROM managed WHERE deployment = ? AND environment = ?";
const DELETE_SECRETS: &str = "DELETE FROM secrets WHERE deployment = ? AND environment = ?";

/// Inserts a whole managed set with one statement: the rows travel as one JSON array, which
/// SQLite's `json_each` unpacks. Thousands of single-row inserts through the driver took most of
/// a large apply.
async fn insert_managed(
    connection: &mut SqliteConnection,
    key: &EnvironmentKey,
    managed: &BTreeMap<String, ManagedRecord>,
) -> Result<(), sqlx::Error> {
    if managed.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = managed
        .iter()
        .map(|(address, record)| {
            serde_json::json!([
                address,
                record.value_hash,
                i64::from(record.sensitive),
                record.apply_id,
                timestamp_text(record.updated_at)
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO managed
             (deployment, environment, address, value_hash, sensitive, apply_id, updated_at)
         SELECT ?, ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
           FROM json_each(?)",
    )
    .bind(&key.deployment)
    .bind(&key.environment)
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn insert_secrets(
    connection: &mut SqliteConnection,
    key: &EnvironmentKey,
    secrets: &BTreeMap<String, SecretMeta>,
) -> Result<(), sqlx::Error> {
    for (name, meta) in secrets {
        sqlx::query(
            "INSERT INTO secrets
                 (deployment, environment, name, fingerprint, set_at, rotated_at, adopted, source)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(name)
        .bind(&meta.fingerprint)
        .bind(timestamp_text(meta.set_at))
        .bind(optional_timestamp_text(meta.rotated_at))
        .bind(meta.adopted)
        .bind(&meta.source)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// A new apply: a second apply with the same id is an error.
const INSERT_APPLY: &str = "INSERT INTO applies
    (id, deployment, environment, kind, plan_hash, desired_hash, shared_hash, git_commit,
     actor_user, actor_host, pid, started_at, finished_at, outcome, changes, health_passed,
     override_reason, message, plan_json)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A copied apply: one already here is left as it is.
const INSERT_APPLY_IF_ABSENT: &str = "INSERT INTO applies
    (id, deployment, environment, kind, plan_hash, desired_hash, shared_hash, git_commit,
     actor_user, actor_host, pid, started_at, finished_at, outcome, changes, health_passed,
     override_reason, message, plan_json)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING";

/// Inserts an apply row as it is; true when a row was written.
async fn insert_apply(
    connection: &mut SqliteConnection,
    record: &ApplyRecord,
    statement: &'static str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(statement)
        .bind(&record.id)
        .bind(&record.environment.deployment)
        .bind(&record.environment.environment)
        .bind(&record.kind)
        .bind(&record.plan_hash)
        .bind(&record.desired_hash)
        .bind(&record.shared_hash)
        .bind(&record.git_commit)
        .bind(&record.actor_user)
        .bind(&record.actor_host)
        .bind(wide(record.pid))
        .bind(timestamp_text(record.started_at))
        .bind(optional_timestamp_text(record.finished_at))
        .bind(record.outcome.as_str())
        .bind(wide(record.changes))
        .bind(record.health_passed)
        .bind(&record.override_reason)
        .bind(&record.message)
        .bind(&record.plan_json)
        .execute(&mut *connection)
        .await?;
    Ok(result.rows_affected() == 1)
}

async fn upsert_step(
    connection: &mut SqliteConnection,
    step: &StepRecord,
) -> Result<(), sqlx::Error> {
    let addresses = serde_json::to_string(&step.addresses)
        .expect("a list of strings always serializes to JSON");
    sqlx::query(
        "INSERT INTO steps
             (apply_id, step_index, kind, target, addresses, status, before_hash, after_hash,
              checkpoint_path, checkpoint_hash, before_values, started_at, finished_at, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (apply_id, step_index) DO UPDATE SET
             kind = excluded.kind, target = excluded.target, addresses = excluded.addresses,
             status = excluded.status, before_hash = excluded.before_hash,
             after_hash = excluded.after_hash, checkpoint_path = excluded.checkpoint_path,
             checkpoint_hash = excluded.checkpoint_hash, before_values = excluded.before_values,
             started_at = excluded.started_at, finished_at = excluded.finished_at,
             error = excluded.error",
    )
    .bind(&step.apply_id)
    .bind(wide(step.index))
    .bind(&step.kind)
    .bind(&step.target)
    .bind(addresses)
    .bind(step.status.as_str())
    .bind(&step.before_hash)
    .bind(&step.after_hash)
    .bind(&step.checkpoint_path)
    .bind(&step.checkpoint_hash)
    .bind(&step.before_values)
    .bind(timestamp_text(step.started_at))
    .bind(optional_timestamp_text(step.finished_at))
    .bind(&step.error)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
