//! The backups kind (`backup.set.*`): the `create_backup`, `prune_backups` and `restore_backup`
//! steps (the `stop_service` and `start_service` steps of a restore are `kinds::service`'s). Each is journaled like a
//! file step (`started` before it acts, `done` or `failed` after) and is idempotent, so a
//! resumed apply simply runs an interrupted one again.
//!
//! Contracts, step by step:
//! - `ensure_backup_created`: claims the set id by creating its (empty) directory, so that a
//!   crash from then on leaves an incomplete set that resume and rollback recognise; then makes
//!   the set and, with `verify: true`, verifies it. A verification failure fails the step (the
//!   apply rolls back; the failed set stays, is reported by the next plan and pruned). Run again
//!   after a crash, a complete set is kept (and verified if it was not yet) and an incomplete one
//!   is removed and made again. Undo keeps a complete set: it is a safety copy of the data, and
//!   deleting a backup is never a way to go back; an incomplete one is removed.
//! - `ensure_backups_pruned`: deletes every released set that is still there. It runs after the
//!   health gates, so a failure to delete is reported and never rolls the apply back: the sets
//!   are still there and the next plan proposes them again. Deleted sets cannot be undone.
//! - `ensure_service_stopped`: runs `target.service.stop`, then waits until the health URLs no
//!   longer answer. Undo starts the server.
//! - `ensure_backup_restored`: verifies the set if it never was, and restores it (all or
//!   `only` one part; the library stages everything before it changes anything). Undo restores
//!   the safety set the same plan took first, and only while the server does not answer.
//! - `ensure_service_started`: runs `target.service.start`. Undo stops the server.

pub mod kind;

use std::collections::BTreeMap;
use std::path::Path;

use super::service::server_answers;
use super::{Effects, Provider, StepContext, StepError, StepFuture, UndoContext, Undoes, Undone};
use crate::backups::BackupTarget;
use crate::deployment::Deployment;
use crate::faults::Point;
use crate::plan::{Operation, Step};
use crate::providers::backups::{
    self, BackupError, VerifyOptions, create_set, delete_set, read_manifest, restore_set,
    verify_set_with,
};
use crate::secrets::sha256_hex;
use crate::spec::types::BackupItem;
use crate::state::{StepRecord, StepStatus};

/// Whether an apply of this kind records what the environment manages. A backup-only apply
/// (`apply --only backup`) changes no managed value, and a restore puts back values tldw-ops
/// did not apply: neither may replace the record of what the last apply set, or a value
/// dropped from the YAML would be forgotten instead of removed.
pub fn records_managed_state(kind: &str) -> bool {
    !matches!(kind, "backup" | "restore" | "drill")
}

fn target_of(deployment: &Deployment) -> Result<&BackupTarget, String> {
    deployment
        .backup
        .as_ref()
        .ok_or_else(|| "the desired state has no `backup:` policy".to_string())
}

/// sha256 of a set's manifest as it is on disk: the step's after-hash.
fn manifest_hash(set_dir: &Path) -> Result<String, String> {
    std::fs::read(set_dir.join(backups::MANIFEST_FILE))
        .map(|bytes| sha256_hex(&bytes))
        .map_err(|error| format!("cannot read the manifest of {}: {error}", set_dir.display()))
}

