//! Verifying a backup set: every item against its manifest (present, same size, same sha256),
//! `PRAGMA integrity_check` on every SQLite copy (read-only, immutable), and `pg_restore --list`
//! plus a full `pg_restore --file=/dev/null` read of a PostgreSQL dump (`--list` alone only reads
//! the table of contents at the start, so it passes a dump cut short after it). The result is recorded in the manifest (rewritten atomically), which is
//! how listing, `due` and `prune` learn that a set is good or must not count.
//!
//! A problem with the set (missing, changed or corrupt item) is a failed verification. Being
//! unable to verify at all (no `pg_restore`, a permission error) is an error and records nothing:
//! a missing tool must never make good sets look broken, since broken sets get pruned.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use super::copy;
use super::manifest::{
    ItemKind, ManifestItem, Verification, VerificationProblem, read_manifest, write_manifest,
};
use super::{BackupError, DEFAULT_CONCURRENCY, postgres, run_bounded, sqlite};

/// Tuning and tools for [`verify_set_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Items checked at once (at least 1).
    pub concurrency: usize,
    /// Directory holding `pg_restore`; `None` finds it on `PATH`.
    pub pg_bin_dir: Option<PathBuf>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            concurrency: DEFAULT_CONCURRENCY,
            pg_bin_dir: None,
        }
    }
}

/// Verifies the set at `path` now, records the result in its manifest and returns it.
pub async fn verify_set(path: &Path) -> Result<Verification, BackupError> {
    verify_set_with(path, Timestamp::now(), &VerifyOptions::default()).await
}

/// [`verify_set`] with the clock and the tools given.
pub async fn verify_set_with(
    path: &Path,
    now: Timestamp,
    options: &VerifyOptions,
) -> Result<Verification, BackupError> {
    let mut manifest = read_manifest(path)?;
    let set_dir = Arc::new(path.to_path_buf());
    let bin_dir = Arc::new(options.pg_bin_dir.clone());
    let items_checked = manifest.items.len();
    let per_item = run_bounded(manifest.items.clone(), options.concurrency, move |item| {
        let set_dir = set_dir.clone();
        let bin_dir = bin_dir.clone();
        async move { check_item(&set_dir, item, bin_dir.as_deref()).await }
    })
    .await?;
    let mut problems = Vec::new();
    for (item, (found, rows)) in manifest.items.iter_mut().zip(per_item) {
        problems.extend(found);
        item.rows = rows;
    }
    let verification = Verification {
        ok: problems.is_empty(),
        verified_at: now,
        items_checked,
        problems,
    };
    manifest.verification = Some(verification.clone());
    write_manifest(path, &manifest)?;
    if !verification.ok {
        tracing::warn!(
            "backup set {} failed verification: {} problem(s)",
            path.display(),
            verification.problems.len()
        );
    }
    Ok(verification)
}

/// The problems of one item, and the rows per table of a sound SQLite copy.
type Checked = (Vec<VerificationProblem>, Option<BTreeMap<String, u64>>);

