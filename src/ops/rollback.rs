//! `rollback <apply-id>` and `rollback --last`: which apply to roll back, and the plan that
//! does it. The plan's file steps put back the before-images that apply checkpointed and its API
//! steps write back the quota and retention values it replaced, each with a change for every
//! value that differs from now; it is then applied like any other plan (`cli::rollback`
//! confirms and runs it). `rollback --unfinished` takes over the interrupted apply's lock and
//! undoes it with `apply::recover`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::apply::{Unfinished, take_over};
use crate::apply::recover::rollback_unfinished;
use crate::apply::{ApplyError, ApplyOutcome, Reporter};
use crate::faults::Faults;
use crate::kinds::RestoreContext;
use crate::kinds::backups::records_managed_state;
use crate::model::Address;
use crate::pipeline::{self, Prepared};
use crate::plan::{FORMAT_VERSION, Operation, Plan, Step, StepKind};
use crate::providers::files::{DirectoryLocks, remove_stale_temporaries};
use crate::secrets::sha256_hex;
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, Outcome, StateError, StateStore};

/// Why there is nothing to roll back.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("apply {id} belongs to environment {environment}, not {key}")]
    OtherEnvironment {
        id: String,
        environment: EnvironmentKey,
        key: EnvironmentKey,
    },
    #[error("no apply with id `{0}` (see `tldw-ops history`)")]
    NoSuchApply(String),
    #[error("environment {0} has no successful apply that changed something")]
    NothingToRollBack(EnvironmentKey),
    /// The journal of the apply does not tell what to restore.
    #[error("{0}")]
    Journal(String),
}

/// `rollback <apply-id>` and `rollback --last`: the apply to roll back (the one named, or the
/// last one that changed something) and the plan that restores what it replaced, made at `now`.
pub async fn earlier(
    prepared: &Prepared,
    apply_id: Option<&str>,
    now: Timestamp,
) -> Result<(ApplyRecord, Plan), RollbackError> {
    let store = &prepared.loaded.store;
    let record = target_apply(store, &prepared.loaded.key, apply_id).await?;
    let rows = store.steps(&record.id).await?;
    let mut plan =
        restore_plan(prepared, &record.id, &rows, now).map_err(RollbackError::Journal)?;
    // An upgrade is rolled back with a safety set first and, when it migrated the AuthNZ
    // database, the pre-upgrade copy put back.
    let upgrade = serde_json::from_str::<Plan>(&record.plan_json)
        .ok()
        .and_then(|applied| crate::plan::backups::upgrade_set(&applied));
    if let (Some(set_id), Some(backups)) = (upgrade, &prepared.backups) {
        let migrated =
            crate::kinds::backups::authnz_migrated_since(&prepared.loaded.deployment, &set_id)
                .await
                .map_err(RollbackError::Journal)?;
        plan = crate::plan::backups::upgrade_rollback(
            plan,
            &crate::plan::backups::UpgradeRollback {
                restore_authnz_from: migrated.then_some(set_id.as_str()),
                sets: &backups.sets,
                now,
                location: &backups.location,
                source: backups.source.as_ref(),
            },
        );
    }
    Ok((record, plan))
}

/// The apply `rollback` undoes: the one named, or the most recent successful apply of this
/// environment that changed a managed value.
pub async fn target_apply<S: StateStore>(
    store: &S,
    key: &EnvironmentKey,
    apply_id: Option<&str>,
) -> Result<ApplyRecord, RollbackError> {
    if let Some(id) = apply_id {
        return match store.apply_record(id).await? {
            Some(record) if record.environment == *key => Ok(record),
            Some(record) => Err(RollbackError::OtherEnvironment {
                id: id.to_string(),
                environment: record.environment,
                key: key.clone(),
            }),
            None => Err(RollbackError::NoSuchApply(id.to_string())),
        };
    }
    store
        .applies(Some(key), 200)
        .await?
        .into_iter()
        .find(|record| {
            record.outcome == Outcome::Succeeded
                && record.changes > 0
                && records_managed_state(&record.kind)
        })
        .ok_or_else(|| RollbackError::NothingToRollBack(key.clone()))
}