/// See the module documentation.
async fn ensure_backup_created(cx: &StepContext<'_>, step: &Step) -> Result<StepRecord, StepError> {
    let target = target_of(cx.deployment)?;
    let Some(Operation::CreateBackup { set_id }) = step.operations.first() else {
        return Err(StepError::from(
            "create_backup step without a set id".to_string(),
        ));
    };
    let set_dir = target.set_dir(set_id);
    // A row for this step already: this is a resumed apply, and the set may be its own.
    let again = cx
        .journal
        .rows()
        .await?
        .iter()
        .any(|row| row.index == step.index);
    let existing = match read_manifest(&set_dir) {
        Ok(manifest) if again => Some(manifest),
        Ok(_) => {
            return Err(StepError::from(format!(
                "backup set {set_id} already exists; make a new plan"
            )));
        }
        Err(_) if set_dir.exists() => {
            if !again {
                return Err(StepError::from(format!(
                    "an incomplete backup set {} exists that this apply did not start; \
                         make a new plan",
                    set_dir.display()
                )));
            }
            delete_set(&set_dir).map_err(|error| error.to_string())?;
            None
        }
        Err(_) => None,
    };
    let mut record = cx.journal.row(step, StepStatus::Started);
    cx.write(&record).await?;
    let result = async {
        let mut manifest = match existing {
            Some(manifest) => manifest,
            None => {
                claim(&target.location(), &set_dir)?;
                cx.pause(step, Point::Before).await;
                // create_set makes the directory itself and never adopts one.
                std::fs::remove_dir(&set_dir)
                    .map_err(|error| format!("cannot release {}: {error}", set_dir.display()))?;
                create_set(
                    &target.destination,
                    &target.backup_source(cx.secret_values),
                    &target.policy.include,
                    set_id,
                    cx.now(),
                )
                .await
                .map_err(|error| describe(&error))?
            }
        };
        if target.policy.verify && manifest.verification.is_none() {
            manifest.verification = Some(
                verify_set_with(&set_dir, cx.now(), &VerifyOptions::default())
                    .await
                    .map_err(|error| describe(&error))?,
            );
        }
        record.after_hash = Some(manifest_hash(&set_dir)?);
        if let Some(verification) = &manifest.verification
            && !verification.ok
        {
            let problems: Vec<String> = verification
                .problems
                .iter()
                .take(3)
                .map(|problem| format!("{}: {}", problem.item, problem.problem))
                .collect();
            return Err(format!(
                "backup set {set_id} failed verification: {}",
                problems.join("; ")
            ));
        }
        cx.pause(step, Point::After).await;
        Ok(())
    }
    .await;
    cx.settle(record, result).await
}

/// See the module documentation.
async fn ensure_backups_pruned(cx: &StepContext<'_>, step: &Step) -> Result<StepRecord, StepError> {
    let target = target_of(cx.deployment)?;
    let mut record = cx.journal.row(step, StepStatus::Started);
    cx.write(&record).await?;
    cx.pause(step, Point::Before).await;
    let mut errors = Vec::new();
    for operation in &step.operations {
        let Operation::PruneBackup { set_id, .. } = operation else {
            continue;
        };
        let set_dir = target.set_dir(set_id);
        if !set_dir.exists() {
            continue;
        }
        let deleting = set_dir.clone();
        let deleted = tokio::task::spawn_blocking(move || delete_set(&deleting))
            .await
            .map_err(|error| error.to_string())
            .and_then(|result| result.map_err(|error| describe(&error)));
        if let Err(error) = deleted {
            errors.push(format!("{set_id}: {error}"));
        }
    }
    cx.pause(step, Point::After).await;
    if !errors.is_empty() {
        cx.journal.note(&format!(
            "warning: could not delete {} backup set(s): {}. The apply stands; the next \
                 plan proposes them again.",
            errors.len(),
            errors.join("; ")
        ));
    }
    record.status = StepStatus::Done;
    record.error = (!errors.is_empty()).then(|| errors.join("; "));
    record.finished_at = Some(cx.now());
    cx.write(&record).await?;
    Ok(record)
}

/// See the module documentation.
async fn ensure_backup_restored(
    cx: &StepContext<'_>,
    step: &Step,
) -> Result<StepRecord, StepError> {
    let target = target_of(cx.deployment)?;
    let Some(Operation::RestoreBackup { set_id, only, .. }) = step.operations.first() else {
        return Err(StepError::from(
            "restore_backup step without a set id".to_string(),
        ));
    };
    let set_dir = target.set_dir(set_id);
    let mut record = cx.journal.row(step, StepStatus::Started);
    // The set restored: with an after-hash the step is undone even when it fails part-way.
    record.after_hash = Some(manifest_hash(&set_dir)?);
    cx.write(&record).await?;
    cx.pause(step, Point::Before).await;
    let result = restore(target, &set_dir, *only, cx.secret_values, cx.now()).await;
    cx.pause(step, Point::After).await;
    cx.settle(record, result).await
}

