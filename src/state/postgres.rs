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
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{Connection, Postgres};
use tokio::sync::Mutex;

use super::codec::{Columns, timestamp_text, wide};
use super::journal::{Dialect, SqlStore, Statement};
use super::{EnvironmentKey, LockHolder, ManagedRecord, StateError};

/// Where everything lives, including the migrator's bookkeeping. The SQL names it literally.
const SCHEMA: &str = "tldw_ops";
const MIGRATIONS_TABLE: &str = "tldw_ops._sqlx_migrations";

/// How long a refused `lock` waits for the holder's row to appear, when the advisory lock is
/// held but the row does not name a live holder yet (the holder is between the two steps).
const HOLDER_ROW_WAIT: Duration = Duration::from_secs(2);

/// How long `force_unlock` waits for a terminated holder's session to end.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);

const POLL: Duration = Duration::from_millis(50);

pub type PostgresStore = SqlStore<Postgres>;

/// What a PostgreSQL store keeps besides its pool.
pub struct PostgresBackend {
    /// For the lock sessions. Holds the password in memory only. Boxed: it is most of the
    /// store's size, and `Store` should not carry it inline.
    options: Box<PgConnectOptions>,
    /// The sessions holding this store's advisory locks, by environment.
    held: Mutex<HashMap<EnvironmentKey, HeldLock>>,
}

/// A lock this store holds: the session it lives in, and who it was taken for.
struct HeldLock {
    connection: PgConnection,
    holder: LockHolder,
}

/// A `locks` row and whether its session still holds the advisory lock.
struct HolderRow {
    holder: LockHolder,
    session_pid: i32,
    live: bool,
}

impl PostgresStore {
    /// A store whose pool connects on first use: four connections, or one when it only reads.
    fn lazy(location: String, options: PgConnectOptions, read_only: bool) -> PostgresStore {
        let pool = PgPoolOptions::new()
            .max_connections(if read_only { 1 } else { 4 })
            .connect_lazy_with(options.clone());
        PostgresStore {
            pool,
            location,
            backend: PostgresBackend {
                options: Box::new(options),
                held: Mutex::new(HashMap::new()),
            },
            read_only,
        }
    }

    /// Connects to `url` (`postgres://` or `postgresql://`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore, StateError> {
        let (location, options, mut connection) = first_connection(url).await?;
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
        let store = PostgresStore::lazy(location, options, false);
        store.ensure_salt().await?;
        Ok(store)
    }

    /// Connects to read only, or `None` when the store must be opened with
    /// [`PostgresStore::connect`]: the schema is missing or not this build's, or the salt is.
    /// The migrator (which takes an advisory lock and may create the schema) does not run.
    pub async fn connect_read_only(url: &str) -> Result<Option<PostgresStore>, StateError> {
        let (location, options, connection) = first_connection(url).await?;
        let _ = connection.close().await;
        let store = PostgresStore::lazy(location, options, true);
        let migrator: Migrator = sqlx::migrate!("./migrations/postgres");
        let newest = migrator.iter().map(|migration| migration.version).max();
        if !store.readable_as_is(newest.unwrap_or_default()).await {
            // Unreachable, refused, or not migrated: `connect` says which, or migrates.
            store.pool.close().await;
            return Ok(None);
        }
        Ok(Some(store))
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
}

