//! `rollback <apply-id>` and `rollback --last`: which apply to roll back, and the plan that
//! does it. The plan's file steps put back the before-images that apply checkpointed and its API
//! steps write back the quota and retention values it replaced, each with a change for every
//! value that differs from now; it is then applied like any other plan (`cli::rollback`
//! confirms and runs it). `rollback --unfinished` is `apply::recover`'s.

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::kinds::RestoreContext;
use crate::kinds::backups::records_managed_state;
use crate::model::Address;
use crate::pipeline::{self, Prepared};
use crate::plan::{FORMAT_VERSION, Operation, Plan, Step, StepKind};
use crate::secrets::sha256_hex;
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
