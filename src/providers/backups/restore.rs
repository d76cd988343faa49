//! Restoring a backup set (the library part; stopping and starting the server is the caller's).
//!
//! Flow: read the manifest (an incomplete set or one that failed verification is refused), pick
//! the items (`only` one of authnz, user_databases, config), resolve each to its target, then
//! stage every file next to its target (same directory, so the final rename is atomic) while
//! checking its sha256 against the manifest. Any mismatch or error removes the staged files and
//! leaves every target untouched. Then a PostgreSQL dump is restored in one transaction
//! (`pg_restore -c --if-exists`), and finally each staged file is renamed over its target: for a
//! SQLite database the target's stale `-wal`, `-shm` and `-journal` go first, since SQLite would
//! otherwise replay an old WAL into the restored file.
//!
//! Config files come back byte-identical with their recorded mode; every file keeps the owner of
//! the file it replaces. Files under the per-user directory that the set does not hold are left
//! alone. Running a restore twice gives the same result.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::copy;
use super::create::AuthnzSource;
use super::manifest::{ItemKind, ManifestItem, is_safe_relative, read_manifest};
use super::postgres::{self, PgDatabase};
use super::{BackupError, DEFAULT_CONCURRENCY, run_bounded};
use crate::spec::types::BackupItem;

/// Where each part of a set goes back to.
#[derive(Debug, Clone, Default)]
pub struct RestoreTargets {
    pub authnz: Option<AuthnzSource>,
    pub user_db_base_dir: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    /// Directory holding `pg_restore`; `None` finds it on `PATH`.
    pub pg_bin_dir: Option<PathBuf>,
}

/// What a restore put back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RestoreReport {
    pub set_id: String,
    pub restored: Vec<RestoredItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredItem {
    pub name: String,
    pub kind: ItemKind,
    /// A path, or a PostgreSQL URL without password.
    pub target: String,
}

/// Restores the set at `path` into `targets`; all items, or those of `only`.
pub async fn restore_set(
    path: &Path,
    targets: &RestoreTargets,
    only: Option<BackupItem>,
) -> Result<RestoreReport, BackupError> {
    let manifest = read_manifest(path)?;
    if manifest
        .verification
        .as_ref()
        .is_some_and(|verification| !verification.ok)
    {
        return Err(BackupError::FailedVerification {
            path: path.to_path_buf(),
        });
    }
    let selected: Vec<&ManifestItem> = manifest
        .items
        .iter()
        .filter(|item| only.is_none_or(|only| item.kind.include_item() == only))
        .collect();

    let mut files = Vec::new();
    let mut dump = None;
    for item in selected {
        match resolve(item, targets)? {
            Target::File(target) => files.push(Staging::new(path, item, target)),
            Target::Postgres(database) => dump = Some((item, database)),
        }
    }

    let staged = run_bounded(files, DEFAULT_CONCURRENCY, |staging| async move {
        tokio::task::spawn_blocking(move || staging.stage().map(|()| staging))
            .await
            .map_err(|source| BackupError::Task { source })?
    })
    .await;
    let staged = match staged {
        Ok(staged) => staged,
        Err(error) => {
            remove_staging_files(&manifest.items, targets);
            return Err(error);
        }
    };

    let mut restored = Vec::new();
    if let Some((item, database)) = dump {
        let result = restore_dump(path, item, &database, targets.pg_bin_dir.as_deref()).await;
        if let Err(error) = result {
            for staging in &staged {
                let _ = fs::remove_file(&staging.staging);
            }
            return Err(error);
        }
        restored.push(RestoredItem {
            name: item.name.clone(),
            kind: item.kind,
            target: database.url().to_string(),
        });
    }
    for staging in staged {
        staging.commit()?;
        restored.push(RestoredItem {
            name: staging.name,
            kind: staging.kind,
            target: staging.target.display().to_string(),
        });
    }
    Ok(RestoreReport {
        set_id: manifest.set_id,
        restored,
    })
}

enum Target {
    File(PathBuf),
    Postgres(PgDatabase),
}

