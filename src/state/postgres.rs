//! The PostgreSQL state store, for teams: many deployments and environments share one database,
//! namespaced by (deployment, environment), all in the `tldw_ops` schema so the database can
//! also serve other applications. It owns the connection pool, its migrations
//! (`migrations/postgres/`) and the locks; it knows nothing of plans or providers.
//!
//! Locks are session advisory locks, one key per environment (the first 8 bytes of a SHA-256
//! of the deployment and environment names). Each is taken on a dedicated connection that this
//! store keeps open for as long as it holds the lock, so when the holding process dies its
//! session ends and PostgreSQL releases the lock; nobody has to clean up after it. A row in
//! `locks` names the holder (apply id, host, pid, start time) and the backend session holding
//! the advisory lock; a row whose session no longer holds the lock is stale, and reading it
//! removes it. The password of the URL is kept only in the connect options in memory: it is
//! never written to the database, and [`StateStore::location`] renders the URL without it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, Postgres};
use tokio::sync::Mutex;

use super::codec::{
    Columns, merge_managed, optional_timestamp_text, timestamp_text, unpack_managed, wide,
};
use super::migrate::{ImportedEnvironment, SaltAdoption};
use super::{
    ApplyRecord, EnvironmentKey, EnvironmentState, EnvironmentSummary, LockHolder, ManagedRecord,
    Outcome, Record, SecretMeta, StateError, StateStore, StepRecord,
};

/// Where everything lives, including the migrator's bookkeeping. The SQL names it literally.
const SCHEMA: &str = "tldw_ops";
const MIGRATIONS_TABLE: &str = "tldw_ops._sqlx_migrations";

/// How long a refused `lock` waits for the holder's row to appear, when the advisory lock is
/// held but the row does not name a live holder yet (the holder is between the two steps).
const HOLDER_ROW_WAIT: Duration = Duration::from_secs(2);

/// How long `force_unlock` waits for a terminated holder's session to end.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);

const POLL: Duration = Duration::from_millis(50);

pub struct PostgresStore {
    pool: PgPool,
    /// For the lock sessions. Holds the password in memory only. Boxed: it is most of the
    /// store's size, and `Store` should not carry it inline.
    options: Box<PgConnectOptions>,
    location: String,
    /// The sessions holding this store's advisory locks, by environment.
    held: Mutex<HashMap<EnvironmentKey, HeldLock>>,
}