/// Verifies a set that never was, then restores it.
async fn restore(
    target: &BackupTarget,
    set_dir: &Path,
    only: Option<crate::spec::types::BackupItem>,
    secret_values: &BTreeMap<String, String>,
    now: jiff::Timestamp,
) -> Result<(), String> {
    let manifest = read_manifest(set_dir).map_err(|error| describe(&error))?;
    if manifest.verification.is_none() {
        let verification = verify_set_with(set_dir, now, &VerifyOptions::default())
            .await
            .map_err(|error| describe(&error))?;
        if !verification.ok {
            return Err(format!(
                "backup set {} failed verification; nothing was restored",
                manifest.set_id
            ));
        }
    }
    restore_set(set_dir, &target.restore_targets(secret_values), only)
        .await
        .map(|_| ())
        .map_err(|error| describe(&error))
}

/// Creates the environment directory and the (empty) set directory, 0700.
fn claim(location: &Path, set_dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(location)
        .and_then(|()| std::fs::DirBuilder::new().mode(0o700).create(set_dir))
        .map_err(|error| format!("cannot create {}: {error}", set_dir.display()))
}

/// An error with its causes, on one line.
fn describe(error: &BackupError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `create_backup`: see the module documentation.
pub struct CreateBackup;
/// `prune_backups`: see the module documentation.
pub struct PruneBackups;
/// `restore_backup`: see the module documentation.
pub struct RestoreBackup;

impl Provider for CreateBackup {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(ensure_backup_created(cx, step))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Started
    }

    /// Keeps a complete set (a safety copy of the data), removes an incomplete one.
    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        step: &'a Step,
        _row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move {
            let number = step.index + 1;
            let Some(Operation::CreateBackup { set_id }) = step.operations.first() else {
                return Ok(described(format!("{number} (nothing to undo)")));
            };
            let target = target_of(cx.deployment)?;
            let set_dir = target.set_dir(set_id);
            let complete = read_manifest(&set_dir).is_ok();
            let upgrade =
                crate::plan::backups::upgrade_set(cx.plan).as_deref() == Some(set_id.as_str());
            let migrated = if upgrade && complete {
                authnz_moved(target, &set_dir).await?
            } else {
                Migrated::NotCompared
            };
            let text = match migrated {
                Migrated::Moved => {
                    restore_authnz(target, &set_dir, set_id).await?;
                    return Ok(Undone {
                        described: Some(format!(
                            "{number} (the upgrade had migrated the AuthNZ database; restored it from backup set {set_id})"
                        )),
                        // The database changed under the server: the rollback restarts it and
                        // runs the gates.
                        restored_files: true,
                    });
                }
                Migrated::Unchanged => format!(
                    "{number} (backup set {set_id} kept; the upgrade left the AuthNZ schema as it was)"
                ),
                Migrated::NotCompared if complete => {
                    format!("{number} (backup set {set_id} kept: it is a safety copy of the data)")
                }
                Migrated::NotCompared if set_dir.exists() => {
                    delete_set(&set_dir).map_err(|error| describe(&error))?;
                    format!("{number} (removed the incomplete backup set {set_id})")
                }
                Migrated::NotCompared => format!("{number} (no backup set {set_id} was made)"),
            };
            Ok(described(text))
        })
    }
}

impl Provider for PruneBackups {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(ensure_backups_pruned(cx, step))
    }
}