fn resolve(item: &ManifestItem, targets: &RestoreTargets) -> Result<Target, BackupError> {
    let missing = || BackupError::MissingTarget {
        item: item.name.clone(),
    };
    let mismatch = |found, expected| BackupError::TargetMismatch {
        item: item.name.clone(),
        found,
        expected,
    };
    match item.kind {
        ItemKind::Config => {
            let target = match item.name.as_str() {
                "env_file" => targets.env_file.clone(),
                "config_file" => targets.config_file.clone(),
                _ => None,
            };
            target.map(Target::File).ok_or_else(missing)
        }
        ItemKind::UserDatabase | ItemKind::UserFile => {
            let base = targets.user_db_base_dir.as_ref().ok_or_else(missing)?;
            if !is_safe_relative(&item.name) {
                return Err(BackupError::UnsafeItemPath {
                    path: base.clone(),
                    item_path: item.name.clone(),
                });
            }
            Ok(Target::File(base.join(&item.name)))
        }
        ItemKind::AuthnzSqlite => match &targets.authnz {
            Some(AuthnzSource::Sqlite(path)) => Ok(Target::File(path.clone())),
            Some(AuthnzSource::Postgres { .. }) => Err(mismatch("a SQLite database", "PostgreSQL")),
            None => Err(missing()),
        },
        ItemKind::AuthnzPgDump => match &targets.authnz {
            Some(AuthnzSource::Postgres { url, password }) => {
                Ok(Target::Postgres(PgDatabase::new(url, password.as_deref())?))
            }
            Some(AuthnzSource::Sqlite(_)) => Err(mismatch("a PostgreSQL dump", "SQLite")),
            None => Err(missing()),
        },
    }
}

async fn restore_dump(
    set_dir: &Path,
    item: &ManifestItem,
    database: &PgDatabase,
    bin_dir: Option<&Path>,
) -> Result<(), BackupError> {
    let dump = set_dir.join(&item.path);
    let hash_path = dump.clone();
    let hashed = tokio::task::spawn_blocking(move || copy::hash_file(&hash_path))
        .await
        .map_err(|source| BackupError::Task { source })??;
    if hashed.sha256 != item.sha256 {
        return Err(BackupError::ItemMismatch {
            item: item.name.clone(),
            path: set_dir.to_path_buf(),
            problem: "its sha256 differs".to_string(),
        });
    }
    postgres::restore(bin_dir, database, &dump).await
}

/// One file on its way back: copied to `staging` beside `target`, then renamed over it.
struct Staging {
    name: String,
    kind: ItemKind,
    set_dir: PathBuf,
    source: PathBuf,
    target: PathBuf,
    staging: PathBuf,
    sha256: String,
    mode: u32,
}

impl Staging {
    fn new(set_dir: &Path, item: &ManifestItem, target: PathBuf) -> Staging {
        Staging {
            name: item.name.clone(),
            kind: item.kind,
            set_dir: set_dir.to_path_buf(),
            source: set_dir.join(&item.path),
            staging: staging_path(&target),
            target,
            sha256: item.sha256.clone(),
            mode: item.mode.unwrap_or(0o600),
        }
    }

    /// Copies the item next to its target, checking it against the manifest on the way.
    fn stage(&self) -> Result<(), BackupError> {
        if let Some(parent) = self.target.parent() {
            DirBuilder::new()
                .recursive(true)
                .create(parent)
                .map_err(|source| BackupError::CreateDirectory {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let owner = fs::metadata(&self.target)
            .ok()
            .map(|metadata| (metadata.uid(), metadata.gid()));
        let hashed = copy::copy_replacing_hashed(&self.source, &self.staging, self.mode, owner)?;
        if hashed.sha256 != self.sha256 {
            let _ = fs::remove_file(&self.staging);
            return Err(BackupError::ItemMismatch {
                item: self.name.clone(),
                path: self.set_dir.clone(),
                problem: "its sha256 differs".to_string(),
            });
        }
        Ok(())
    }

    /// Puts the staged file in place. Idempotent up to the rename; a crash before it leaves the
    /// old target (perhaps without its stale sidecars) and a staging file the next run replaces.
    fn commit(&self) -> Result<(), BackupError> {
        let write_error = |source: io::Error| BackupError::Write {
            path: self.target.clone(),
            source,
        };
        if self.kind.is_sqlite() {
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut sidecar = self.target.clone().into_os_string();
                sidecar.push(suffix);
                match fs::remove_file(&sidecar) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(write_error(error)),
                }
            }
        }
        fs::rename(&self.staging, &self.target).map_err(write_error)?;
        if let Some(parent) = self.target.parent() {
            copy::sync_directory(parent).map_err(write_error)?;
        }
        Ok(())
    }
}

fn staging_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tldw-ops-restore.tmp"))
}

