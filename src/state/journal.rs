//! The one SQL layer both backends share: every statement of the journal (applies and steps),
//! the managed set, secret metadata, environments and the salt is written here once, and
//! [`SqlStore`] runs it against SQLite or PostgreSQL. What genuinely differs between the two
//! databases is a [`Dialect`]: a few constants (how a writing transaction begins, row locks,
//! byte-wise ordering), the statement that packs a managed set, how a step's addresses are
//! stored (JSON text or `text[]`), the bulk insert of a managed set (`json_each` or `unnest`),
//! and the locks (a row under SQLite's write lock, or PostgreSQL advisory locks). Opening,
//! migrating and locking stay in `sqlite.rs` and `postgres.rs`.
//!
//! Statements are spelled once, the PostgreSQL way: `$1`-style placeholders, which sqlx's SQLite
//! driver binds by number too, and tables qualified by the `tldw_ops` schema, which the SQLite
//! dialect drops (its tables live in the file's main schema). See docs/decisions.md.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::query::Query;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool,
    SqlSafeStr, SqlStr, Type,
};

use super::codec::{
    Columns, merge_managed, optional_timestamp_text, timestamp_text, unpack_managed, wide,
};
use super::migrate::{ImportedEnvironment, SaltAdoption};
use super::{
    ApplyRecord, EnvironmentKey, EnvironmentState, EnvironmentSummary, LockHolder, ManagedRecord,
    Outcome, Record, SecretMeta, StateError, StateStore, StepRecord,
};

/// A query of database `DB` with its arguments, as sqlx builds it.
pub type Statement<DB> = Query<'static, DB, <DB as Database>::Arguments>;

/// What differs between the databases. Implemented for `sqlx::Sqlite` and `sqlx::Postgres`.
#[allow(async_fn_in_trait)]
pub trait Dialect: Database + Sized {
    /// For `Debug`: `SqliteStore` or `PostgresStore`.
    const STORE_NAME: &'static str;
    /// Whether tables are named `tldw_ops.<table>` (PostgreSQL's schema) or bare (SQLite).
    const SCHEMA_QUALIFIED: bool;
    /// Begins a transaction that writes after it reads. SQLite takes its write lock at once
    /// (`IMMEDIATE`), so the read cannot be invalidated by another writer; PostgreSQL locks rows.
    const BEGIN_WRITE: &'static str;
    /// Ends a `SELECT` of rows the transaction replaces: PostgreSQL row locks; nothing on SQLite,
    /// whose write lock is already held.
    const FOR_UPDATE: &'static str;
    /// Run first when the salt may be replaced, so no environment appears between the count and
    /// the update; `None` where `BEGIN_WRITE` already excludes every other writer.
    const LOCK_ENVIRONMENTS: Option<&'static str>;
    /// Makes an `ORDER BY` on a text column byte-wise (SQLite's default already is).
    const BYTE_ORDER: &'static str;
    /// One row packing an environment's whole managed set (see `codec::unpack_managed`), with
    /// `$1` and `$2` the deployment and environment.
    const PACKED_MANAGED: &'static str;