impl Provider for RestoreBackup {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(ensure_backup_restored(cx, step))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Started
    }

    /// Restores the safety set the same plan took first, and only while the server does not
    /// answer.
    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        step: &'a Step,
        _row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move {
            let number = step.index + 1;
            let Some(Operation::RestoreBackup {
                only,
                safety_set_id,
                ..
            }) = step.operations.first()
            else {
                return Ok(described(format!("{number} (nothing to undo)")));
            };
            let target = target_of(cx.deployment)?;
            if let Some(url) = server_answers(&cx.deployment.health).await {
                return Err(format!(
                    "tldw_server answers at {url}, so the safety set {safety_set_id} was not \
                     restored; stop the server and run `tldw-ops backup restore {safety_set_id}`"
                ));
            }
            let safety = target.set_dir(safety_set_id);
            let _report = restore_set(&safety, &target.restore_targets(&BTreeMap::new()), *only)
                .await
                .map_err(|error| {
                    format!(
                        "restoring the safety set {safety_set_id} failed: {}",
                        describe(&error)
                    )
                })?;
            Ok(described(format!(
                "{number} (put back the data from before the restore: safety set {safety_set_id})"
            )))
        })
    }
}

/// Whether the live SQLite AuthNZ schema differs from the copy in the set at `set_dir`; a
/// PostgreSQL AuthNZ database, or a set without the AuthNZ database, is not compared.
async fn authnz_moved(target: &BackupTarget, set_dir: &Path) -> Result<Migrated, String> {
    let crate::backups::AuthnzLocation::Sqlite(live) = &target.authnz else {
        return Ok(Migrated::NotCompared);
    };
    let manifest = read_manifest(set_dir).map_err(|error| describe(&error))?;
    let Some(item) = manifest
        .items
        .iter()
        .find(|item| item.kind.include_item() == BackupItem::Authnz)
    else {
        return Ok(Migrated::NotCompared);
    };
    let schema = |path: std::path::PathBuf| async move {
        crate::providers::backups::sqlite_schema(&path)
            .await
            .map_err(|error| describe(&error))
    };
    let before = schema(set_dir.join(&item.path)).await?;
    let now = schema(live.clone()).await?;
    Ok(if before == now {
        Migrated::Unchanged
    } else {
        Migrated::Moved
    })
}

/// Whether the AuthNZ database's schema moved since the set `set_id` was taken, for
/// `rollback <apply-id>` of an upgrade; `false` without a SQLite AuthNZ copy to compare.
pub async fn authnz_migrated_since(deployment: &Deployment, set_id: &str) -> Result<bool, String> {
    let target = target_of(deployment)?;
    Ok(authnz_moved(target, &target.set_dir(set_id)).await? == Migrated::Moved)
}

/// The SQLite AuthNZ database's schema as an upgrade plan shows it (`user_version 87, 12
/// tables`); `None` without a readable SQLite AuthNZ database.
pub async fn authnz_schema_summary(deployment: &Deployment) -> Option<String> {
    let crate::backups::AuthnzLocation::Sqlite(live) = &deployment.backup.as_ref()?.authnz else {
        return None;
    };
    if !live.exists() {
        return None;
    }
    let schema = crate::providers::backups::sqlite_schema(live).await.ok()?;
    let tables = schema.tables();
    let plural = if tables == 1 { "" } else { "s" };
    Some(format!(
        "user_version {}, {tables} table{plural}",
        schema.user_version
    ))
}

/// What undoing an upgrade's backup step found of the AuthNZ schema.
#[derive(Debug, PartialEq, Eq)]
enum Migrated {
    /// No SQLite AuthNZ copy in the set to compare with (not included, or PostgreSQL).
    NotCompared,
    Unchanged,
    /// The schema differs from the set's copy.
    Moved,
}

/// After an upgrade was undone (the old image or commit is back) and its migration moved the
/// AuthNZ SQLite schema ([`authnz_moved`]): puts the pre-upgrade copy of the database back, so
/// the old code does not run on a database migrated ahead of it.
async fn restore_authnz(target: &BackupTarget, set_dir: &Path, set_id: &str) -> Result<(), String> {
    let _report = restore_set(
        set_dir,
        &target.restore_targets(&BTreeMap::new()),
        Some(BackupItem::Authnz),
    )
    .await
    .map_err(|error| {
        format!(
            "the upgrade migrated the AuthNZ database and putting back its copy from backup set {set_id} failed: {}",
            describe(&error)
        )
    })?;
    Ok(())
}

/// An undo that names what it did.
pub(super) fn described(text: String) -> Undone {
    Undone {
        described: Some(text),
        restored_files: false,
    }
}