/// Removes every staging file a failed restore may have left (best effort).
fn remove_staging_files(items: &[ManifestItem], targets: &RestoreTargets) {
    for item in items {
        if let Ok(Target::File(target)) = resolve(item, targets) {
            let _ = fs::remove_file(staging_path(&target));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::backups::create::create_set;
    use crate::providers::backups::testing::{Deployment, flip_bytes, open_wal, rows};
    use crate::providers::backups::verify::{VerifyOptions, verify_set_with};
    use jiff::Timestamp;
    use sqlx::Connection;
    use std::os::unix::fs::PermissionsExt;

    const ALL: [BackupItem; 3] = [
        BackupItem::Authnz,
        BackupItem::UserDatabases,
        BackupItem::Config,
    ];

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn targets(deployment: &Deployment) -> RestoreTargets {
        RestoreTargets {
            authnz: deployment.source.authnz.clone(),
            user_db_base_dir: deployment.source.user_db_base_dir.clone(),
            env_file: deployment.source.env_file.clone(),
            config_file: deployment.source.config_file.clone(),
            pg_bin_dir: None,
        }
    }

    struct Snapshot {
        env: Vec<u8>,
        config: Vec<u8>,
        users: Vec<(i64, String, String)>,
        media: Vec<(i64, String, String)>,
        prompts: Vec<(i64, String, String)>,
    }

    async fn snapshot(deployment: &Deployment) -> Snapshot {
        let base = deployment.source.user_db_base_dir.clone().unwrap();
        Snapshot {
            env: fs::read(deployment.source.env_file.as_ref().unwrap()).unwrap(),
            config: fs::read(deployment.source.config_file.as_ref().unwrap()).unwrap(),
            users: rows(&deployment.root.join("Databases/users.db")).await,
            media: rows(&base.join("1/Media_DB_v2.db")).await,
            prompts: {
                let prompts = base.join("1/prompts_user_dbs/user_prompts_v2.sqlite");
                if prompts.exists() {
                    rows(&prompts).await
                } else {
                    Vec::new()
                }
            },
        }
    }

    /// A deployment, a verified set of it, and what it looked like when the set was made.
    async fn backed_up(root: &Path) -> (Deployment, PathBuf, Snapshot) {
        let deployment = Deployment::new(&root.join("app")).await;
        let destination = root.join("backups");
        create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            at("2026-11-25T03:00:00Z"),
        )
        .await
        .unwrap();
        let set_dir = destination.join("prod/2026-11-25T030000Z");
        let verification = verify_set_with(
            &set_dir,
            at("2026-11-25T03:01:00Z"),
            &VerifyOptions::default(),
        )
        .await
        .unwrap();
        assert!(verification.ok, "{:?}", verification.problems);
        let before = snapshot(&deployment).await;
        (deployment, set_dir, before)
    }

    /// Changes everything after the backup: config edited, rows added and deleted, a database
    /// removed, and a stale WAL left beside the AuthNZ database.
    async fn damage(deployment: &mut Deployment) {
        let base = deployment.source.user_db_base_dir.clone().unwrap();
        let env_file = deployment.source.env_file.clone().unwrap();
        fs::write(&env_file, b"JWT_SECRET_KEY=changed\n").unwrap();
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(
            deployment.source.config_file.as_ref().unwrap(),
            b"[Server]\n",
        )
        .unwrap();
        for connection in &mut deployment.connections {
            sqlx::query("DELETE FROM items WHERE id % 3 = 0")
                .execute(&mut *connection)
                .await
                .unwrap();
            sqlx::query("INSERT INTO items (label, payload) VALUES ('after', x'00')")
                .execute(&mut *connection)
                .await
                .unwrap();
        }
        deployment.stop().await;
        fs::remove_file(base.join("1/prompts_user_dbs/user_prompts_v2.sqlite")).unwrap();

        // A WAL from another database where SQLite would look for users.db's: if restore left
        // it, SQLite would replay it into the restored file.
        let other = deployment.root.join("other.db");
        let mut connection = open_wal(&other).await;
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, payload BLOB)")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("INSERT INTO items VALUES (1, 'stale', x'ff')")
            .execute(&mut connection)
            .await
            .unwrap();
        fs::copy(
            deployment.root.join("other.db-wal"),
            deployment.root.join("Databases/users.db-wal"),
        )
        .unwrap();
        connection.close().await.unwrap();
    }

    #[tokio::test]
    async fn restore_brings_back_byte_identical_config_files_and_databases_with_identical_rows() {
        let directory = tempfile::tempdir().unwrap();
        let (mut deployment, set_dir, before) = backed_up(directory.path()).await;
        damage(&mut deployment).await;

        let report = restore_set(&set_dir, &targets(&deployment), None)
            .await
            .unwrap();
        assert_eq!(report.set_id, "2026-11-25T030000Z");
        assert_eq!(report.restored.len(), 10);

        let after = snapshot(&deployment).await;
        assert_eq!(after.env, before.env);
        assert_eq!(after.config, before.config);
        assert_eq!(after.users, before.users);
        assert_eq!(after.media, before.media);
        assert_eq!(after.prompts, before.prompts);
        let env_file = deployment.source.env_file.as_ref().unwrap();
        assert_eq!(
            fs::metadata(env_file).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert!(!deployment.root.join("Databases/users.db-wal").exists());
        // No staging file is left anywhere.
        let leftovers: Vec<_> = fs::read_dir(deployment.root.join("Databases"))
            .unwrap()
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .contains("tldw-ops-restore")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // Restoring again gives the same result.
        let again = restore_set(&set_dir, &targets(&deployment), None)
            .await
            .unwrap();
        assert_eq!(again, report);
        assert_eq!(snapshot(&deployment).await.media, before.media);
    }

    #[tokio::test]
    async fn restoring_only_the_config_leaves_the_databases_alone() {
        let directory = tempfile::tempdir().unwrap();
        let (mut deployment, set_dir, before) = backed_up(directory.path()).await;
        damage(&mut deployment).await;
        let changed_media = rows(
            &deployment
                .source
                .user_db_base_dir
                .as_ref()
                .unwrap()
                .join("1/Media_DB_v2.db"),
        )
        .await;

        // Only the config targets are needed for a config-only restore.
        let config_targets = RestoreTargets {
            env_file: deployment.source.env_file.clone(),
            config_file: deployment.source.config_file.clone(),
            ..RestoreTargets::default()
        };
        let report = restore_set(&set_dir, &config_targets, Some(BackupItem::Config))
            .await
            .unwrap();
        assert!(
            report
                .restored
                .iter()
                .all(|item| item.kind == ItemKind::Config)
        );
        let after = snapshot(&deployment).await;
        assert_eq!(after.env, before.env);
        assert_eq!(after.media, changed_media);
        assert_ne!(after.media, before.media);
    }

    #[tokio::test]
    async fn a_corrupted_item_is_not_restored_and_no_target_is_touched() {
        let directory = tempfile::tempdir().unwrap();
        let (mut deployment, set_dir, _) = backed_up(directory.path()).await;
        damage(&mut deployment).await;
        let damaged = snapshot(&deployment).await;
        flip_bytes(&set_dir.join("user_databases/1/Media_DB_v2.db"), 30_000);

        let error = restore_set(&set_dir, &targets(&deployment), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, BackupError::ItemMismatch { item, .. } if item == "1/Media_DB_v2.db"),
            "{error}"
        );
        let after = snapshot(&deployment).await;
        assert_eq!(after.env, damaged.env);
        assert_eq!(after.media, damaged.media);
        assert_eq!(after.users, damaged.users);
        let leftovers: Vec<_> = fs::read_dir(deployment.root.join("Databases/user_databases/1"))
            .unwrap()
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .contains("tldw-ops-restore")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn a_set_that_failed_verification_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let (deployment, set_dir, _) = backed_up(directory.path()).await;
        flip_bytes(&set_dir.join("config/.env"), 0);
        let verification = verify_set_with(
            &set_dir,
            at("2026-11-25T04:00:00Z"),
            &VerifyOptions::default(),
        )
        .await
        .unwrap();
        assert!(!verification.ok);
        let error = restore_set(&set_dir, &targets(&deployment), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackupError::FailedVerification { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_sqlite_set_cannot_be_restored_into_postgres_or_without_a_target() {
        let directory = tempfile::tempdir().unwrap();
        let (deployment, set_dir, _) = backed_up(directory.path()).await;
        let mut wrong = targets(&deployment);
        wrong.authnz = Some(AuthnzSource::Postgres {
            url: "postgres://tldw@db/authnz".to_string(),
            password: None,
        });
        let error = restore_set(&set_dir, &wrong, Some(BackupItem::Authnz))
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackupError::TargetMismatch { .. }),
            "{error}"
        );
        let error = restore_set(&set_dir, &RestoreTargets::default(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackupError::MissingTarget { .. }),
            "{error}"
        );
    }
}
