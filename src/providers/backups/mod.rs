//! The backups provider: owns `backup.set.*`. It creates backup sets (an online copy of every
//! SQLite database, `pg_dump -Fc` for a PostgreSQL AuthNZ database, the `.env` and config.txt),
//! records them in a checksummed manifest written last, verifies them, restores them, and deletes
//! the sets that the keep policy releases.
//!
//! What to create and what to prune is decided by the pure functions in [`policy`], which take
//! the clock as an input; everything else here does I/O. This module never stops or restarts the
//! server (restore assumes the caller did), never decides on its own to delete a set, and never
//! lets a PostgreSQL password reach argv, a log line, an error message or a `Debug` string.

pub mod create;
pub mod drill;
pub mod manifest;
pub mod restore;
pub mod verify;

mod copy;
mod postgres;
mod sqlite;
pub use sqlite::schema as sqlite_schema;
#[cfg(test)]
mod testing;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::plan::backup_policy::{Decision, SetInfo, due, parse_set_id, prune, set_id};
pub use create::{
    AuthnzSource, BackupSource, CreateOptions, DEFAULT_CONCURRENCY, copy_sqlite_online, create_set,
    create_set_with, destination_warnings,
};
pub use drill::{CheckedItem, DrillOptions, DrillReport, drill_set};
pub use manifest::{
    Drill, ItemKind, MANIFEST_FILE, Manifest, ManifestItem, Verification, VerificationProblem,
    list_sets, read_manifest, set_path, write_manifest,
};
pub use restore::{RestoreReport, RestoreTargets, RestoredItem, restore_set};
pub use verify::{VerifyOptions, verify_set, verify_set_with};