/// Why an unfinished apply was not undone.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// Its lock could not be taken over.
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// `rollback --unfinished`: takes over the lock of the unfinished apply, locks the files it
/// writes (removing what it left half-written beside them) and undoes every step it completed
/// from its checkpoint. Returns how that ended and how long the undo took.
pub async fn undo_unfinished(
    unfinished: &Unfinished,
    settings: &Settings,
    faults: &Faults,
    reporter: &dyn Reporter,
) -> Result<(ApplyOutcome, Duration), UndoError> {
    let Unfinished {
        loaded,
        record,
        plan,
    } = unfinished;
    take_over(loaded, &record.id, settings).await?;
    // No other apply writes these files while the undo runs; what the interrupted one left
    // half-written beside them goes.
    let files = [
        loaded.deployment.env_file.as_path(),
        loaded.deployment.config_file.as_path(),
    ];
    let _target_locks =
        DirectoryLocks::acquire(&files).map_err(|error| UndoError::Apply(error.into()))?;
    for file in files {
        remove_stale_temporaries(file);
    }
    let clock = || settings.now();
    let started = Instant::now();
    let outcome = rollback_unfinished(
        &loaded.store,
        &loaded.key,
        record,
        plan,
        &loaded.deployment,
        loaded.api.as_ref(),
        faults,
        reporter,
        &clock,
    )
    .await?;
    Ok((outcome, started.elapsed()))
}

/// A plan whose file steps restore the before-images an apply checkpointed.
pub fn restore_plan(
    prepared: &Prepared,
    apply_id: &str,
    rows: &[crate::state::StepRecord],
    now: Timestamp,
) -> Result<Plan, String> {
    let loaded = &prepared.loaded;
    let salt = loaded.state.salt.as_slice();
    let mut changes = Vec::new();
    let mut steps = Vec::new();
    let mut fingerprints = std::collections::BTreeMap::new();
    let sensitive: BTreeSet<Address> = loaded
        .desired
        .resources
        .values()
        .filter(|resource| resource.sensitive)
        .map(|resource| resource.address.clone())
        .collect();
    let cx = RestoreContext {
        apply_id,
        files: &prepared.files,
        observed: &prepared.observed,
        salt,
        sensitive: &sensitive,
        desired: &loaded.desired,
    };
    // Files first, as an apply orders them, then the admin API; each kind plans its own.
    let mut later = Vec::new();
    for row in rows {
        let Some(provider) = crate::kinds::provider_of_row(&row.kind) else {
            continue;
        };
        let Some(restoring) = provider.restoring(&cx, row)? else {
            continue;
        };
        for change in &restoring.changes {
            fingerprints.insert(change.address.to_string(), cx.fingerprint(&change.address));
        }
        changes.extend(restoring.changes);
        if restoring.restarts {
            steps.push(restoring.step);
        } else {
            later.push(restoring.step);
        }
    }
    let deployment = &loaded.deployment;
    let files_changed = !steps.is_empty();
    steps.extend(later);
    if files_changed {
        if let Some(restart) = &deployment.restart {
            steps.push(Step {
                index: 0,
                kind: StepKind::Restart,
                target: crate::plan::service::shell_words(restart),
                addresses: Vec::new(),
                operations: vec![Operation::Run {
                    argv: restart.clone(),
                }],
            });
        }
        steps.extend(crate::plan::service::gate_steps(
            &deployment.health,
            &deployment.smoke,
        ));
    }
    for (index, step) in steps.iter_mut().enumerate() {
        step.index = index as u32;
    }
    Ok(Plan {
        format_version: FORMAT_VERSION,
        tool_version: pipeline::TOOL_VERSION.to_string(),
        environment: loaded.desired.environment.clone(),
        deployment: loaded.desired.deployment.clone(),
        file: loaded.file.display().to_string(),
        desired_hash: loaded.desired_hash.clone(),
        shared_hash: loaded.shared_hash.clone(),
        git_commit: None,
        state_id: sha256_hex(salt)[..16].to_string(),
        created_at: now.to_string(),
        changes,
        steps,
        fingerprints,
        warnings: Vec::new(),
    })
}
