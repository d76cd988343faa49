//! Creating a backup set: the AuthNZ database (online SQLite copy or `pg_dump -Fc`), every file
//! under the per-user directory (online copies of the SQLite databases, plain copies of the
//! rest, the tree layout kept), and the `.env` and config.txt (mode 0600 in the set).
//!
//! Flow: check that every included item has a source, create `<destination>/<environment>/` and
//! the set directory (0700; an existing set is an error, never overwritten), copy every item with
//! a bounded number running at once, fsync, and write the manifest last. An error removes the
//! partial set; a crash leaves it without a manifest, which makes it an incomplete set that the
//! next prune deletes once it is a day old. Creating never changes a source file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use super::copy::{self, Hashed};
use super::manifest::{ItemKind, MANIFEST_FORMAT, Manifest, ManifestItem, write_manifest};
use super::postgres::{self, PgDatabase};
use super::{BackupError, run_bounded, sqlite};
use crate::plan::backup_policy::parse_set_id;
use crate::spec::types::BackupItem;

/// How many copies run at once by default: enough to overlap SQLite's CPU work with I/O on a
/// small host without starving the server it is backing up.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How many fsyncs are in flight at once at the end of a set: they wait on the disk, not the CPU.
const SYNC_CONCURRENCY: usize = 16;

/// Where the data of one environment lives, as resolved from the deployment.
#[derive(Debug, Clone)]
pub struct BackupSource {
    pub environment: String,
    pub authnz: Option<AuthnzSource>,
    /// `USER_DB_BASE_DIR`, by default `Databases/user_databases`.
    pub user_db_base_dir: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    /// Directory holding `pg_dump` and `pg_restore`; `None` finds them on `PATH`.
    pub pg_bin_dir: Option<PathBuf>,
}

/// The AuthNZ database. Its `Debug` never shows the password.
#[derive(Clone)]
pub enum AuthnzSource {
    Sqlite(PathBuf),
    Postgres {
        /// Without password (one found in it anyway is moved out before use).
        url: String,
        password: Option<String>,
    },
}

impl fmt::Debug for AuthnzSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthnzSource::Sqlite(path) => formatter.debug_tuple("Sqlite").field(path).finish(),
            AuthnzSource::Postgres { url, password } => {
                let shown = PgDatabase::new(url, None)
                    .map(|database| database.url().to_string())
                    .unwrap_or_else(|_| "(not a postgres URL)".to_string());
                formatter
                    .debug_struct("Postgres")
                    .field("url", &shown)
                    .field("password", &password.as_ref().map(|_| "(redacted)"))
                    .finish()
            }
        }
    }
}

/// Tuning for [`create_set_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Copies running at once (at least 1).
    pub concurrency: usize,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Creates the set `<destination>/<source.environment>/<set_id>` holding `include`, created at
/// `now`, and returns its manifest. See the module documentation for the flow.
pub async fn create_set(
    destination: &Path,
    source: &BackupSource,
    include: &[BackupItem],
    set_id: &str,
    now: Timestamp,
) -> Result<Manifest, BackupError> {
    create_set_with(
        destination,
        source,
        include,
        set_id,
        now,
        &CreateOptions::default(),
    )
    .await
}

/// [`create_set`] with explicit tuning (benchmarks vary the concurrency).
pub async fn create_set_with(
    destination: &Path,
    source: &BackupSource,
    include: &[BackupItem],
    set_id: &str,
    now: Timestamp,
    options: &CreateOptions,
) -> Result<Manifest, BackupError> {
    let include: BTreeSet<BackupItem> = include.iter().copied().collect();
    let environment_dir = destination.join(&source.environment);
    let set_dir = environment_dir.join(set_id);
    if parse_set_id(set_id).is_none() || !is_one_name(&source.environment) {
        return Err(BackupError::NotASet { path: set_dir });
    }
    let roots = Roots::resolve(source, &include)?;

    // A destination others can read is not repeated here: every caller planned first, and the
    // plan's warnings (`backups::observe`) already said it once.
    copy::create_private_dir_all(&environment_dir)?;
    match DirBuilder::new().mode(0o700).create(&set_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            return Err(BackupError::SetExists { path: set_dir });
        }
        Err(source) => {
            return Err(BackupError::CreateDirectory {
                path: set_dir,
                source,
            });
        }
    }

    let filled = fill(&set_dir, roots, options.concurrency).await;
    let items = match filled {
        Ok(items) => items,
        Err(error) => {
            // An error is not a crash: leave no debris. A failed removal is left to prune.
            let _ = fs::remove_dir_all(&set_dir);
            return Err(error);
        }
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        tool: "tldw-ops".to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        environment: source.environment.clone(),
        set_id: set_id.to_string(),
        created_at: now,
        include: include.into_iter().collect(),
        items,
        verification: None,
        drill: None,
    };
    if let Err(error) = write_manifest(&set_dir, &manifest) {
        let _ = fs::remove_dir_all(&set_dir);
        return Err(error);
    }
    Ok(manifest)
}