/// A lock this store holds: the session it lives in, and who it was taken for.
struct HeldLock {
    connection: PgConnection,
    holder: LockHolder,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A `locks` row and whether its session still holds the advisory lock.
struct HolderRow {
    holder: LockHolder,
    session_pid: i32,
    live: bool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore, StateError> {
        let location = redact_url(url);
        let options: PgConnectOptions = url.parse().map_err(|source| StateError::Database {
            location: location.clone(),
            source,
        })?;
        let options = options.application_name("tldw-ops");
        // One direct connection first: an unreachable server or a refused login fails at once,
        // where a pool would retry until its acquire timeout.
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(|source| StateError::Database {
                location: location.clone(),
                source,
            })?;
        let mut migrator: Migrator = sqlx::migrate!("./migrations/postgres");
        migrator.create_schema(SCHEMA);
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
            .run(&mut connection)
            .await
            .map_err(|source| StateError::Migrate {
                location: location.clone(),
                source,
            })?;
        let _ = connection.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options.clone());
        let store = PostgresStore {
            pool,
            options: Box::new(options),
            location,
            held: Mutex::new(HashMap::new()),
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

    fn columns<'r>(&'r self, row: &'r PgRow) -> Columns<'r, PgRow> {
        Columns::new(row, &self.location)
    }

    /// Creates the store's salt on first connect; later connects keep it.
    async fn ensure_salt(&self) -> Result<(), StateError> {
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).expect("the operating system random source is available");
        sqlx::query(
            "INSERT INTO tldw_ops.meta (id, salt, created_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(salt.as_slice())
        .bind(timestamp_text(Timestamp::now()))
        .execute(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        Ok(())
    }

    pub(super) async fn salt(&self) -> Result<Vec<u8>, StateError> {
        sqlx::query_scalar("SELECT salt FROM tldw_ops.meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|source| self.error(source))
    }

    /// Takes `salt` as this store's salt unless environments already use another one.
    pub(super) async fn adopt_salt(&self, salt: &[u8]) -> Result<SaltAdoption, StateError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        // No environment may appear between the count and the update.
        sqlx::query("LOCK TABLE tldw_ops.environments IN SHARE MODE")
            .execute(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        let current: Vec<u8> =
            sqlx::query_scalar("SELECT salt FROM tldw_ops.meta WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        if current == salt {
            return Ok(SaltAdoption::Same);
        }
        let environments: i64 = sqlx::query_scalar("SELECT count(*) FROM tldw_ops.environments")
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        if environments > 0 {
            return Ok(SaltAdoption::Conflict);
        }
        sqlx::query("UPDATE tldw_ops.meta SET salt = $1 WHERE id = 1")
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
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        let created = ensure_environment(&mut *transaction, key)
            .await
            .map_err(|source| self.error(source))?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM tldw_ops.managed
                      WHERE deployment = $1 AND environment = $2)
                  + (SELECT count(*) FROM tldw_ops.secrets
                      WHERE deployment = $1 AND environment = $2)",
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
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        ensure_environment(&mut *transaction, &record.environment)
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

    /// The `locks` row of `key`, with whether its session still holds the advisory lock.
    async fn read_holder(&self, key: &EnvironmentKey) -> Result<Option<HolderRow>, StateError> {
        let row = sqlx::query(
            "SELECT l.apply_id, l.host, l.pid, l.started_at, l.session_pid,
                    EXISTS (
                        SELECT 1 FROM pg_locks p
                         WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 1
                           AND p.database = (SELECT oid FROM pg_database
                                              WHERE datname = current_database())
                           AND p.classid::bigint = (l.advisory_key >> 32) & 4294967295
                           AND p.objid::bigint = l.advisory_key & 4294967295
                           AND p.pid = l.session_pid
                    ) AS live
               FROM tldw_ops.locks l
              WHERE l.deployment = $1 AND l.environment = $2",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        row.map(|row| {
            let columns = self.columns(&row);
            Ok(HolderRow {
                holder: columns.holder()?,
                session_pid: columns.get("session_pid")?,
                live: columns.get("live")?,
            })
        })
        .transpose()
    }

    /// Removes a stale row, and only that one: a live holder may have replaced it since.
    async fn remove_stale(&self, key: &EnvironmentKey, row: &HolderRow) -> Result<(), StateError> {
        tracing::warn!(
            environment = %key,
            apply_id = %row.holder.apply_id,
            host = %row.holder.host,
            pid = row.holder.pid,
            "removing a stale lock row: its session no longer holds the lock"
        );
        sqlx::query(
            "DELETE FROM tldw_ops.locks
              WHERE deployment = $1 AND environment = $2 AND apply_id = $3 AND session_pid = $4",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(&row.holder.apply_id)
        .bind(row.session_pid)
        .execute(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        Ok(())
    }

    /// The backend sessions holding `key`'s advisory lock, other than our pool's.
    async fn sessions_holding(&self, advisory: i64) -> Result<Vec<i32>, StateError> {
        let (high, low) = split_key(advisory);
        sqlx::query_scalar(
            "SELECT pid FROM pg_locks
              WHERE locktype = 'advisory' AND granted AND objsubid = 1
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND classid::bigint = $1 AND objid::bigint = $2
                AND pid <> pg_backend_pid()",
        )
        .bind(high)
        .bind(low)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| self.error(source))
    }

    /// Why `lock` was refused: the live holder, once its row names it.
    async fn refusal(&self, key: &EnvironmentKey) -> Result<StateError, StateError> {
        let deadline = tokio::time::Instant::now() + HOLDER_ROW_WAIT;
        loop {
            if let Some(row) = self.read_holder(key).await?
                && row.live
            {
                return Ok(StateError::Locked {
                    environment: key.clone(),
                    holder: row.holder,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        // Held by a session that never wrote its row (not tldw-ops, or one that is stuck).
        Ok(StateError::Locked {
            environment: key.clone(),
            holder: LockHolder {
                apply_id: "unknown".to_string(),
                host: "unknown".to_string(),
                pid: 0,
                started_at: Timestamp::now(),
            },
        })
    }

    /// Gives up a lock this store holds: removes its row and unlocks, in its own session. When
    /// that session is already gone (terminated by a `force_unlock` elsewhere, or the server
    /// restarted), the lock went with it and only a stale row may remain.
    async fn release(&self, key: &EnvironmentKey, mut held: HeldLock) -> Result<(), StateError> {
        let released: Result<(), sqlx::Error> = async {
            sqlx::query(
                "DELETE FROM tldw_ops.locks WHERE deployment = $1 AND environment = $2
                    AND session_pid = pg_backend_pid()",
            )
            .bind(&key.deployment)
            .bind(&key.environment)
            .execute(&mut held.connection)
            .await?;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(advisory_key(key))
                .execute(&mut held.connection)
                .await?;
            Ok(())
        }
        .await;
        match released {
            Ok(()) => {
                // Closing ends the session; the lock is already released either way.
                let _ = held.connection.close().await;
            }
            Err(error) => {
                tracing::warn!(environment = %key, %error, "the lock session was already gone");
                if let Some(row) = self.read_holder(key).await?
                    && !row.live
                {
                    self.remove_stale(key, &row).await?;
                }
            }
        }
        Ok(())
    }

    async fn last_apply(&self, key: &EnvironmentKey) -> Result<Option<ApplyRecord>, StateError> {
        let row = sqlx::query(
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
}

impl StateStore for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn environment(&self, key: &EnvironmentKey) -> Result<EnvironmentState, StateError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        ensure_environment(&mut *transaction, key)
            .await
            .map_err(|source| self.error(source))?;
        let salt: Vec<u8> = sqlx::query_scalar("SELECT salt FROM tldw_ops.meta WHERE id = 1")
            .fetch_one(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?;
        let packed: Option<String> = sqlx::query_scalar(
            "SELECT string_agg(address || chr(31) || value_hash || chr(31)
                               || (CASE WHEN sensitive THEN '1' ELSE '0' END) || chr(31)
                               || apply_id || chr(31) || updated_at, chr(30))
               FROM tldw_ops.managed WHERE deployment = $1 AND environment = $2",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .fetch_one(&mut *transaction)
        .await
        .map_err(|source| self.error(source))?;
        let managed = unpack_managed(packed.as_deref(), &self.location)?;
        let secrets = sqlx::query(
            "SELECT * FROM tldw_ops.secrets WHERE deployment = $1 AND environment = $2",
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
        let mut held = self.held.lock().await;
        if let Some(existing) = held.get(key) {
            return Err(StateError::Locked {
                environment: key.clone(),
                holder: existing.holder.clone(),
            });
        }
        ensure_environment(&self.pool, key)
            .await
            .map_err(|source| self.error(source))?;
        let options = PgConnectOptions::clone(&self.options)
            .application_name(&format!("tldw-ops lock {key}"));
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(|source| self.error(source))?;
        let advisory = advisory_key(key);
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(advisory)
            .fetch_one(&mut connection)
            .await
            .map_err(|source| self.error(source))?;
        if !acquired {
            let _ = connection.close().await;
            return Err(self.refusal(key).await?);
        }
        // We hold the advisory lock, so any row still there is stale: replace it. Written from
        // the lock's own session, which is what `session_pid` records.
        let written = sqlx::query(
            "INSERT INTO tldw_ops.locks
                 (deployment, environment, advisory_key, session_pid, apply_id, host, pid,
                  started_at)
             VALUES ($1, $2, $3, pg_backend_pid(), $4, $5, $6, $7)
             ON CONFLICT (deployment, environment) DO UPDATE SET
                 advisory_key = excluded.advisory_key, session_pid = excluded.session_pid,
                 apply_id = excluded.apply_id, host = excluded.host, pid = excluded.pid,
                 started_at = excluded.started_at",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(advisory)
        .bind(&holder.apply_id)
        .bind(&holder.host)
        .bind(wide(holder.pid))
        .bind(timestamp_text(holder.started_at))
        .execute(&mut connection)
        .await;
        if let Err(source) = written {
            // Ending the session releases the advisory lock.
            let _ = connection.close().await;
            return Err(self.error(source));
        }
        held.insert(
            key.clone(),
            HeldLock {
                connection,
                holder: holder.clone(),
            },
        );
        Ok(())
    }

    async fn unlock(&self, key: &EnvironmentKey, apply_id: &str) -> Result<(), StateError> {
        let mut held = self.held.lock().await;
        if held
            .get(key)
            .is_some_and(|existing| existing.holder.apply_id == apply_id)
        {
            let existing = held.remove(key).expect("checked just above");
            return self.release(key, existing).await;
        }
        // Another session's lock cannot be released from here; a dead one's row can be cleaned.
        if let Some(row) = self.read_holder(key).await?
            && row.holder.apply_id == apply_id
            && !row.live
        {
            self.remove_stale(key, &row).await?;
        }
        Ok(())
    }

    async fn force_unlock(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        let mut held = self.held.lock().await;
        if let Some(existing) = held.remove(key) {
            let holder = existing.holder.clone();
            self.release(key, existing).await?;
            return Ok(Some(holder));
        }
        let row = self.read_holder(key).await?;
        // A live holder elsewhere (a hung process, or a host that vanished without closing its
        // connection) keeps the lock until its session ends: end it.
        let advisory = advisory_key(key);
        let sessions = self.sessions_holding(advisory).await?;
        for session in &sessions {
            tracing::warn!(environment = %key, session, "terminating the session holding the lock");
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(session)
                .execute(&self.pool)
                .await
                .map_err(|source| self.error(source))?;
        }
        let deadline = tokio::time::Instant::now() + TERMINATE_WAIT;
        while !sessions.is_empty()
            && !self.sessions_holding(advisory).await?.is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(POLL).await;
        }
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query(
            "DELETE FROM tldw_ops.locks
              WHERE deployment = $1 AND environment = $2 AND apply_id = $3 AND session_pid = $4",
        )
        .bind(&key.deployment)
        .bind(&key.environment)
        .bind(&row.holder.apply_id)
        .bind(row.session_pid)
        .execute(&self.pool)
        .await
        .map_err(|source| self.error(source))?;
        Ok(Some(row.holder))
    }

    async fn lock_holder(&self, key: &EnvironmentKey) -> Result<Option<LockHolder>, StateError> {
        match self.read_holder(key).await? {
            None => Ok(None),
            Some(row) if row.live => Ok(Some(row.holder)),
            Some(row) => {
                self.remove_stale(key, &row).await?;
                Ok(None)
            }
        }
    }

    async fn begin_apply(&self, record: &ApplyRecord) -> Result<(), StateError> {
        let running = ApplyRecord {
            outcome: Outcome::Running,
            finished_at: None,
            ..record.clone()
        };
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        ensure_environment(&mut *transaction, &record.environment)
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
            .begin()
            .await
            .map_err(|source| self.error(source))?;
        let row = sqlx::query(
            "UPDATE tldw_ops.applies
                SET outcome = $1, finished_at = $2, health_passed = $3, message = $4
              WHERE id = $5 RETURNING deployment, environment",
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
            // FOR UPDATE: a concurrent finish of the same environment waits for this one.
            let existing = sqlx::query(
                "SELECT * FROM tldw_ops.managed WHERE deployment = $1 AND environment = $2
                   FOR UPDATE",
            )
            .bind(&key.deployment)
            .bind(&key.environment)
            .fetch_all(&mut *transaction)
            .await
            .map_err(|source| self.error(source))?
            .iter()
            .map(|row| self.columns(row).managed())
            .collect::<Result<BTreeMap<_, _>, _>>()?;
            let managed = merge_managed(&existing, record, apply_id, finished_at);
            for statement in [DELETE_MANAGED, DELETE_SECRETS] {
                sqlx::query(statement)
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
        let row = sqlx::query("SELECT * FROM tldw_ops.applies WHERE id = $1")
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
            sqlx::query_scalar("SELECT seq FROM tldw_ops.applies WHERE id = $1")
                .bind(apply_id)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        if known.is_none() {
            return Err(StateError::UnknownApply(apply_id.to_string()));
        }
        let rows =
            sqlx::query("SELECT * FROM tldw_ops.steps WHERE apply_id = $1 ORDER BY step_index")
                .bind(apply_id)
                .fetch_all(&mut *transaction)
                .await
                .map_err(|source| self.error(source))?;
        rows.iter()
            .map(|row| {
                let columns = self.columns(row);
                let addresses: Vec<String> = columns.get("addresses")?;
                columns.step(addresses)
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
                    sqlx::query(
                        "SELECT * FROM tldw_ops.applies WHERE deployment = $1 AND environment = $2
                      ORDER BY started_at DESC, seq DESC LIMIT $3",
                    )
                    .bind(&key.deployment)
                    .bind(&key.environment)
                    .bind(wide(limit))
                    .fetch_all(&self.pool)
                    .await
                }
                None => sqlx::query(
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
        let rows = sqlx::query(
            "SELECT e.deployment, e.environment,
                    (SELECT count(*) FROM tldw_ops.managed m
                      WHERE m.deployment = e.deployment AND m.environment = e.environment)
                        AS managed
               FROM tldw_ops.environments e
              ORDER BY e.deployment COLLATE \"C\", e.environment COLLATE \"C\"",
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

/// The advisory lock key of an environment: the first 8 bytes of a SHA-256 over a tldw-ops
/// prefix (so the keys do not collide with other applications' locks) and the two names.
fn advisory_key(key: &EnvironmentKey) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(b"tldw-ops environment lock\0");
    hasher.update(key.deployment.as_bytes());
    hasher.update(b"\0");
    hasher.update(key.environment.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// How `pg_locks` shows a bigint advisory key: high half in `classid`, low half in `objid`.
fn split_key(advisory: i64) -> (i64, i64) {
    let bits = advisory as u64;
    ((bits >> 32) as i64, (bits & 0xffff_ffff) as i64)
}

/// The URL without its password, for messages: `postgres://user:secret@host/db?password=x`
/// becomes `postgres://user@host/db`. Works on malformed URLs too (an unescaped `/` or `@` in
/// the password), since those are the ones that end up in error messages.
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let before_query = match before_query.rsplit_once('@') {
        Some((user_info, host_and_path)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{user}@{host_and_path}")
        }
        None => before_query.to_string(),
    };
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !pair.is_empty() && !name.to_ascii_lowercase().contains("password")
        })
        .collect();
    if kept.is_empty() {
        format!("{scheme}://{before_query}")
    } else {
        format!("{scheme}://{before_query}?{}", kept.join("&"))
    }
}

/// Inserts the environment row when missing; true when it was created.
async fn ensure_environment<'e, E>(executor: E, key: &EnvironmentKey) -> Result<bool, sqlx::Error>
where
    E: Executor<'e, Database = Postgres>,
{
    let result = sqlx::query(
        "INSERT INTO tldw_ops.environments (deployment, environment, created_at)
         VALUES ($1, $2, $3) ON CONFLICT (deployment, environment) DO NOTHING",
    )
    .bind(&key.deployment)
    .bind(&key.environment)
    .bind(timestamp_text(Timestamp::now()))
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

const DELETE_MANAGED: &str =
    "DELETE FROM tldw_ops.managed WHERE deployment = $1 AND environment = $2";
const DELETE_SECRETS: &str =
    "DELETE FROM tldw_ops.secrets WHERE deployment = $1 AND environment = $2";

/// Inserts a whole managed set with one statement over arrays (`unnest`), instead of one
/// round trip per row.
async fn insert_managed(
    connection: &mut PgConnection,
    key: &EnvironmentKey,
    managed: &BTreeMap<String, ManagedRecord>,
) -> Result<(), sqlx::Error> {
    if managed.is_empty() {
        return Ok(());
    }
    let addresses: Vec<&str> = managed.keys().map(String::as_str).collect();
    let hashes: Vec<&str> = managed
        .values()
        .map(|record| record.value_hash.as_str())
        .collect();
    let sensitive: Vec<bool> = managed.values().map(|record| record.sensitive).collect();
    let applies: Vec<&str> = managed
        .values()
        .map(|record| record.apply_id.as_str())
        .collect();
    let times: Vec<String> = managed
        .values()
        .map(|record| timestamp_text(record.updated_at))
        .collect();
    sqlx::query(
        "INSERT INTO tldw_ops.managed
             (deployment, environment, address, value_hash, sensitive, apply_id, updated_at)
         SELECT $1, $2, address, value_hash, sensitive, apply_id, updated_at
           FROM unnest($3::text[], $4::text[], $5::bool[], $6::text[], $7::text[])
             AS rows (address, value_hash, sensitive, apply_id, updated_at)",
    )
    .bind(&key.deployment)
    .bind(&key.environment)
    .bind(&addresses)
    .bind(&hashes)
    .bind(&sensitive)
    .bind(&applies)
    .bind(&times)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn insert_secrets(
    connection: &mut PgConnection,
    key: &EnvironmentKey,
    secrets: &BTreeMap<String, SecretMeta>,
) -> Result<(), sqlx::Error> {
    for (name, meta) in secrets {
        sqlx::query(
            "INSERT INTO tldw_ops.secrets
                 (deployment, environment, name, fingerprint, set_at, rotated_at, adopted, source)
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
        .await?;
    }
    Ok(())
}

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

/// Inserts an apply row as it is; true when a row was written.
async fn insert_apply(
    connection: &mut PgConnection,
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

async fn upsert_step(connection: &mut PgConnection, step: &StepRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tldw_ops.steps
             (apply_id, step_index, kind, target, addresses, status, before_hash, after_hash,
              checkpoint_path, checkpoint_hash, before_values, started_at, finished_at, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
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
    .bind(&step.addresses)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_everything_but_the_password() {
        assert_eq!(
            redact_url("postgres://ops:hunter2@db.example:5432/state?sslmode=require"),
            "postgres://ops@db.example:5432/state?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://db.example/state?password=hunter2&application_name=x"),
            "postgresql://db.example/state?application_name=x"
        );
        assert_eq!(
            redact_url("postgres://ops:a/b@c@db/state"),
            "postgres://ops@db/state"
        );
        assert_eq!(redact_url("postgres://db/state"), "postgres://db/state");
    }

    #[test]
    fn advisory_keys_are_stable_and_distinct_per_environment() {
        let key = |deployment: &str, environment: &str| EnvironmentKey {
            deployment: deployment.to_string(),
            environment: environment.to_string(),
        };
        assert_eq!(
            advisory_key(&key("default", "prod")),
            advisory_key(&key("default", "prod"))
        );
        assert_ne!(
            advisory_key(&key("default", "prod")),
            advisory_key(&key("default", "stage"))
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(advisory_key(&key("ab", "c")), advisory_key(&key("a", "bc")));
        assert_eq!(split_key(-1), (0xffff_ffff, 0xffff_ffff));
        assert_eq!(split_key(0x0000_0001_0000_0002), (1, 2));
    }
}