    /// What the store keeps besides its pool: SQLite's host name, PostgreSQL's lock sessions.
    type Backend: Send + Sync;

    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// Binds a step's addresses: a JSON list in a text column, or a `text[]`.
    fn bind_addresses(query: Statement<Self>, addresses: &[String]) -> Statement<Self>;
    /// Reads them back.
    fn addresses(columns: &Columns<'_, Self::Row>) -> Result<Vec<String>, StateError>;
    /// Inserts a whole managed set in one statement.
    async fn insert_managed(
        connection: &mut Self::Connection,
        key: &EnvironmentKey,
        managed: &BTreeMap<String, ManagedRecord>,
    ) -> Result<(), sqlx::Error>;

    async fn lock(
        store: &SqlStore<Self>,
        key: &EnvironmentKey,
        holder: &LockHolder,
    ) -> Result<(), StateError>;
    async fn unlock(
        store: &SqlStore<Self>,
        key: &EnvironmentKey,
        apply_id: &str,
    ) -> Result<(), StateError>;
    async fn force_unlock(
        store: &SqlStore<Self>,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError>;
    async fn lock_holder(
        store: &SqlStore<Self>,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError>;
}

/// A value read from and written to columns of `DB`: names the sqlx bounds once.
pub trait Column<DB: Database>:
    for<'r> Decode<'r, DB> + for<'q> Encode<'q, DB> + Type<DB> + Send
{
}

impl<T, DB: Database> Column<DB> for T where
    T: for<'r> Decode<'r, DB> + for<'q> Encode<'q, DB> + Type<DB> + Send
{
}

/// A state store on database `DB`. `SqliteStore` and `PostgresStore` are its two instances.
pub struct SqlStore<DB: Dialect> {
    pub(super) pool: Pool<DB>,
    /// Where it is, for messages (a path, or a URL without its password).
    pub(super) location: String,
    pub(super) backend: DB::Backend,
    /// Opened to read only (`open_read_only`): nothing is written, not even a new
    /// environment's row or the removal of a stale lock row.
    pub(super) read_only: bool,
}

impl<DB: Dialect> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct(DB::STORE_NAME)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// Closes the connections. On SQLite the last close checkpoints and removes the `-wal` and
    /// `-shm` files; a process that exits with them open leaves both behind.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) fn error(&self, source: sqlx::Error) -> StateError {
        StateError::Database {
            location: self.location.clone(),
            source,
        }
    }
}

/// The statement text for this dialect. Only the crate's own constant SQL comes here.
pub(super) fn sql<DB: Dialect>(text: &'static str) -> SqlStr {
    if DB::SCHEMA_QUALIFIED {
        text.into_sql_str()
    } else {
        AssertSqlSafe(text.replace("tldw_ops.", "")).into_sql_str()
    }
}

/// A statement of `DB`, spelled as this module spells them.
pub(super) fn query<DB: Dialect>(text: &'static str) -> Statement<DB> {
    sqlx::query(sql::<DB>(text))
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    String: Column<DB>,
    i64: Column<DB>,
    bool: Column<DB>,
    Vec<u8>: Column<DB>,
    Option<String>: Column<DB>,
    Option<bool>: Column<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    pub(super) fn columns<'r>(&'r self, row: &'r DB::Row) -> Columns<'r, DB::Row> {
        Columns::new(row, &self.location)
    }

    /// Creates the store's salt on first open; later opens keep it (and do not write).
    pub(super) async fn ensure_salt(&self) -> Result<(), StateError> {
        let existing: Option<Vec<u8>> = sqlx::query_scalar(sql::<DB>(SELECT_SALT))
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| self.error(source))?;
        if existing.is_some() {
            return Ok(());
        }
        // Random, except that a test build may inject it (`TLDW_OPS_SALT`) for golden plans.
        let salt = crate::settings::injected_salt().unwrap_or_else(|| {
            let mut salt = [0u8; 32];
            getrandom::fill(&mut salt).expect("the operating system random source is available");
            salt
        });
        query::<DB>(
            "INSERT INTO tldw_ops.meta (id, salt, created_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(salt.to_vec())
        .bind(timestamp_text(Timestamp::now()))
        .execute(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        Ok(())
    }

    /// Whether the store can be read as it is: its newest applied migration is `version` (the
    /// newest this build has) and it has its salt. One read each, instead of the migrator's walk
    /// over every migration. False as well when the bookkeeping table is missing.
    pub(super) async fn readable_as_is(&self, version: i64) -> bool {
        let newest: Result<Option<i64>, _> = sqlx::query_scalar(sql::<DB>(
            "SELECT max(version) FROM tldw_ops._sqlx_migrations WHERE success",
        ))
        .fetch_one(&self.pool)
        .await;
        if !matches!(newest, Ok(Some(newest)) if newest == version) {
            return false;
        }
        let salts: Result<i64, _> =
            sqlx::query_scalar(sql::<DB>("SELECT count(*) FROM tldw_ops.meta WHERE id = 1"))
                .fetch_one(&self.pool)
                .await;
        matches!(salts, Ok(1))
    }

    pub(super) async fn salt(&self) -> Result<Vec<u8>, StateError> {
        sqlx::query_scalar(sql::<DB>(SELECT_SALT))
            .fetch_one(&self.pool)
            .await
            .map_err(|source| self.error(source))
    }

    /// Takes `salt` as this store's salt unless environments already use another one.
    pub(super) async fn adopt_salt(&self, salt: &[u8]) -> Result<SaltAdoption, StateError> {
        let mut transaction = self
            .pool
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(|source| self.error(source))?;
        if let Some(lock) = DB::LOCK_ENVIRONMENTS {
            sqlx::query(lock)
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        }
        let current: Vec<u8> = sqlx::query_scalar(AssertSqlSafe(format!(
            "{}{}",
            sql::<DB>(SELECT_SALT).as_str(),
            DB::FOR_UPDATE
        )))
        .fetch_one(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?;
        if current == salt {
            return Ok(SaltAdoption::Same);
        }
        let environments: i64 =
            sqlx::query_scalar(sql::<DB>("SELECT count(*) FROM tldw_ops.environments"))
                .fetch_one(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        if environments > 0 {
            return Ok(SaltAdoption::Conflict);
        }
        query::<DB>("UPDATE tldw_ops.meta SET salt = $1 WHERE id = 1")
            .bind(salt.to_vec())
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
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(|source| self.error(source))?;
        let created = self.ensure_environment(&mut transaction, key).await?;
        let existing: i64 = sqlx::query_scalar(sql::<DB>(
            "SELECT (SELECT count(*) FROM tldw_ops.managed
                      WHERE deployment = $1 AND environment = $2)
                  + (SELECT count(*) FROM tldw_ops.secrets
                      WHERE deployment = $1 AND environment = $2)",
        ))
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
            self.insert_set(&mut transaction, key, &state.managed, &state.secrets)
                .await?;
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
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(|source| self.error(source))?;
        self.ensure_environment(&mut transaction, &record.environment)
            .await?;
        let inserted = self
            .insert_apply(&mut transaction, record, INSERT_APPLY_IF_ABSENT)
            .await?;
        if !inserted {
            return Ok(None);
        }
        for step in steps {
            self.upsert_step(&mut transaction, step)
                .await
                .map_err(|source| self.error(source))?;
        }
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))?;
        Ok(Some(steps.len()))
    }

    async fn last_apply(&self, key: &EnvironmentKey) -> Result<Option<ApplyRecord>, StateError> {
        let row = query::<DB>(
            "SELECT * FROM tldw_ops.applies WHERE deployment = $1 AND environment = $2
              ORDER BY started_at DESC, seq DESC LIMIT 1",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        row.map(|row| self.columns(&row).apply()).transpose()
    }

    /// Inserts the environment row when missing; true when it was created.
    pub(super) async fn ensure_environment(
        &self,
        connection: &mut DB::Connection,
        key: &EnvironmentKey,
    ) -> Result<bool, StateError> {
        let result = query::<DB>(
            "INSERT INTO tldw_ops.environments (deployment, environment, created_at)
             VALUES ($1, $2, $3) ON CONFLICT (deployment, environment) DO NOTHING",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(timestamp_text(Timestamp::now()))
        .execute(&mut *connection)
        .await
        .map_err(|source| self.error(source))?;
        Ok(DB::rows_affected(&result) == 1)
    }

    /// Inserts an environment's managed set and secret metadata (both currently empty).
    async fn insert_set(
        &self,
        connection: &mut DB::Connection,
        key: &EnvironmentKey,
        managed: &BTreeMap<String, ManagedRecord>,
        secrets: &BTreeMap<String, SecretMeta>,
    ) -> Result<(), StateError> {
        DB::insert_managed(&mut *connection, key, managed)
            .await
            .map_err(|source| self.error(source))?;
        for (name, meta) in secrets {
            query::<DB>(
                "INSERT INTO tldw_ops.secrets
                     (deployment, environment, name, fingerprint, set_at, rotated_at, adopted,
                      source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
            .await
            .map_err(|source| self.error(source))?;
        }
        Ok(())
    }

    /// Inserts an apply row as it is; true when a row was written.
    async fn insert_apply(
        &self,
        connection: &mut DB::Connection,
        record: &ApplyRecord,
        statement: &'static str,
    ) -> Result<bool, StateError> {
        let result = query::<DB>(statement)
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
            .bind(record.outcome.as_str().to_string())
            .bind(wide(record.changes))
            .bind(record.health_passed)
            .bind(&record.override_reason)
            .bind(&record.message)
            .bind(&record.plan_json)
            .execute(&mut *connection)
            .await
            .map_err(|source| self.error(source))?;
        Ok(DB::rows_affected(&result) == 1)
    }

    async fn upsert_step(
        &self,
        connection: &mut DB::Connection,
        step: &StepRecord,
    ) -> Result<(), sqlx::Error> {
        let statement = query::<DB>(
            "INSERT INTO tldw_ops.steps
                 (apply_id, step_index, kind, target, addresses, status, before_hash,
                  after_hash, checkpoint_path, checkpoint_hash, before_values, started_at,
                  finished_at, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (apply_id, step_index) DO UPDATE SET
                 kind = excluded.kind, target = excluded.target, addresses = excluded.addresses,
                 status = excluded.status, before_hash = excluded.before_hash,
                 after_hash = excluded.after_hash, checkpoint_path = excluded.checkpoint_path,
                 checkpoint_hash = excluded.checkpoint_hash,
                 before_values = excluded.before_values, started_at = excluded.started_at,
                 finished_at = excluded.finished_at, error = excluded.error",
        )
        .bind(&step.apply_id)
        .bind(wide(step.index))
        .bind(&step.kind)
        .bind(&step.target);
        DB::bind_addresses(statement, &step.addresses)
            .bind(step.status.as_str().to_string())
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
}

// The same bounds as the shared operations above: the concrete dialects meet them.
impl<DB> StateStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    String: Column<DB>,
    i64: Column<DB>,
    bool: Column<DB>,
    Vec<u8>: Column<DB>,
    Option<String>: Column<DB>,
    Option<bool>: Column<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn environment(&self, key: &EnvironmentKey) -> Result<EnvironmentState, StateError> {
        // Planning reads state on every run: only a new environment takes the write lock (and
        // its fsync); a known one is read in a plain read transaction.
        let known: i64 = sqlx::query_scalar(sql::<DB>(
            "SELECT count(*) FROM tldw_ops.environments WHERE deployment = $1 AND environment = $2",
        ))
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_one(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        let known = known > 0;
        if !known && self.read_only {
            // Only apply registers an environment; a read-only store reports it empty.
            return Ok(EnvironmentState {
                salt: self.salt().await?,
                managed: BTreeMap::new(),
                secrets: BTreeMap::new(),
            });
        }
        let mut transaction = if known {
            self.pool.begin().await
        } else {
            self.pool.begin_with(DB::BEGIN_WRITE).await
        }
        .map_err(|source| self.error(source))?;
        if !known {
            self.ensure_environment(&mut transaction, key).await?;
        }
        let salt: Vec<u8> = sqlx::query_scalar(sql::<DB>(SELECT_SALT))
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        let packed: Option<String> = sqlx::query_scalar(sql::<DB>(DB::PACKED_MANAGED))
            .bind(&key.deployment)
            .bind(&key.environment)
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        let managed = unpack_managed(packed.as_deref(), &self.location)?;
        let secrets = query::<DB>(
            "SELECT * FROM tldw_ops.secrets WHERE deployment = $1 AND environment = $2
              ORDER BY name",
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
        DB::lock(self, key, holder).await
    }

    async fn unlock(&self, key: &EnvironmentKey, apply_id: &str) -> Result<(), StateError> {
        DB::unlock(self, key, apply_id).await
    }

    async fn force_unlock(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        DB::force_unlock(self, key).await
    }

    async fn lock_holder(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        DB::lock_holder(self, key).await
    }

    async fn begin_apply(&self, record: &ApplyRecord) -> Result<(), StateError> {
        let running = ApplyRecord {
            outcome: Outcome::Running,
            finished_at: None,
            ..record.clone()
        };
        let mut transaction = self
            .pool
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(|source| self.error(source))?;
        self.ensure_environment(&mut transaction, &record.environment)
            .await?;
        self.insert_apply(&mut transaction, &running, INSERT_APPLY)
            .await?;
        transaction
            .commit()
            .await
            .map_err(|source| self.error(source))
    }

    async fn record_finished(&self, record: &ApplyRecord) -> Result<(), StateError> {
        let mut transaction = self
            .pool
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(|source| self.error(source))?;
        self.ensure_environment(&mut transaction, &record.environment)
            .await?;
        self.insert_apply(&mut transaction, record, INSERT_APPLY)
            .await?;
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
        self.upsert_step(&mut connection, step)
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
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(|source| self.error(source))?;
        let row = query::<DB>(
            "UPDATE tldw_ops.applies
                SET outcome = $1, finished_at = $2, health_passed = $3, message = $4
              WHERE id = $5 RETURNING deployment, environment",
        )
        .bind(outcome.as_str())
        .bind(timestamp_text(finished_at))
        .bind(health_passed)
        .bind(message.map(str::to_string))
        .bind(apply_id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?
        .ok_or_else(|| StateError::UnknownApply(apply_id.to_string()))?;
        let key = self.columns(&row).key()?;
        if let (Outcome::Succeeded, Some(record)) = (outcome, record) {
            // FOR UPDATE (PostgreSQL): a concurrent finish of the same environment waits for
            // this one. SQLite's write lock is already held.
            let existing = sqlx::query(AssertSqlSafe(format!(
                "{}{}",
                sql::<DB>(
                    "SELECT * FROM tldw_ops.managed WHERE deployment = $1 AND environment = $2"
                )
                .as_str(),
                DB::FOR_UPDATE
            )))
            .bind(&key.deployment)
            .bind(&key.environment)
            .fetch_all(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?
            .iter()
            .map(|row| self.columns(row).managed())
            .collect::<Result<BTreeMap<_, _>, _>>()?;
            let managed = merge_managed(&existing, record, apply_id, finished_at);
            for statement in [
                "DELETE FROM tldw_ops.managed WHERE deployment = $1 AND environment = $2",
                "DELETE FROM tldw_ops.secrets WHERE deployment = $1 AND environment = $2",
            ] {
                query::<DB>(statement)
                    .bind(&key.deployment)
                    .bind(&key.environment)
                    .execute(&mut *transaction)
                    .await
                    .map_err(|source| self.error(source))?;
            }
            self.insert_set(&mut transaction, &key, &managed, &record.secrets)
                .await?;
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
        let row = query::<DB>(
            "SELECT * FROM tldw_ops.applies
              WHERE deployment = $1 AND environment = $2 AND outcome = $3
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
        let row = query::<DB>("SELECT * FROM tldw_ops.applies WHERE id = $1")
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
        let known: Option<i64> =
            sqlx::query_scalar(sql::<DB>("SELECT seq FROM tldw_ops.applies WHERE id = $1"))
                .bind(apply_id)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        if known.is_none() {
            return Err(StateError::UnknownApply(apply_id.to_string()));
        }
        let rows =
            query::<DB>("SELECT * FROM tldw_ops.steps WHERE apply_id = $1 ORDER BY step_index")
                .bind(apply_id)
                .fetch_all(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        rows.iter()
            .map(|row| {
                let columns = self.columns(row);
                columns.step(DB::addresses(&columns)?)
            })
            .collect()
    }

    async fn applies(
        &self,
        key: Option<&EnvironmentKey>,
        limit: u32,
    ) -> Result<Vec<ApplyRecord>, StateError> {
        let rows =
            match key {
                Some(key) => {
                    query::<DB>(
                        "SELECT * FROM tldw_ops.applies WHERE deployment = $1 AND environment = $2
                      ORDER BY started_at DESC, seq DESC LIMIT $3",
                    )
                    .bind(&key.deployment)
                    .bind(&key.environment)
                    .bind(wide(limit))
                    .fetch_all(&self.pool)
                    .await
                }
                None => query::<DB>(
                    "SELECT * FROM tldw_ops.applies ORDER BY started_at DESC, seq DESC LIMIT $1",
                )
                .bind(wide(limit))
                .fetch_all(&self.pool)
                .await,
            }
            .map_err(|source| self.error(source))?;
        rows.iter().map(|row| self.columns(row).apply()).collect()
    }

    async fn environments(&self) -> Result<Vec<EnvironmentSummary>, StateError> {
        let statement = format!(
            "{} ORDER BY e.deployment{order}, e.environment{order}",
            sql::<DB>(
                "SELECT e.deployment, e.environment,
                        (SELECT count(*) FROM tldw_ops.managed m
                          WHERE m.deployment = e.deployment AND m.environment = e.environment)
                            AS managed
                   FROM tldw_ops.environments e"
            )
            .as_str(),
            order = DB::BYTE_ORDER,
        );
        let rows = sqlx::query(AssertSqlSafe(statement))
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

const SELECT_SALT: &str = "SELECT salt FROM tldw_ops.meta WHERE id = 1";

/// A new apply: a second apply with the same id is an error.
const INSERT_APPLY: &str = "INSERT INTO tldw_ops.applies
    (id, deployment, environment, kind, plan_hash, desired_hash, shared_hash, git_commit,
     actor_user, actor_host, pid, started_at, finished_at, outcome, changes, health_passed,
     override_reason, message, plan_json)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// A copied apply: one already here is left as it is.
const INSERT_APPLY_IF_ABSENT: &str = "INSERT INTO tldw_ops.applies
    (id, deployment, environment, kind, plan_hash, desired_hash, shared_hash, git_commit,
     actor_user, actor_host, pid, started_at, finished_at, outcome, changes, health_passed,
     override_reason, message, plan_json)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
    ON CONFLICT (id) DO NOTHING";