/// Warnings about the destination: sets hold the `.env` (secrets) and every user's data, so a
/// destination other users can read or list is worth knowing about. Sets themselves are 0700.
pub fn destination_warnings(destination: &Path) -> Vec<String> {
    match fs::metadata(destination) {
        Ok(metadata) if metadata.permissions().mode() & 0o004 != 0 => vec![format!(
            "backup destination {} is readable by other users (mode {:04o}); backup sets hold \
             the .env and every user's data",
            destination.display(),
            metadata.permissions().mode() & 0o7777
        )],
        _ => Vec::new(),
    }
}

/// Writes a consistent copy of the SQLite database `source` to the new file `target` while the
/// server may be writing to it (see the `sqlite` module); not fsynced. For benchmarks and tools;
/// sets are made with [`create_set`].
pub async fn copy_sqlite_online(source: &Path, target: &Path) -> Result<(), BackupError> {
    sqlite::vacuum_into(source, target).await
}

/// The sources of the included items, checked before anything is created.
struct Roots {
    authnz: Option<(AuthnzSource, Option<PathBuf>)>,
    user_db_base_dir: Option<PathBuf>,
    config: Vec<(&'static str, PathBuf)>,
}

impl Roots {
    fn resolve(
        source: &BackupSource,
        include: &BTreeSet<BackupItem>,
    ) -> Result<Roots, BackupError> {
        let mut roots = Roots {
            authnz: None,
            user_db_base_dir: None,
            config: Vec::new(),
        };
        for item in include {
            match item {
                BackupItem::Authnz => {
                    let authnz = source
                        .authnz
                        .clone()
                        .ok_or(BackupError::MissingSource { item: "authnz" })?;
                    if let AuthnzSource::Postgres { url, .. } = &authnz {
                        PgDatabase::new(url, None)?;
                    }
                    roots.authnz = Some((authnz, source.pg_bin_dir.clone()));
                }
                BackupItem::UserDatabases => {
                    roots.user_db_base_dir = Some(source.user_db_base_dir.clone().ok_or(
                        BackupError::MissingSource {
                            item: "user_databases",
                        },
                    )?);
                }
                BackupItem::Config => {
                    if let Some(path) = &source.env_file {
                        roots.config.push(("env_file", path.clone()));
                    }
                    if let Some(path) = &source.config_file {
                        roots.config.push(("config_file", path.clone()));
                    }
                    if roots.config.is_empty() {
                        return Err(BackupError::MissingSource { item: "config" });
                    }
                }
            }
        }
        Ok(roots)
    }
}

/// One copy to make into the set.
enum Job {
    /// An online SQLite copy.
    Sqlite {
        name: String,
        kind: ItemKind,
        source: PathBuf,
        relative: String,
        /// A per-user file may vanish between listing and copying (the user was deleted).
        may_vanish: bool,
    },
    /// A byte copy of a file that is not a database.
    File {
        name: String,
        kind: ItemKind,
        source: PathBuf,
        relative: String,
        /// Mode of the copy in the set; `None` keeps the source's.
        mode: Option<u32>,
        may_vanish: bool,
    },
    PgDump {
        database: PgDatabase,
        bin_dir: Option<PathBuf>,
        relative: String,
    },
}

async fn fill(
    set_dir: &Path,
    roots: Roots,
    concurrency: usize,
) -> Result<Vec<ManifestItem>, BackupError> {
    let mut jobs = Vec::new();
    if let Some((authnz, bin_dir)) = roots.authnz {
        jobs.push(match authnz {
            AuthnzSource::Sqlite(path) => {
                let file_name = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or("users.db")
                    .to_string();
                Job::Sqlite {
                    name: "authnz".to_string(),
                    kind: ItemKind::AuthnzSqlite,
                    source: path,
                    relative: format!("authnz/{file_name}"),
                    may_vanish: false,
                }
            }
            AuthnzSource::Postgres { url, password } => Job::PgDump {
                database: PgDatabase::new(&url, password.as_deref())?,
                bin_dir,
                relative: "authnz/authnz.pgdump".to_string(),
            },
        });
    }
    if let Some(base_dir) = roots.user_db_base_dir {
        let listed = tokio::task::spawn_blocking(move || list_user_tree(&base_dir))
            .await
            .map_err(|source| BackupError::Task { source })??;
        jobs.extend(listed);
    }
    for (name, path) in roots.config {
        let file_name = if name == "env_file" {
            ".env"
        } else {
            "config.txt"
        };
        jobs.push(Job::File {
            name: name.to_string(),
            kind: ItemKind::Config,
            source: path,
            relative: format!("config/{file_name}"),
            mode: Some(0o600),
            may_vanish: false,
        });
    }

    // Make every copy durable before the manifest says the set is complete. Each copy's fsync
    // starts as soon as it is written, on its own task outside the copy slots, with many in flight
    // at once: the disk writes one copy while the next ones are made, and merges the writes; a
    // copy that waited for its own fsync would serialise the copies behind the disk.
    let syncs = Arc::new(Syncs::new(SYNC_CONCURRENCY));
    let set_dir_owned = Arc::new(set_dir.to_path_buf());
    let copying = Arc::clone(&syncs);
    let items = run_bounded(jobs, concurrency, move |job| {
        let set_dir = set_dir_owned.clone();
        let syncs = Arc::clone(&copying);
        async move {
            let item = run_job(&set_dir, job).await?;
            if let Some(item) = &item {
                syncs.start(set_dir.join(&item.path));
            }
            Ok(item)
        }
    })
    .await;
    // Every sync is waited for, even after an error, so none still runs when the caller cleans up.
    let synced = syncs.finish().await;
    let items: Vec<ManifestItem> = items?.into_iter().flatten().collect();
    synced?;
    let directories: BTreeSet<PathBuf> = items
        .iter()
        .filter_map(|item| set_dir.join(&item.path).parent().map(Path::to_path_buf))
        .collect();
    for directory in directories {
        copy::sync_directory(&directory).map_err(|source| BackupError::Write {
            path: directory.clone(),
            source,
        })?;
    }
    Ok(items)
}

/// The fsyncs of a set's copies, running in the background while other copies are made.
struct Syncs {
    permits: Arc<tokio::sync::Semaphore>,
    tasks: std::sync::Mutex<tokio::task::JoinSet<Result<(), BackupError>>>,
}

impl Syncs {
    fn new(limit: usize) -> Syncs {
        Syncs {
            permits: Arc::new(tokio::sync::Semaphore::new(limit.max(1))),
            tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    /// Starts making `file` durable, at most `limit` at once.
    fn start(&self, file: PathBuf) {
        let permits = Arc::clone(&self.permits);
        self.tasks
            .lock()
            .expect("no task panics while holding the sync list")
            .spawn(async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _permit = permits.acquire_owned().await.ok();
                blocking(move || copy::sync_file(&file)).await
            });
    }

    /// Waits for every sync started; the first error, if any.
    async fn finish(&self) -> Result<(), BackupError> {
        let mut tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .expect("no task panics while holding the sync list"),
        );
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined
                .map_err(|source| BackupError::Task { source })
                .and_then(|result| result)
            {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn run_job(set_dir: &Path, job: Job) -> Result<Option<ManifestItem>, BackupError> {
    match job {
        Job::Sqlite {
            name,
            kind,
            source,
            relative,
            may_vanish,
        } => {
            let target = set_dir.join(&relative);
            ensure_parent(&target)?;
            let source_mode = match fs::metadata(&source) {
                Ok(metadata) => metadata.mode() & 0o7777,
                Err(error) if may_vanish && error.kind() == io::ErrorKind::NotFound => {
                    return Ok(None);
                }
                Err(error) => {
                    return Err(BackupError::Read {
                        path: source,
                        source: error,
                    });
                }
            };
            let copied = copy_sqlite(&source, &target).await;
            let hashed = match copied {
                Ok(hashed) => hashed,
                Err(_) if may_vanish && !source.exists() => {
                    let _ = fs::remove_file(&target);
                    return Ok(None);
                }
                Err(error) => return Err(error),
            };
            Ok(Some(item(
                name,
                kind,
                &source,
                relative,
                hashed,
                Some(source_mode),
            )))
        }
        Job::File {
            name,
            kind,
            source,
            relative,
            mode,
            may_vanish,
        } => {
            let target = set_dir.join(&relative);
            ensure_parent(&target)?;
            let shown = source.clone();
            let copied = blocking(move || {
                let source_mode = match fs::metadata(&source) {
                    Ok(metadata) => metadata.mode() & 0o7777,
                    Err(error) if may_vanish && error.kind() == io::ErrorKind::NotFound => {
                        return Ok(None);
                    }
                    Err(error) => {
                        return Err(BackupError::Read {
                            path: source,
                            source: error,
                        });
                    }
                };
                let copy_mode = mode.unwrap_or(source_mode & 0o777);
                match copy::copy_new_hashed(&source, &target, copy_mode) {
                    Ok((hashed, source_mode)) => Ok(Some((hashed, source_mode))),
                    Err(BackupError::Read { source: error, .. })
                        if may_vanish && error.kind() == io::ErrorKind::NotFound =>
                    {
                        let _ = fs::remove_file(&target);
                        Ok(None)
                    }
                    Err(error) => Err(error),
                }
            })
            .await?;
            Ok(copied.map(|(hashed, source_mode)| {
                item(name, kind, &shown, relative, hashed, Some(source_mode))
            }))
        }
        Job::PgDump {
            database,
            bin_dir,
            relative,
        } => {
            let target = set_dir.join(&relative);
            ensure_parent(&target)?;
            postgres::dump(bin_dir.as_deref(), &database, &target).await?;
            let hashed = blocking(move || {
                fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).map_err(
                    |error| BackupError::Write {
                        path: target.clone(),
                        source: error,
                    },
                )?;
                copy::hash_file(&target)
            })
            .await?;
            Ok(Some(ManifestItem {
                name: "authnz".to_string(),
                kind: ItemKind::AuthnzPgDump,
                source: database.url().to_string(),
                path: relative,
                size: hashed.size,
                sha256: hashed.sha256,
                mode: None,
                rows: None,
            }))
        }
    }
}

/// A consistent copy of the SQLite database `source` as the new file `target` (mode 0600),
/// hashed. A database up to `sqlite::IMAGE_LIMIT` (with its WAL) is read into memory in one
/// read transaction and hashed as it is written, so its bytes pass through once; a larger one is
/// rebuilt with `VACUUM INTO` in constant memory and hashed after.
async fn copy_sqlite(source: &Path, target: &Path) -> Result<Hashed, BackupError> {
    let size = |path: &Path| {
        fs::metadata(path)
            .map(|metadata| metadata.len())
            .unwrap_or(0)
    };
    let mut wal = source.as_os_str().to_owned();
    wal.push("-wal");
    let target = target.to_path_buf();
    if size(source) + size(Path::new(&wal)) <= sqlite::IMAGE_LIMIT {
        let image = sqlite::image(source).await?;
        return blocking(move || copy::write_new_hashed(&target, &image, 0o600)).await;
    }
    sqlite::vacuum_into(source, &target).await?;
    blocking(move || {
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).map_err(|error| {
            BackupError::Write {
                path: target.clone(),
                source: error,
            }
        })?;
        copy::hash_file(&target)
    })
    .await
}

fn item(
    name: String,
    kind: ItemKind,
    source: &Path,
    relative: String,
    hashed: Hashed,
    mode: Option<u32>,
) -> ManifestItem {
    ManifestItem {
        name,
        kind,
        source: source.display().to_string(),
        path: relative,
        size: hashed.size,
        sha256: hashed.sha256,
        mode,
        rows: None,
    }
}

fn ensure_parent(target: &Path) -> Result<(), BackupError> {
    match target.parent() {
        Some(parent) => copy::create_private_dir_all(parent),
        None => Ok(()),
    }
}

async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, BackupError> + Send + 'static,
) -> Result<R, BackupError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| BackupError::Task { source })?
}