async fn check_item(
    set_dir: &Path,
    item: ManifestItem,
    bin_dir: Option<&Path>,
) -> Result<Checked, BackupError> {
    let file = set_dir.join(&item.path);
    let problem = |text: String| VerificationProblem {
        item: item.name.clone(),
        problem: text,
    };
    let hash_path = file.clone();
    let hashed = tokio::task::spawn_blocking(move || copy::hash_file(&hash_path))
        .await
        .map_err(|source| BackupError::Task { source })?;
    let hashed = match hashed {
        Ok(hashed) => hashed,
        Err(BackupError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok((vec![problem(format!("{} is missing", item.path))], None));
        }
        Err(error) => return Err(error),
    };
    let mut problems = Vec::new();
    if hashed.size != item.size {
        problems.push(problem(format!(
            "size is {} bytes, the manifest says {}",
            hashed.size, item.size
        )));
    }
    if hashed.sha256 != item.sha256 {
        problems.push(problem(format!(
            "sha256 is {}, the manifest says {}",
            hashed.sha256, item.sha256
        )));
    }
    let mut rows = None;
    if item.kind.is_sqlite() {
        let (found, counted) = sqlite::check_copy(&file, problems.is_empty()).await;
        problems.extend(found.into_iter().map(problem));
        rows = counted;
    }
    if item.kind == ItemKind::AuthnzPgDump {
        match postgres::check_dump(bin_dir, &file).await {
            Ok(()) => {}
            Err(error @ BackupError::Tool { .. }) => problems.push(problem(error.to_string())),
            Err(error) => return Err(error),
        }
    }
    Ok((problems, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::backup_policy::prune;
    use crate::providers::backups::create::create_set;
    use crate::providers::backups::manifest::{Manifest, list_sets};
    use crate::providers::backups::testing::{Deployment, flip_bytes};
    use crate::spec::types::{BackupItem, Keep};
    use std::fs;

    const ALL: [BackupItem; 3] = [
        BackupItem::Authnz,
        BackupItem::UserDatabases,
        BackupItem::Config,
    ];

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// A deployment and one set of it, made at 03:00.
    async fn one_set(root: &Path) -> (Deployment, PathBuf, Manifest) {
        let deployment = Deployment::new(&root.join("app")).await;
        let destination = root.join("backups");
        let manifest = create_set(
            &destination,
            &deployment.source,
            &ALL,
            "2026-11-25T030000Z",
            at("2026-11-25T03:00:00Z"),
        )
        .await
        .unwrap();
        (
            deployment,
            destination.join("prod/2026-11-25T030000Z"),
            manifest,
        )
    }

    fn options() -> VerifyOptions {
        VerifyOptions::default()
    }

    #[tokio::test]
    async fn a_fresh_set_verifies_and_the_result_is_recorded_in_its_manifest() {
        let directory = tempfile::tempdir().unwrap();
        let (_deployment, set_dir, manifest) = one_set(directory.path()).await;
        let verified_at = at("2026-11-25T03:05:00Z");
        let verification = verify_set_with(&set_dir, verified_at, &options())
            .await
            .unwrap();
        assert!(verification.ok, "{:?}", verification.problems);
        assert_eq!(verification.items_checked, manifest.items.len());
        assert_eq!(verification.verified_at, verified_at);
        assert_eq!(
            read_manifest(&set_dir).unwrap().verification,
            Some(verification)
        );
        let listed = list_sets(&directory.path().join("backups"), "prod").unwrap();
        assert_eq!(listed[0].0.verified, Some(true));
    }

    #[tokio::test]
    async fn flipped_bytes_in_a_config_copy_or_a_database_copy_fail_verification() {
        let directory = tempfile::tempdir().unwrap();
        let (_deployment, set_dir, _) = one_set(directory.path()).await;
        flip_bytes(&set_dir.join("config/config.txt"), 2);
        // Deep inside the database, past the header: only the checksum can tell.
        flip_bytes(&set_dir.join("user_databases/1/Media_DB_v2.db"), 20_000);
        let verification = verify_set_with(&set_dir, at("2026-11-25T03:05:00Z"), &options())
            .await
            .unwrap();
        assert!(!verification.ok);
        let failed: Vec<&str> = verification
            .problems
            .iter()
            .filter(|problem| problem.problem.starts_with("sha256 is"))
            .map(|problem| problem.item.as_str())
            .collect();
        assert_eq!(failed, ["1/Media_DB_v2.db", "config_file"]);
        let listed = list_sets(&directory.path().join("backups"), "prod").unwrap();
        assert_eq!(listed[0].0.verified, Some(false));
    }

    #[tokio::test]
    async fn a_truncated_sqlite_copy_fails_the_integrity_check_even_with_a_matching_checksum() {
        let directory = tempfile::tempdir().unwrap();
        let (_deployment, set_dir, mut manifest) = one_set(directory.path()).await;
        let copy = set_dir.join("user_databases/1/Media_DB_v2.db");
        let bytes = fs::read(&copy).unwrap();
        fs::write(&copy, &bytes[..bytes.len() / 2]).unwrap();
        // Make the manifest agree with the damage, so only SQLite itself can notice.
        let hashed = copy::hash_file(&copy).unwrap();
        let item = manifest
            .items
            .iter_mut()
            .find(|item| item.name == "1/Media_DB_v2.db")
            .unwrap();
        item.size = hashed.size;
        item.sha256 = hashed.sha256;
        write_manifest(&set_dir, &manifest).unwrap();

        let verification = verify_set_with(&set_dir, at("2026-11-25T03:05:00Z"), &options())
            .await
            .unwrap();
        assert!(!verification.ok);
        assert!(
            verification
                .problems
                .iter()
                .all(|problem| problem.item == "1/Media_DB_v2.db"),
            "{:?}",
            verification.problems
        );
        assert!(
            verification.problems.iter().any(|problem| {
                problem.problem.starts_with("integrity_check")
                    || problem
                        .problem
                        .starts_with("not a readable SQLite database")
            }),
            "{:?}",
            verification.problems
        );
    }

    #[tokio::test]
    async fn a_missing_item_fails_verification_and_the_failed_set_is_released_by_prune() {
        let directory = tempfile::tempdir().unwrap();
        let (_deployment, set_dir, _) = one_set(directory.path()).await;
        fs::remove_file(set_dir.join("authnz/users.db")).unwrap();
        let verification = verify_set_with(&set_dir, at("2026-11-25T03:05:00Z"), &options())
            .await
            .unwrap();
        assert_eq!(verification.problems.len(), 1);
        assert_eq!(verification.problems[0].item, "authnz");
        assert_eq!(
            verification.problems[0].problem,
            "authnz/users.db is missing"
        );

        let sets: Vec<_> = list_sets(&directory.path().join("backups"), "prod")
            .unwrap()
            .into_iter()
            .map(|(set, _)| set)
            .collect();
        let keep = Keep {
            last: None,
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
        };
        let decisions = prune(&sets, &keep, at("2026-11-25T04:00:00Z"));
        assert_eq!(
            decisions[0].release.as_deref(),
            Some("failed verification, so it does not count as a backup")
        );
    }

    #[tokio::test]
    async fn an_incomplete_set_cannot_be_verified() {
        let directory = tempfile::tempdir().unwrap();
        let set_dir = directory.path().join("prod/2026-11-25T030000Z");
        fs::create_dir_all(&set_dir).unwrap();
        let error = verify_set_with(&set_dir, at("2026-11-25T03:05:00Z"), &options())
            .await
            .unwrap_err();
        assert!(matches!(error, BackupError::Incomplete { .. }), "{error}");
    }
}
