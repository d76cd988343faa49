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

use crate::kinds::backups::records_managed_state;
use crate::model::Address;
use crate::pipeline::{self, Prepared};
use crate::plan::{Action, Change, FORMAT_VERSION, Operation, Plan, Step, StepKind};
use crate::providers::checkpoint;
use crate::providers::config_file::document::IniDocument;
use crate::providers::env_file::document::EnvDocument;
use crate::providers::files::{DirectoryLocks, remove_stale_temporaries};
use crate::secrets::{is_sensitive, sha256_hex, shown, value_hash};
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, Outcome, StateError, StateStore, StepStatus};

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
    let plan = restore_plan(prepared, &record.id, &rows, now).map_err(RollbackError::Journal)?;
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
    let mut api_steps = Vec::new();
    for row in rows {
        if row.status == StepStatus::Done
            && (row.kind == StepKind::EnsureQuotas.as_str()
                || row.kind == StepKind::EnsureRetention.as_str())
            && let Some(before) = &row.before_values
        {
            api_steps.push(api_restore_step(
                prepared,
                row,
                before,
                salt,
                &mut changes,
                &mut fingerprints,
            )?);
            continue;
        }
        let is_env = row.kind == StepKind::EnsureEnvFile.as_str();
        if !(is_env || row.kind == StepKind::EnsureConfigFile.as_str()) {
            continue;
        }
        if !matches!(row.status, StepStatus::Done | StepStatus::Undone)
            || row.status == StepStatus::Undone
        {
            continue;
        }
        let (Some(path), Some(hash)) = (&row.checkpoint_path, &row.checkpoint_hash) else {
            if row.before_hash.as_deref() == Some("absent") {
                return Err(format!(
                    "apply {apply_id} created {}; rolling back a created file is not supported, remove it by hand if that is what you want",
                    row.target
                ));
            }
            continue;
        };
        let before = checkpoint::load(std::path::Path::new(path), hash).map_err(|error| {
            format!("cannot roll back apply {apply_id}: {error} (checkpoints of older applies are pruned after {} applies)", checkpoint::KEEP_APPLIES)
        })?;
        let (current_text, file_changes) = if is_env {
            let current = prepared.files.env.document();
            (
                current.render(),
                env_changes(current, &before, salt, &sensitive),
            )
        } else {
            let current = prepared.files.config.document();
            (
                current.render(),
                config_changes(current, &before, salt, &sensitive),
            )
        };
        if current_text == before {
            continue;
        }
        for change in &file_changes {
            // Read the value from the file itself, as the executor's staleness check does: a
            // key the desired state does not manage (a rotation's `keep_previous_as`) is not in
            // `prepared.observed`, and would read as absent here but present at apply.
            let observed = crate::pipeline::observed_now(prepared, &change.address);
            fingerprints.insert(
                change.address.to_string(),
                observed
                    .map(|value| value_hash(salt, &value))
                    .unwrap_or_else(|| crate::plan::ABSENT.to_string()),
            );
        }
        let addresses = file_changes
            .iter()
            .map(|change| change.address.to_string())
            .collect();
        changes.extend(file_changes);
        steps.push(Step {
            index: 0,
            kind: if is_env {
                StepKind::EnsureEnvFile
            } else {
                StepKind::EnsureConfigFile
            },
            target: row.target.clone(),
            addresses,
            operations: vec![Operation::RestoreFile {
                checkpoint: path.clone(),
                checkpoint_hash: hash.clone(),
            }],
        });
    }
    let deployment = &loaded.deployment;
    let files_changed = !steps.is_empty();
    steps.extend(api_steps.into_iter().flatten());
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