/// Whether `name` is a single ordinary path component (an environment name).
fn is_one_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none()
}

const SIDECAR_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Lists the per-user tree as copy jobs: SQLite databases (by header) get online copies, their
/// `-wal`/`-shm`/`-journal` sidecars are skipped (the online copy includes what they hold), every
/// other regular file is copied as is. Symbolic links and special files are skipped with a
/// warning. Paths in the set mirror the tree under `user_databases/`.
fn list_user_tree(base_dir: &Path) -> Result<Vec<Job>, BackupError> {
    let mut files: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    let mut pending = vec![(base_dir.to_path_buf(), String::new())];
    while let Some((directory, prefix)) = pending.pop() {
        let entries = fs::read_dir(&directory).map_err(|source| BackupError::Read {
            path: directory.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| BackupError::Read {
                path: directory.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| BackupError::NonUtf8Path { path: path.clone() })?;
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().map_err(|source| BackupError::Read {
                path: path.clone(),
                source,
            })?;
            if kind.is_dir() {
                pending.push((path, relative));
            } else if kind.is_file() {
                let is_sqlite = match copy::is_sqlite_file(&path) {
                    Ok(is_sqlite) => is_sqlite,
                    // Deleted since it was listed: nothing to back up.
                    Err(BackupError::Read { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                files.insert(relative, (path, is_sqlite));
            } else {
                tracing::warn!(
                    "skipping {} in the per-user directory: not a regular file or directory",
                    path.display()
                );
            }
        }
    }
    let is_sidecar = |relative: &str| {
        SIDECAR_SUFFIXES.iter().any(|suffix| {
            relative
                .strip_suffix(suffix)
                .and_then(|main| files.get(main))
                .is_some_and(|(_, is_sqlite)| *is_sqlite)
        })
    };
    Ok(files
        .iter()
        .filter(|(relative, _)| !is_sidecar(relative))
        .map(|(relative, (path, is_sqlite))| {
            if *is_sqlite {
                Job::Sqlite {
                    name: relative.clone(),
                    kind: ItemKind::UserDatabase,
                    source: path.clone(),
                    relative: format!("user_databases/{relative}"),
                    may_vanish: true,
                }
            } else {
                Job::File {
                    name: relative.clone(),
                    kind: ItemKind::UserFile,
                    source: path.clone(),
                    relative: format!("user_databases/{relative}"),
                    mode: None,
                    may_vanish: true,
                }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::backups::manifest::{MANIFEST_FILE, read_manifest};
    use crate::providers::backups::testing::{Deployment, rows, wal_database};
    use sqlx::Connection;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    const ALL: [BackupItem; 3] = [
        BackupItem::Authnz,
        BackupItem::UserDatabases,
        BackupItem::Config,
    ];

    fn now() -> Timestamp {
        "2026-11-25T03:00:00Z".parse().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_online_copy_taken_while_a_writer_commits_is_sound_and_holds_a_committed_prefix() {
        copies_under_a_writer_are_sound(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_image_copy_taken_while_a_writer_commits_is_sound_and_holds_a_committed_prefix() {
        copies_under_a_writer_are_sound(true).await;
    }

    /// Copies a live WAL database while a writer commits one row per transaction: `image` picks
    /// the in-memory image copy (what sets use for small databases), otherwise `VACUUM INTO`.
    async fn copies_under_a_writer_are_sound(image: bool) {
        let directory = tempfile::tempdir().unwrap();
        let live = directory.path().join("live.db");
        // ~4 MB to start with, so a copy takes long enough for commits to land during it.
        let connection = wal_database(&live, 2_000, 2_048).await;
        connection.close().await.unwrap();

        let committed = Arc::new(AtomicI64::new(2_000));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (live, committed, stop) = (live.clone(), committed.clone(), stop.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let mut connection = crate::providers::backups::testing::open_wal(&live).await;
                    let mut next = 2_001i64;
                    while !stop.load(Ordering::SeqCst) {
                        // One row per transaction: every commit is a prefix boundary.
                        sqlx::query(
                            "INSERT INTO items (id, label, payload) \
                             VALUES (?1, 'row ' || ?1, randomblob(2048))",
                        )
                        .bind(next)
                        .execute(&mut connection)
                        .await
                        .unwrap();
                        committed.store(next, Ordering::SeqCst);
                        next += 1;
                    }
                    connection.close().await.unwrap();
                })
            })
        };

        // Copy until at least one copy overlapped commits (usually the first), checking each.
        let mut overlapped = 0;
        let mut attempts = 0;
        while overlapped == 0 && attempts < 50 {
            let copy = directory.path().join(format!("copy-{attempts}.db"));
            attempts += 1;
            let before = committed.load(Ordering::SeqCst);
            if image {
                let hashed = copy_sqlite(&live, &copy).await.unwrap();
                assert_eq!(hashed, copy::hash_file(&copy).unwrap());
                // A rollback-journal database, like a VACUUM INTO copy: no WAL needed.
                assert_eq!(&fs::read(&copy).unwrap()[18..20], &[1, 1]);
            } else {
                copy_sqlite_online(&live, &copy).await.unwrap();
            }
            let after = committed.load(Ordering::SeqCst);
            if after > before {
                overlapped += 1;
            }
            assert_eq!(
                sqlite::check_copy(&copy, false).await.0,
                Vec::<String>::new()
            );
            let ids: Vec<i64> = rows(&copy).await.into_iter().map(|row| row.0).collect();
            let count = ids.len() as i64;
            // Rows 1..=k with no gap; k at least what was committed before the copy began, and
            // at most one more than the writer had reported when it ended (a commit is visible
            // to readers a moment before the writer gets to report it).
            assert!(ids.iter().copied().eq(1..=count), "gap in the copy");
            assert!(
                count >= before && count <= after + 1,
                "{before} <= {count} <= {after} + 1"
            );
        }
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(
            overlapped > 0,
            "the writer never committed during {attempts} copies"
        );
    }

    #[tokio::test]
    async fn a_set_holds_every_included_item_with_the_tree_kept_and_no_sidecars() {
        let directory = tempfile::tempdir().unwrap();
        let deployment = Deployment::new(&directory.path().join("app")).await;
        let destination = directory.path().join("backups");
        let manifest = create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            now(),
        )
        .await
        .unwrap();
        let set_dir = destination.join("prod/2026-11-25T030000Z");

        let listed: Vec<(&str, ItemKind, &str)> = manifest
            .items
            .iter()
            .map(|item| (item.name.as_str(), item.kind, item.path.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("authnz", ItemKind::AuthnzSqlite, "authnz/users.db"),
                (
                    "1/ChaChaNotes.db",
                    ItemKind::UserDatabase,
                    "user_databases/1/ChaChaNotes.db"
                ),
                (
                    "1/Media_DB_v2.db",
                    ItemKind::UserDatabase,
                    "user_databases/1/Media_DB_v2.db"
                ),
                (
                    "1/prompts_user_dbs/user_prompts_v2.sqlite",
                    ItemKind::UserDatabase,
                    "user_databases/1/prompts_user_dbs/user_prompts_v2.sqlite"
                ),
                (
                    "1/rag_personalization.json",
                    ItemKind::UserFile,
                    "user_databases/1/rag_personalization.json"
                ),
                (
                    "2/ChaChaNotes.db",
                    ItemKind::UserDatabase,
                    "user_databases/2/ChaChaNotes.db"
                ),
                (
                    "2/Media_DB_v2.db",
                    ItemKind::UserDatabase,
                    "user_databases/2/Media_DB_v2.db"
                ),
                (
                    "2/notes-journal",
                    ItemKind::UserFile,
                    "user_databases/2/notes-journal"
                ),
                ("env_file", ItemKind::Config, "config/.env"),
                ("config_file", ItemKind::Config, "config/config.txt"),
            ]
        );
        // The sources really had sidecars (the server is "running"), the set has none.
        assert!(
            deployment
                .root
                .join("Databases/user_databases/1/Media_DB_v2.db-wal")
                .exists()
        );
        let mut names = Vec::new();
        let mut pending = vec![set_dir.clone()];
        while let Some(directory) = pending.pop() {
            for entry in fs::read_dir(directory).unwrap().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                } else {
                    names.push(entry.file_name().into_string().unwrap());
                }
            }
        }
        assert!(
            !names
                .iter()
                .any(|name| name.ends_with("-wal") || name.ends_with("-shm")),
            "{names:?}"
        );
        assert_eq!(names.len(), manifest.items.len() + 1, "{names:?}");

        // Copies hold what was committed, including what still sat in the source's WAL.
        assert_eq!(
            rows(&set_dir.join("user_databases/1/Media_DB_v2.db")).await,
            rows(
                &deployment
                    .root
                    .join("Databases/user_databases/1/Media_DB_v2.db")
            )
            .await
        );
        // Secrets and data are private in the set; the source mode is recorded for restore.
        assert_eq!(mode(&set_dir), 0o700);
        assert_eq!(mode(&set_dir.join("config/.env")), 0o600);
        assert_eq!(manifest.items[8].mode, Some(0o640));
        assert_eq!(
            fs::read(set_dir.join("config/.env")).unwrap(),
            fs::read(deployment.root.join(".env")).unwrap()
        );
        assert_eq!(mode(&set_dir.join(MANIFEST_FILE)), 0o600);
        assert_eq!(read_manifest(&set_dir).unwrap(), manifest);
        assert_eq!(manifest.created_at, now());
        assert_eq!(manifest.include, ALL);
        assert_eq!(manifest.tool_version, env!("CARGO_PKG_VERSION"));
    }

    #[tokio::test]
    async fn only_the_included_items_are_backed_up() {
        let directory = tempfile::tempdir().unwrap();
        let deployment = Deployment::new(&directory.path().join("app")).await;
        let manifest = create_set(
            &directory.path().join("backups"),
            &deployment.source,
            &[BackupItem::Config],
            "2026-11-25T030000Z",
            now(),
        )
        .await
        .unwrap();
        assert!(
            manifest
                .items
                .iter()
                .all(|item| item.kind == ItemKind::Config)
        );
        assert_eq!(manifest.items.len(), 2);
    }

    #[tokio::test]
    async fn an_existing_set_is_never_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        let deployment = Deployment::new(&directory.path().join("app")).await;
        let destination = directory.path().join("backups");
        let first = create_set(
            &destination,
            &deployment.source,
            &[BackupItem::Config],
            "2026-11-25T030000Z",
            now(),
        )
        .await
        .unwrap();
        let second = create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            now(),
        )
        .await;
        assert!(
            matches!(second, Err(BackupError::SetExists { .. })),
            "{second:?}"
        );
        assert_eq!(
            read_manifest(&destination.join("prod/2026-11-25T030000Z")).unwrap(),
            first
        );
    }

    #[tokio::test]
    async fn an_included_item_without_a_source_fails_before_anything_is_created() {
        let directory = tempfile::tempdir().unwrap();
        let mut deployment = Deployment::new(&directory.path().join("app")).await;
        deployment.source.user_db_base_dir = None;
        let destination = directory.path().join("backups");
        let error = create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            now(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                error,
                BackupError::MissingSource {
                    item: "user_databases"
                }
            ),
            "{error}"
        );
        assert!(!destination.exists());
    }

    #[tokio::test]
    async fn a_failed_copy_leaves_no_partial_set_behind() {
        let directory = tempfile::tempdir().unwrap();
        let mut deployment = Deployment::new(&directory.path().join("app")).await;
        deployment.source.config_file = Some(directory.path().join("missing/config.txt"));
        let destination = directory.path().join("backups");
        let error = create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            now(),
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("missing/config.txt"), "{error}");
        assert!(destination.join("prod").exists());
        assert!(!destination.join("prod/2026-11-25T030000Z").exists());
    }

    #[tokio::test]
    async fn set_ids_and_environments_that_could_escape_the_destination_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let mut deployment = Deployment::new(&directory.path().join("app")).await;
        let destination = directory.path().join("backups");
        let bad_id = create_set(&destination, &deployment.source, &ALL, "../../etc", now()).await;
        assert!(
            matches!(bad_id, Err(BackupError::NotASet { .. })),
            "{bad_id:?}"
        );
        deployment.source.environment = "../prod".to_string();
        let bad_environment = create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            now(),
        )
        .await;
        assert!(matches!(bad_environment, Err(BackupError::NotASet { .. })));
        assert!(!destination.exists());
    }

    #[test]
    fn a_destination_other_users_can_read_is_warned_about() {
        let directory = tempfile::tempdir().unwrap();
        fs::set_permissions(directory.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let warnings = destination_warnings(directory.path());
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("readable by other users (mode 0755)"),
            "{warnings:?}"
        );
        fs::set_permissions(directory.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(destination_warnings(directory.path()).is_empty());
    }

    #[test]
    fn the_debug_form_of_a_postgres_source_hides_the_password() {
        let source = AuthnzSource::Postgres {
            url: "postgres://tldw:inline-pw@db/authnz".to_string(),
            password: Some("hunter2".to_string()),
        };
        let shown = format!("{source:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("inline-pw"),
            "{shown}"
        );
        assert!(shown.contains("postgres://tldw@db/authnz"), "{shown}");
    }
}