/// Everything that can go wrong with a backup set. Each variant names the path, item or tool it
/// concerns; the cause is the `#[source]`, not repeated in the message. No variant ever holds a
/// PostgreSQL password: URLs are stored with the password removed and tool output is redacted.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup set {path} already exists")]
    SetExists { path: PathBuf },
    #[error("cannot create directory {path}")]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{item}` is included in the backup policy but no source was given for it")]
    MissingSource { item: &'static str },
    #[error("cannot restore {item}: no target was given for it")]
    MissingTarget { item: String },
    #[error("cannot restore {item}: the set holds {found}, the target is {expected}")]
    TargetMismatch {
        item: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    File(#[from] crate::providers::files::FileError),
    #[error("cannot delete backup set {path}")]
    Delete {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a backup set directory (its name is not a set id)")]
    NotASet { path: PathBuf },
    #[error("{path} is not valid UTF-8, which SQLite needs for the copy's file name")]
    NonUtf8Path { path: PathBuf },
    #[error("cannot make an online copy of the SQLite database {path}")]
    SqliteCopy {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// `target` is a database URL without its password; `output` is the tool's stderr with any
    /// password replaced.
    #[error("{program} failed for {target} ({status}): {output}")]
    Tool {
        program: String,
        target: String,
        status: String,
        output: String,
    },
    #[error("the AuthNZ PostgreSQL address is not a postgres:// or postgresql:// URL")]
    NotAPostgresUrl,
    #[error("backup set {path} is incomplete: it has no readable manifest")]
    Incomplete {
        path: PathBuf,
        #[source]
        source: Option<io::Error>,
    },
    #[error("the manifest {path} cannot be parsed")]
    ManifestParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the manifest {path} names an item path `{item_path}` outside its set")]
    UnsafeItemPath { path: PathBuf, item_path: String },
    #[error(
        "backup set {path} failed verification and is not restored (run verify to see why, or \
         restore another set)"
    )]
    FailedVerification { path: PathBuf },
    #[error("item {item} of {path} does not match its manifest ({problem}); nothing was restored")]
    ItemMismatch {
        item: String,
        path: PathBuf,
        problem: String,
    },
    #[error("a background task of the backup failed")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Deletes a backup set. The manifest goes first (durably), so a crash part-way leaves an
/// incomplete set that a later prune removes, never a "complete" set with missing items.
/// Refuses a directory whose name is not a set id, so a wrong path cannot wipe something else.
pub fn delete_set(path: &Path) -> Result<(), BackupError> {
    let is_set = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| parse_set_id(name).is_some());
    if !is_set || !path.is_dir() {
        return Err(BackupError::NotASet {
            path: path.to_path_buf(),
        });
    }
    let delete_error = |source: io::Error| BackupError::Delete {
        path: path.to_path_buf(),
        source,
    };
    match fs::remove_file(path.join(MANIFEST_FILE)) {
        Ok(()) => copy::sync_directory(path).map_err(delete_error)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(delete_error(error)),
    }
    fs::remove_dir_all(path).map_err(delete_error)?;
    if let Some(parent) = path.parent() {
        let _ = copy::sync_directory(parent);
    }
    Ok(())
}

/// Runs `work` on every input with at most `limit` running at once and returns the outputs in
/// input order. After the first error nothing new starts, the running ones are waited for (so
/// no copy is still writing when the caller cleans up), and that first error is returned.
async fn run_bounded<T, R, F, Fut>(
    inputs: Vec<T>,
    limit: usize,
    work: F,
) -> Result<Vec<R>, BackupError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, BackupError>> + Send + 'static,
{
    let semaphore = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(work);
    let mut tasks = tokio::task::JoinSet::new();
    let count = inputs.len();
    for (index, input) in inputs.into_iter().enumerate() {
        let semaphore = semaphore.clone();
        let stop = stop.clone();
        let work = work.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = semaphore.acquire_owned().await.ok();
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let result = work(input).await;
            if result.is_err() {
                // Before any queued task gets the permit this one is about to release.
                stop.store(true, Ordering::SeqCst);
            }
            result.map(|output| Some((index, output)))
        });
    }
    let mut outputs: Vec<Option<R>> = (0..count).map(|_| None).collect();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|source| BackupError::Task { source }) {
            Ok(Ok(Some((index, output)))) => outputs[index] = Some(output),
            Ok(Ok(None)) => {}
            Ok(Err(error)) | Err(error) => {
                stop.store(true, Ordering::SeqCst);
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(outputs.into_iter().flatten().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::Keep;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_crashed_backup_is_listed_as_incomplete_kept_for_a_day_then_pruned_and_deleted() {
        let destination = tempfile::tempdir().unwrap();
        // What a crash leaves: items written, no manifest.
        let crashed = set_path(destination.path(), "prod", "2026-11-25T030000Z");
        fs::create_dir_all(crashed.join("user_databases/1")).unwrap();
        fs::write(crashed.join("user_databases/1/Media_DB_v2.db"), b"partial").unwrap();

        let sets: Vec<SetInfo> = list_sets(destination.path(), "prod")
            .unwrap()
            .into_iter()
            .map(|(set, manifest)| {
                assert!(manifest.is_none());
                set
            })
            .collect();
        assert_eq!(sets.len(), 1);
        assert!(!sets[0].complete);
        assert_eq!(sets[0].created_at, at("2026-11-25T03:00:00Z"));
        assert_eq!(sets[0].size, 7);
        let keep = Keep {
            last: None,
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
        };

        // An hour later it may still be in progress.
        let soon = prune(&sets, &keep, at("2026-11-25T04:00:00Z"));
        assert!(soon[0].is_kept(), "{soon:?}");
        // A day later it was interrupted.
        let later = prune(&sets, &keep, at("2026-11-26T03:00:00Z"));
        assert_eq!(
            later[0].release.as_deref(),
            Some("incomplete, left by an interrupted backup")
        );
        delete_set(&crashed).unwrap();
        assert!(!crashed.exists());
        assert!(list_sets(destination.path(), "prod").unwrap().is_empty());
    }

    #[test]
    fn delete_set_refuses_a_directory_that_is_not_a_set() {
        let directory = tempfile::tempdir().unwrap();
        let precious = directory.path().join("Databases");
        fs::create_dir_all(&precious).unwrap();
        assert!(matches!(
            delete_set(&precious),
            Err(BackupError::NotASet { .. })
        ));
        assert!(precious.exists());
        assert!(matches!(
            delete_set(&directory.path().join("2026-11-25T030000Z")),
            Err(BackupError::NotASet { .. })
        ));
    }

    #[tokio::test]
    async fn bounded_runs_keep_input_order_and_stop_starting_work_after_an_error() {
        let outputs = run_bounded((0..20).collect(), 3, |n: u32| async move { Ok(n * 2) })
            .await
            .unwrap();
        assert_eq!(outputs, (0..20).map(|n| n * 2).collect::<Vec<_>>());

        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = started.clone();
        let result = run_bounded((0..50).collect(), 1, move |n: u32| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if n == 2 {
                    Err(BackupError::MissingSource { item: "authnz" })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(result, Err(BackupError::MissingSource { .. })));
        assert!(started.load(Ordering::SeqCst) < 50);
    }
}
