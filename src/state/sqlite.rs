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

use sqlx::Sqlite;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};

use super::codec::{Columns, timestamp_text, wide};
use super::journal::{Dialect, SqlStore, Statement};
use super::{EnvironmentKey, LockHolder, ManagedRecord, StateError};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `SQLITE_NOTADB`: the file exists but is not a SQLite database.
const NOT_A_DATABASE: &str = "26";

pub type SqliteStore = SqlStore<Sqlite>;

/// What a SQLite store keeps besides its pool.
pub struct SqliteBackend {
    /// This machine's name, to recognise lock holders whose process can be checked.
    host: String,
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
            backend: SqliteBackend {
                host: crate::settings::hostname(),
            },
            read_only: false,
        };
        store.ensure_salt().await?;
        Ok(store)
    }

    /// Opens an existing store to read it only, or `None` when it must be opened with
    /// [`SqliteStore::open`]: the file is missing, or its schema is not this build's.
    ///
    /// One connection, so the file is opened once. When no `-wal` file exists it is a
    /// read-write connection all the same: SQLite reads a WAL database through its `-shm`
    /// index, a `mode=ro` connection creates `-wal` and `-shm` too but cannot remove them when
    /// it closes (measured: both stay behind), and `immutable=1` would ignore a concurrent
    /// apply. A read-write connection that only reads writes nothing to the database file and
    /// removes both files when it closes (see [`SqlStore::close`]).
    pub async fn open_read_only(path: &Path) -> Result<Option<SqliteStore>, StateError> {
        if !path.is_file() {
            return Ok(None);
        }
        let location = path.display().to_string();
        // A -wal file already there belongs to a running process, or to one that exited without
        // closing (its frames not yet copied into the database). A read-write connection would
        // copy them in when it closes, writing the database: read through a read-only one, which
        // uses the files as they are and leaves them in place.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(Path::new(&wal).exists())
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| open_error(&location, source))?;
        let store = SqliteStore {
            pool,
            location,
            backend: SqliteBackend {
                host: crate::settings::hostname(),
            },
            read_only: true,
        };
        let newest = MIGRATOR.iter().map(|migration| migration.version).max();
        if !store.readable_as_is(newest.unwrap_or_default()).await {
            store.pool.close().await;
            return Ok(None);
        }
        Ok(Some(store))
    }

    /// The pool, for tests that look under the hood (migration bookkeeping).
    #[cfg(test)]
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether `holder` is known to be gone: it ran on this host and its process is not there.
    fn holder_is_dead(&self, holder: &LockHolder) -> bool {
        holder.host == self.backend.host && process_is_gone(holder.pid)
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
}

impl Dialect for Sqlite {
    const STORE_NAME: &'static str = "SqliteStore";
    const SCHEMA_QUALIFIED: bool = false;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
    const LOCK_ENVIRONMENTS: Option<&'static str> = None;
    const BYTE_ORDER: &'static str = "";
    const PACKED_MANAGED: &'static str =
        "SELECT group_concat(address || char(31) || value_hash || char(31) || sensitive
                            || char(31) || apply_id || char(31) || updated_at, char(30))
           FROM managed WHERE deployment = $1 AND environment = $2";

    type Backend = SqliteBackend;

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn bind_addresses(query: Statement<Sqlite>, addresses: &[String]) -> Statement<Sqlite> {
        query.bind(
            serde_json::to_string(addresses).expect("a list of strings always serializes to JSON"),
        )
    }

    fn addresses(
        columns: &Columns<'_, sqlx::sqlite::SqliteRow>,
    ) -> Result<Vec<String>, StateError> {
        let addresses: String = columns.get("addresses")?;
        serde_json::from_str(&addresses).map_err(|error| {
            let apply_id: String = columns.get("apply_id").unwrap_or_default();
            StateError::Corrupt {
                location: columns.location().to_string(),
                detail: format!("addresses of step {apply_id} are not a JSON list: {error}"),
            }
        })
    }

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

    async fn lock(
        store: &SqliteStore,
        key: &EnvironmentKey,
        holder: &LockHolder,
    ) -> Result<(), StateError> {
        // IMMEDIATE takes the write lock now, so no other process can insert a holder between
        // our check and our insert.
        let mut transaction = store
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| store.error(source))?;
        store.ensure_environment(&mut transaction, key).await?;
        if let Some(existing) = store.read_holder(&mut transaction, key).await? {
            if !store.holder_is_dead(&existing) {
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
        .map_err(|source| store.error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| store.error(source))
    }

    async fn unlock(
        store: &SqliteStore,
        key: &EnvironmentKey,
        apply_id: &str,
    ) -> Result<(), StateError> {
        sqlx::query("DELETE FROM locks WHERE deployment = ? AND environment = ? AND apply_id = ?")
            .bind(&key.deployment)
            .bind(&key.environment)
            .bind(apply_id)
            .execute(&store.pool)
            .await
            .map_err(|source| store.error(source))?;
        Ok(())
    }

    async fn force_unlock(
        store: &SqliteStore,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError> {
        let row = sqlx::query(
            "DELETE FROM locks WHERE deployment = ? AND environment = ?
             RETURNING apply_id, host, pid, started_at",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&store.pool)
        .await
        .map_err(|source| store.error(source))?;
        row.map(|row| store.columns(&row).holder()).transpose()
    }

    async fn lock_holder(
        store: &SqliteStore,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError> {
        let mut connection = store
            .pool
            .acquire()
            .await
            .map_err(|source| store.error(source))?;
        let Some(holder) = store.read_holder(&mut connection, key).await? else {
            return Ok(None);
        };
        if !store.holder_is_dead(&holder) {
            return Ok(Some(holder));
        }
        if store.read_only {
            // Dead all the same; the next command that writes removes the row.
            return Ok(None);
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
        .map_err(|source| store.error(source))?;
        Ok(None)
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