impl Dialect for Postgres {
    const STORE_NAME: &'static str = "PostgresStore";
    const SCHEMA_QUALIFIED: bool = true;
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const LOCK_ENVIRONMENTS: Option<&'static str> =
        Some("LOCK TABLE tldw_ops.environments IN SHARE MODE");
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const PACKED_MANAGED: &'static str =
        "SELECT string_agg(address || chr(31) || value_hash || chr(31)
                           || (CASE WHEN sensitive THEN '1' ELSE '0' END) || chr(31)
                           || apply_id || chr(31) || updated_at, chr(30))
           FROM tldw_ops.managed WHERE deployment = $1 AND environment = $2";

    type Backend = PostgresBackend;

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn bind_addresses(query: Statement<Postgres>, addresses: &[String]) -> Statement<Postgres> {
        query.bind(addresses)
    }

    fn addresses(columns: &Columns<'_, PgRow>) -> Result<Vec<String>, StateError> {
        columns.get("addresses")
    }

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

    async fn lock(
        store: &PostgresStore,
        key: &EnvironmentKey,
        holder: &LockHolder,
    ) -> Result<(), StateError> {
        let mut held = store.backend.held.lock().await;
        if let Some(existing) = held.get(key) {
            return Err(StateError::Locked {
                environment: key.clone(),
                holder: existing.holder.clone(),
            });
        }
        {
            let mut pooled = store
                .pool
                .acquire()
                .await
                .map_err(|source| store.error(source))?;
            store.ensure_environment(&mut pooled, key).await?;
        }
        let options = PgConnectOptions::clone(&store.backend.options)
            .application_name(&format!("tldw-ops lock {key}"));
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(|source| store.error(source))?;
        let advisory = advisory_key(key);
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(advisory)
            .fetch_one(&mut connection)
            .await
            .map_err(|source| store.error(source))?;
        if !acquired {
            let _ = connection.close().await;
            return Err(store.refusal(key).await?);
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
            return Err(store.error(source));
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

    async fn unlock(
        store: &PostgresStore,
        key: &EnvironmentKey,
        apply_id: &str,
    ) -> Result<(), StateError> {
        let mut held = store.backend.held.lock().await;
        if held
            .get(key)
            .is_some_and(|existing| existing.holder.apply_id == apply_id)
        {
            let existing = held.remove(key).expect("checked just above");
            return store.release(key, existing).await;
        }
        // Another session's lock cannot be released from here; a dead one's row can be cleaned.
        if let Some(row) = store.read_holder(key).await?
            && row.holder.apply_id == apply_id
            && !row.live
        {
            store.remove_stale(key, &row).await?;
        }
        Ok(())
    }

    async fn force_unlock(
        store: &PostgresStore,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError> {
        let mut held = store.backend.held.lock().await;
        if let Some(existing) = held.remove(key) {
            let holder = existing.holder.clone();
            store.release(key, existing).await?;
            return Ok(Some(holder));
        }
        let row = store.read_holder(key).await?;
        // A live holder elsewhere (a hung process, or a host that vanished without closing its
        // connection) keeps the lock until its session ends: end it.
        let advisory = advisory_key(key);
        let sessions = store.sessions_holding(advisory).await?;
        for session in &sessions {
            tracing::warn!(environment = %key, session, "terminating the session holding the lock");
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(session)
                .execute(&store.pool)
                .await
                .map_err(|source| store.error(source))?;
        }
        let deadline = tokio::time::Instant::now() + TERMINATE_WAIT;
        while !sessions.is_empty()
            && !store.sessions_holding(advisory).await?.is_empty()
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
        .execute(&store.pool)
        .await
        .map_err(|source| store.error(source))?;
        Ok(Some(row.holder))
    }

    async fn lock_holder(
        store: &PostgresStore,
        key: &EnvironmentKey,
    ) -> Result<Option<LockHolder>, StateError> {
        match store.read_holder(key).await? {
            None => Ok(None),
            Some(row) if row.live => Ok(Some(row.holder)),
            Some(row) => {
                // A read-only store leaves the stale row to the next command that writes.
                if !store.read_only {
                    store.remove_stale(key, &row).await?;
                }
                Ok(None)
            }
        }
    }
}

/// The URL's location for messages, its options, and one direct connection: an unreachable
/// server or a refused login fails at once, where a pool would retry until its acquire timeout.
async fn first_connection(
    url: &str,
) -> Result<(String, PgConnectOptions, PgConnection), StateError> {
    let location = redact_url(url);
    let options: PgConnectOptions = url.parse().map_err(|source| StateError::Database {
        location: location.clone(),
        source,
    })?;
    let options = options.application_name("tldw-ops");
    let connection = PgConnection::connect_with(&options)
        .await
        .map_err(|source| StateError::Database {
            location: location.clone(),
            source,
        })?;
    Ok((location, options, connection))
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
