//! `tldw-ops rollback <apply-id>|--last`: a reviewed plan that puts the files of an earlier
//! apply back as they were before it, applied as a new apply. `rollback --unfinished` undoes an
//! apply that was interrupted.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::apply::{execute, report_apply_error, report_outcome};
use super::common::{LineReporter, confirm, report_state_error, runtime};
use super::plan::{Format, print_plan};
use super::{ExitStatus, Printer, desired_file};
use crate::apply::checkpoint;
use crate::apply::faults::Faults;
use crate::apply::recover::{rollback_unfinished, take_over_lock};
use crate::model::Address;
use crate::pipeline::{self, Prepared};
use crate::plan::{Action, Change, FORMAT_VERSION, Operation, Plan, Step, StepKind};
use crate::providers::config_file::document::IniDocument;
use crate::providers::env_file::document::EnvDocument;
use crate::secrets::{is_sensitive, sha256_hex, shown, value_hash};
use crate::settings::Settings;
use crate::state::{LockHolder, Outcome, StateStore, StepStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The apply to roll back (see `tldw-ops history`).
    apply_id: Option<String>,
    /// Roll back the most recent successful apply.
    #[arg(long, conflicts_with_all = ["apply_id", "unfinished"])]
    last: bool,
    /// Undo an apply that was interrupted (crash, kill, power loss).
    #[arg(long, conflicts_with = "apply_id")]
    unfinished: bool,
    /// Desired-state file. Default: tldw-ops.yaml
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    auto_approve: bool,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let faults = match super::common::faults(settings, printer) {
        Ok(faults) => faults,
        Err(status) => return status,
    };
    let runtime = runtime();
    if args.unfinished {
        runtime.block_on(unfinished(&args, settings, printer, &faults))
    } else if args.apply_id.is_some() || args.last {
        runtime.block_on(earlier(&args, settings, printer, &faults))
    } else {
        printer.error("say which apply to roll back: an apply id, --last, or --unfinished");
        ExitStatus::Error
    }
}

async fn unfinished(
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let file = desired_file(args.file.clone());
    let (loaded, record, plan) =
        match super::common::load_unfinished(&file, settings, printer, "roll back").await {
            Ok(found) => found,
            Err(status) => return status,
        };
    printer.note(&format!(
        "apply {} (started {} by {}@{}) did not finish; every step it completed will be undone from its checkpoint.",
        record.id, record.started_at, record.actor_user, record.actor_host
    ));
    if let Err(status) = confirm(
        "Undo the unfinished apply?",
        args.auto_approve,
        settings,
        printer,
    ) {
        return status;
    }
    let holder = LockHolder {
        apply_id: record.id.clone(),
        host: settings.host.clone(),
        pid: std::process::id(),
        started_at: settings.now(),
    };
    if let Err(error) = take_over_lock(&loaded.store, &loaded.key, &holder, &settings.host).await {
        return report_state_error(error, printer);
    }
    // No other apply writes these files while the undo runs; what the interrupted one left
    // half-written beside them goes.
    let files = [
        loaded.deployment.env_file.as_path(),
        loaded.deployment.config_file.as_path(),
    ];
    let _target_locks = match crate::providers::files::DirectoryLocks::acquire(&files) {
        Ok(locks) => locks,
        Err(error) => return report_apply_error(error.into(), printer),
    };
    for file in files {
        crate::providers::files::remove_stale_temporaries(file);
    }
    let reporter = LineReporter::new(*printer, plan.steps.len(), settings.interactive);
    let clock = || settings.now();
    let started = std::time::Instant::now();
    match rollback_unfinished(
        &loaded.store,
        &loaded.key,
        &record,
        &plan,
        &loaded.deployment,
        loaded.api.as_ref(),
        faults,
        &reporter,
        &clock,
    )
    .await
    {
        Ok(crate::apply::ApplyOutcome::RolledBack {
            undone,
            final_health,
            ..
        }) => {
            let health = match final_health {
                None => "not checked".to_string(),
                Some(Ok(())) => "healthy".to_string(),
                Some(Err(problem)) => format!("UNHEALTHY: {problem}"),
            };
            printer.note(&format!(
                "Unfinished apply {} rolled back; undone: {}; final health: {health}.",
                record.id,
                if undone.is_empty() {
                    "nothing needed undoing".to_string()
                } else {
                    undone.join(", ")
                }
            ));
            ExitStatus::Success
        }
        Ok(outcome) => report_outcome(&outcome, started.elapsed(), printer),
        Err(error) => report_apply_error(error, printer),
    }
}

async fn earlier(
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let file = desired_file(args.file.clone());
    let prepared = match super::common::load_and_observe(&file, settings, printer).await {
        Ok(prepared) => prepared,
        Err(status) => return status,
    };
    let store = &prepared.loaded.store;
    let key = &prepared.loaded.key;
    let record = if let Some(id) = &args.apply_id {
        match store.apply_record(id).await {
            Ok(Some(record)) if record.environment == *key => record,
            Ok(Some(record)) => {
                printer.error(&format!(
                    "apply {id} belongs to environment {}, not {key}",
                    record.environment
                ));
                return ExitStatus::Error;
            }
            Ok(None) => {
                printer.error(&format!("no apply with id `{id}` (see `tldw-ops history`)"));
                return ExitStatus::Error;
            }
            Err(error) => return report_state_error(error, printer),
        }
    } else {
        match store.applies(Some(key), 200).await {
            Ok(records) => match records.into_iter().find(|record| {
                record.outcome == Outcome::Succeeded
                    && record.changes > 0
                    && crate::apply::backup_steps::records_managed_state(&record.kind)
            }) {
                Some(record) => record,
                None => {
                    printer.error(&format!(
                        "environment {key} has no successful apply that changed something"
                    ));
                    return ExitStatus::Error;
                }
            },
            Err(error) => return report_state_error(error, printer),
        }
    };
    let rows = match store.steps(&record.id).await {
        Ok(rows) => rows,
        Err(error) => return report_state_error(error, printer),
    };
    let plan = match restore_plan(&prepared, &record.id, &rows, settings) {
        Ok(plan) => plan,
        Err(message) => {
            printer.error(&message);
            return ExitStatus::Error;
        }
    };
    printer.note(&format!(
        "rolling back apply {} (started {}, {})",
        record.id,
        record.started_at,
        record.outcome.as_str()
    ));
    print_plan(&plan, Format::Text, printer);
    if plan.is_empty() {
        printer.note("The files already hold what they held before that apply.");
        return ExitStatus::Success;
    }
    if let Err(status) = confirm(
        "Do you want to apply this rollback?",
        args.auto_approve,
        settings,
        printer,
    ) {
        return status;
    }
    execute(&prepared, &plan, settings, printer, faults, "rollback").await
}

/// A plan whose file steps restore the before-images an apply checkpointed.
fn restore_plan(
    prepared: &Prepared,
    apply_id: &str,
    rows: &[crate::state::StepRecord],
    settings: &Settings,
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
        steps.extend(crate::plan::service::health_gate_step(&deployment.health));
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
        created_at: settings.now().to_string(),
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
    let before: crate::apply::api_steps::BeforeValues =
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
