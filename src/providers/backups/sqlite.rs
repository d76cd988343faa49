//! SQLite through sqlx: the online copies and the integrity check.
//!
//! Both copies read the source on a read-only connection inside one read transaction, so the
//! copy is the database as of one commit, including whatever is still in the `-wal` file, while
//! the server keeps writing (in WAL mode readers and the writer do not block each other):
//! - [`image`] (`sqlite3_serialize`): every page, read through SQLite's pager, into memory; the
//!   caller hashes and writes it in one pass. Fast, but it holds the whole database in memory,
//!   so it is for databases up to [`IMAGE_LIMIT`].
//! - [`vacuum_into`] (`VACUUM INTO`): a compact rebuild written straight to the target file, in
//!   constant memory, for larger databases.
//!
//! Either way the result is a single file in rollback-journal mode with no sidecars. A plain file
//! copy of a WAL database is not consistent and is never used for one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteOwnedBuf, SqliteSynchronous};

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
    let mut connection = read_only_source(source)
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

/// A SQLite database's schema: `user_version` and every table, index, view and trigger with its
/// SQL, by type and name. Two databases with equal schemas have had the same migrations; a
/// migration that ran changes it, rows alone do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub user_version: i64,
    /// `(type, name, sql)`, ordered by type and name.
    pub objects: Vec<(String, String, Option<String>)>,
}

impl Schema {
    pub fn tables(&self) -> usize {
        self.objects
            .iter()
            .filter(|(kind, _, _)| kind == "table")
            .count()
    }
}

/// The schema of the SQLite database at `path`. Read-only, so the server's WAL is left alone.
pub async fn schema(path: &Path) -> Result<Schema, BackupError> {
    let error = |source: sqlx::Error| BackupError::SqliteCopy {
        path: path.to_path_buf(),
        source,
    };
    let mut connection = read_only_source(path).connect().await.map_err(error)?;
    let rows: Result<Vec<(String, String, Option<String>)>, sqlx::Error> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
    .fetch_all(&mut connection)
    .await;
    let version: Result<(i64,), sqlx::Error> = sqlx::query_as("PRAGMA user_version")
        .fetch_one(&mut connection)
        .await;
    let closed = connection.close().await;
    let (rows, version) = (rows.map_err(error)?, version.map_err(error)?);
    closed.map_err(error)?;
    Ok(Schema {
        user_version: version.0,
        objects: rows,
    })
}

/// The largest database (with its `-wal`) copied through memory by [`image`]; larger ones are
/// copied with [`vacuum_into`]. With the default four copies at once, at most 256 MiB is held.
pub(super) const IMAGE_LIMIT: u64 = 64 * 1024 * 1024;

/// Read-only: never checkpoints or deletes the server's WAL on close. `synchronous = OFF`
/// applies to the copy `VACUUM INTO` writes; the caller fsyncs it once instead.
fn read_only_source(source: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .create_if_missing(false)
        .foreign_keys(false)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Off)
        .disable_statement_logging()
}

/// The bytes of a consistent copy of the SQLite database `source` (`sqlite3_serialize`: every
/// page as of one read transaction, read through the pager, so WAL content is included), marked
/// as a rollback-journal database like a `VACUUM INTO` copy. Without stopping writers and
/// without changing the source.
///
/// SQLite fills a page it cannot read with zeros instead of failing; verification's
/// `integrity_check` finds such a page (a b-tree or overflow page of zeros is malformed), which
/// is one more reason the policy verifies every set.
pub(super) async fn image(source: &Path) -> Result<SqliteOwnedBuf, BackupError> {
    let copy_error = |error: sqlx::Error| BackupError::SqliteCopy {
        path: source.to_path_buf(),
        source: error,
    };
    let mut connection = read_only_source(source)
        .connect()
        .await
        .map_err(copy_error)?;
    let result = connection.serialize(None).await;
    let closed = connection.close().await;
    let mut image = result.map_err(copy_error)?;
    closed.map_err(copy_error)?;
    // Bytes 18 and 19 are the file format's write and read versions: 2 is WAL, 1 rollback. The
    // image already holds every committed page, so it needs no WAL: mark it as a rollback
    // database, which opens anywhere (even read-only, without a -shm beside it).
    if image.len() >= 100 && image[18] == 2 && image[19] == 2 {
        image[18] = 1;
        image[19] = 1;
    }
    Ok(image)
}

/// The rows of every ordinary table of a sound copy (virtual tables are left out: their rows
/// live in shadow tables, which are counted, and their modules may be missing here).
pub(super) async fn table_rows(path: &Path) -> Result<BTreeMap<String, u64>, Vec<String>> {
    match check_copy(path, true).await {
        (problems, _) if !problems.is_empty() => Err(problems),
        (_, rows) => Ok(rows.unwrap_or_default()),
    }
}

/// Runs `PRAGMA integrity_check` on a copy in a set, read-only and without touching it, and
/// with `count` counts the rows per table when the copy is sound. The problems are those SQLite
/// reports (none when the database is sound); a file SQLite cannot read at all is reported as a
/// problem, not an error.
pub(super) async fn check_copy(
    path: &Path,
    count: bool,
) -> (Vec<String>, Option<BTreeMap<String, u64>>) {
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
        let mut counts = None;
        if count && rows.len() == 1 && rows[0] == "ok" {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
            )
            .fetch_all(&mut connection)
            .await?;
            let mut found = BTreeMap::new();
            for table in tables {
                let quoted = format!("\"{}\"", table.replace('"', "\"\""));
                // The name is quoted as an SQL identifier, its own quotes doubled.
                let count = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {quoted}"));
                let n: i64 = sqlx::query_scalar(count).fetch_one(&mut connection).await?;
                found.insert(table, n.max(0) as u64);
            }
            counts = Some(found);
        }
        connection.close().await?;
        Ok::<_, sqlx::Error>((rows, counts))
    };
    let (problems, counts) = match check.await {
        Ok((rows, counts)) => (rows_to_problems(rows), counts),
        Err(error) => (
            vec![format!("not a readable SQLite database: {error}")],
            None,
        ),
    };
    (problems, counts)
}

fn rows_to_problems(rows: Vec<String>) -> Vec<String> {
    if rows.len() == 1 && rows[0] == "ok" {
        return Vec::new();
    }
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
