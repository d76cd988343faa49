//! SQLite through sqlx: the online copy and the integrity check.
//!
//! The copy is `VACUUM INTO` on a read-only connection: SQLite reads the source inside one read
//! transaction, so the copy is the database as of one commit, including whatever is still in the
//! `-wal` file, while the server keeps writing (in WAL mode readers and the writer do not block
//! each other). The result is a single, compact file in rollback-journal mode with no sidecars.
//! A plain file copy of a WAL database is not consistent and is never used for one.

use std::path::Path;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};

use super::BackupError;

/// How long to wait for a lock the server holds (a rollback-journal database mid-commit, or WAL
/// recovery) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many `integrity_check` messages are kept; the first ones say enough.
const MAX_MESSAGES: usize = 5;

/// Writes a consistent copy of the SQLite database `source` to the new file `target`, without
/// stopping writers and without changing the source. The copy is not fsynced: the caller syncs
/// all of a set's files together before writing its manifest.
pub(super) async fn vacuum_into(source: &Path, target: &Path) -> Result<(), BackupError> {
    let target_text = target.to_str().ok_or_else(|| BackupError::NonUtf8Path {
        path: target.to_path_buf(),
    })?;
    let copy_error = |error: sqlx::Error| BackupError::SqliteCopy {
        path: source.to_path_buf(),
        source: error,
    };
    // Read-only: never checkpoints or deletes the server's WAL on close. `synchronous = OFF`
    // applies to the copy VACUUM INTO writes; the caller fsyncs it once instead.
    let mut connection = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .create_if_missing(false)
        .foreign_keys(false)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Off)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(copy_error)?;
    let result = sqlx::query("VACUUM INTO ?1")
        .bind(target_text)
        .execute(&mut connection)
        .await;
    let closed = connection.close().await;
    result.map_err(copy_error)?;
    closed.map_err(copy_error)?;
    Ok(())
}

/// Runs `PRAGMA integrity_check` on a copy in a set, read-only and without touching it. Returns
/// the problems SQLite reports (empty when the database is sound); a file SQLite cannot read at
/// all is reported as a problem, not an error.
pub(super) async fn integrity_problems(path: &Path) -> Vec<String> {
    let check = async {
        // Immutable: the copy never changes, so no locks, no -shm, no -journal beside it.
        let mut connection = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true)
            .create_if_missing(false)
            .foreign_keys(false)
            .disable_statement_logging()
            .connect()
            .await?;
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut connection)
            .await?;
        connection.close().await?;
        Ok::<_, sqlx::Error>(rows)
    };
    match check.await {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Vec::new(),
        Ok(rows) => {
            let mut messages: Vec<String> = rows
                .iter()
                .take(MAX_MESSAGES)
                .map(|row| format!("integrity_check: {row}"))
                .collect();
            if rows.len() > MAX_MESSAGES {
                messages.push(format!(
                    "integrity_check: and {} more",
                    rows.len() - MAX_MESSAGES
                ));
            }
            if messages.is_empty() {
                messages.push("integrity_check returned nothing".to_string());
            }
            messages
        }
        Err(error) => vec![format!("not a readable SQLite database: {error}")],
    }
}