/// A step that writes back the quota or retention values an earlier API step replaced, with a
/// change for each value that differs from now.
fn api_restore_step(
    prepared: &Prepared,
    row: &crate::state::StepRecord,
    before: &str,
    salt: &[u8],
    changes: &mut Vec<Change>,
    fingerprints: &mut std::collections::BTreeMap<String, String>,
) -> Result<Option<Step>, String> {
    let before: crate::kinds::admin_api::BeforeValues =
        serde_json::from_str(before).map_err(|error| {
            format!(
                "the journal's before-values of step {} are unreadable: {error}",
                row.index + 1
            )
        })?;
    let mut operations = Vec::new();
    let mut kind = StepKind::EnsureQuotas;
    let mut note = |address: Address, then: Option<String>, operation: Operation| {
        let now = prepared.observed.get(&address).canonical();
        if now == then {
            return;
        }
        fingerprints.insert(
            address.to_string(),
            now.as_deref()
                .map(|value| value_hash(salt, value))
                .unwrap_or_else(|| crate::plan::ABSENT.to_string()),
        );
        changes.push(change(address.clone(), now, then, false, salt));
        operations.push(operation);
    };
    for (username, (_, quota)) in &before.quotas {
        let address = Address::quota_user(username);
        let then = Some(
            quota
                .map(|megabytes| megabytes.to_string())
                .unwrap_or_else(|| "unlimited".to_string()),
        );
        note(
            address.clone(),
            then,
            Operation::SetQuota {
                address,
                username: username.clone(),
                quota_mb: *quota,
            },
        );
    }
    for (key, days) in &before.retention {
        kind = StepKind::EnsureRetention;
        let address = Address::retention(key);
        let current = match prepared.observed.get(&address) {
            crate::model::ObservedValue::Days(days) => Some(*days),
            _ => None,
        };
        note(
            address.clone(),
            Some(days.to_string()),
            Operation::SetRetention {
                address,
                policy_key: key.clone(),
                current_days: current,
                days: *days,
            },
        );
    }
    if operations.is_empty() {
        return Ok(None);
    }
    Ok(Some(Step {
        index: 0,
        kind,
        target: row.target.clone(),
        addresses: operations
            .iter()
            .filter_map(|operation| match operation {
                Operation::SetQuota { address, .. } | Operation::SetRetention { address, .. } => {
                    Some(address.to_string())
                }
                _ => None,
            })
            .collect(),
        operations,
    }))
}

fn change(
    address: Address,
    before: Option<String>,
    after: Option<String>,
    sensitive: bool,
    salt: &[u8],
) -> Change {
    let action = match (&before, &after) {
        (None, Some(_)) => Action::Create,
        (Some(_), None) => Action::Delete,
        _ => Action::Update,
    };
    Change {
        address,
        action,
        reason: "restoring the value from before the rolled-back apply".to_string(),
        sensitive,
        drift: false,
        before: before.map(|value| shown(salt, &value, sensitive)),
        after: after.map(|value| shown(salt, &value, sensitive)),
        source: None,
    }
}

fn env_changes(
    current: &EnvDocument,
    before: &str,
    salt: &[u8],
    sensitive: &BTreeSet<Address>,
) -> Vec<Change> {
    let Ok(before) = EnvDocument::parse(before) else {
        return Vec::new();
    };
    let mut keys: BTreeSet<String> = current
        .entries()
        .map(|entry| entry.key.to_string())
        .collect();
    keys.extend(before.entries().map(|entry| entry.key.to_string()));
    let mut changes = Vec::new();
    for key in keys {
        let now = current.get(&key).map(str::to_string);
        let then = before.get(&key).map(str::to_string);
        if now == then {
            continue;
        }
        let secret_address = Address::secret(&key);
        let address = if sensitive.contains(&secret_address) {
            secret_address
        } else {
            Address::env(&key)
        };
        let is_secret = is_secret_change(sensitive, &address, &key, &now, &then);
        changes.push(change(address, now, then, is_secret, salt));
    }
    changes
}

/// Whether a restored entry is shown as a fingerprint: the YAML declares it sensitive, or either
/// value looks like a secret.
fn is_secret_change(
    sensitive: &BTreeSet<Address>,
    address: &Address,
    key: &str,
    now: &Option<String>,
    then: &Option<String>,
) -> bool {
    sensitive.contains(address)
        || [now, then]
            .into_iter()
            .flatten()
            .any(|value| is_sensitive(key, value))
}

fn config_changes(
    current: &IniDocument,
    before: &str,
    salt: &[u8],
    sensitive: &BTreeSet<Address>,
) -> Vec<Change> {
    let Ok(before) = IniDocument::parse(before) else {
        return Vec::new();
    };
    let mut keys: BTreeSet<(String, String)> = current
        .entries()
        .map(|entry| (entry.section.to_string(), entry.key.to_ascii_lowercase()))
        .collect();
    keys.extend(
        before
            .entries()
            .map(|entry| (entry.section.to_string(), entry.key.to_ascii_lowercase())),
    );
    let mut changes = Vec::new();
    for (section, key) in keys {
        let now = current.get(&section, &key).ok().flatten();
        let then = before.get(&section, &key).ok().flatten();
        if now == then {
            continue;
        }
        let address = Address::config(&section, &key);
        let is_secret = is_secret_change(sensitive, &address, &key, &now, &then);
        changes.push(change(address, now, then, is_secret, salt));
    }
    changes
}
