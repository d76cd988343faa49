//! The executor: runs a plan's steps with journal, checkpoints, health gates and automatic
//! rollback. It makes no choices the plan did not make: values come from the desired state the
//! plan pins (by hash) or are generated here for `generate` secrets, and nothing else.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::checkpoint::{self, CheckpointError};
use super::faults::{Faults, Point};
use super::service::{ServiceError, run_command, wait_healthy};
use crate::deployment::Deployment;
use crate::model::{Address, AddressKind, Desired, DesiredState, SecretSource};
use crate::plan::{EntryEdit, Operation, Plan, SecretFrom, Step, StepKind};
use crate::providers::config_file::{ConfigEdit, ConfigFile};
use crate::providers::env_file::{EnvEdit, EnvFile};
use crate::providers::files::{
    DirectoryLocks, content_hash, read_snapshot, remove_durably, write_atomic_if,
};
use crate::providers::tldw_api::TldwApi;
use crate::secrets::{OsRandom, RandomSource, generate, show_hash, value_hash};
use crate::state::{
    ApplyRecord, EnvironmentKey, EnvironmentState, LockHolder, Outcome, Record, SecretMeta,
    StateError, StateStore, StepRecord, StepStatus,
};

/// Progress for people: a terminal bar or plain lines, chosen by the CLI.
pub trait Reporter {
    fn step_started(&self, step: &Step);
    fn step_finished(&self, step: &Step, report: &StepReport);
    fn undo_started(&self, step: &Step);
    fn undo_finished(&self, step: &Step, result: &Result<(), String>);
    fn note(&self, text: &str);
    /// What runs now, between steps (the restart and health wait of a rollback): shown as the
    /// spinner's text on a terminal.
    fn activity(&self, _text: &str) {}
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepReport {
    Done { elapsed: Duration },
    Skipped,
    Failed { error: String },
}

/// Everything an apply needs. Built by the CLI from a prepared pipeline.
pub struct ApplyContext<'a, S: StateStore> {
    pub store: &'a S,
    pub key: &'a EnvironmentKey,
    pub plan: &'a Plan,
    pub desired: &'a DesiredState,
    pub state: &'a EnvironmentState,
    /// Values of `from_env`/`from_file` secrets, by secret name.
    pub secret_values: &'a BTreeMap<String, String>,
    pub deployment: &'a Deployment,
    /// Observed canonical values at the start of the apply, for the record.
    pub observed: &'a BTreeMap<Address, Option<String>>,
    pub checkpoint_root: std::path::PathBuf,
    pub faults: &'a Faults,
    pub reporter: &'a dyn Reporter,
    pub apply_id: String,
    pub kind: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub override_reason: Option<&'a str>,
    pub clock: &'a (dyn Fn() -> Timestamp + Sync),
    /// The admin API, for quota and retention steps.
    pub api: Option<&'a TldwApi>,
    /// Username -> user id, resolved during observe.
    pub user_ids: &'a BTreeMap<String, i64>,
    /// The directories of the files this apply writes, locked from [`ApplyContext::begin`]
    /// (or [`ApplyContext::lock_targets`]) to the end of the process.
    pub target_locks: std::sync::OnceLock<DirectoryLocks>,
}

/// How an apply ended, once it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    Succeeded {
        apply_id: String,
        changes: usize,
        health_checked: bool,
    },
    /// A step or gate failed; everything done was undone.
    RolledBack {
        apply_id: String,
        failed_step: String,
        error: String,
        undone: Vec<String>,
        final_health: Option<Result<(), String>>,
        /// The failure was the server reporting that the plan no longer matches it.
        stale: bool,
    },
    /// Something could not be undone; a person must look.
    NeedsAttention {
        apply_id: String,
        failed_step: String,
        error: String,
        undo_errors: Vec<String>,
        instructions: String,
    },
}

/// Why an apply did not start (nothing was touched).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    TargetLocked(#[from] crate::providers::files::DirectoryLockError),
}

/// One step's error.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    #[error("{0}")]
    Message(String),
    /// The server says the plan no longer matches it (a stale retention value).
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<String> for StepError {
    fn from(message: String) -> StepError {
        StepError::Message(message)
    }
}

/// What the executor learned while acting, for the record.
#[derive(Default)]
struct Effects {
    /// Address -> value now in place (`None`: removed).
    values: BTreeMap<Address, Option<String>>,
    /// Secret names that got a new value, and whether it was a rotation.
    secrets_set: BTreeMap<String, bool>,
    restarted: bool,
    health_checked: bool,
}

impl<S: StateStore> ApplyContext<'_, S> {
    pub(super) fn now(&self) -> Timestamp {
        (self.clock)()
    }

    pub(super) fn step_record(&self, step: &Step, status: StepStatus) -> StepRecord {
        StepRecord {
            apply_id: self.apply_id.clone(),
            index: step.index,
            kind: step.kind.as_str().to_string(),
            target: step.target.clone(),
            addresses: step.addresses.clone(),
            status,
            before_hash: None,
            after_hash: None,
            checkpoint_path: None,
            checkpoint_hash: None,
            before_values: None,
            started_at: self.now(),
            finished_at: None,
            error: None,
        }
    }

    /// Under the lock, checks that every file address the plan touches still holds the value
    /// the plan was computed from. Another apply may have finished while this one waited for
    /// its confirmation or its lock. Returns the addresses that moved.
    pub async fn moved_since_plan(&self) -> Result<Vec<(String, String, String)>, String> {
        let salt = self.state.salt.as_slice();
        let env = EnvFile::read(&self.deployment.env_file).map_err(|error| error.to_string())?;
        let config =
            ConfigFile::read(&self.deployment.config_file).map_err(|error| error.to_string())?;
        let mut moved = Vec::new();
        let mut api_addresses = Vec::new();
        for (address, then) in &self.plan.fingerprints {
            let Ok(parsed) = Address::parse(address) else {
                continue;
            };
            let value = match parsed.kind() {
                AddressKind::Env | AddressKind::Secret => env.observe(&parsed),
                AddressKind::Config => config.observe(&parsed),
                AddressKind::QuotaUser | AddressKind::Retention => {
                    api_addresses.push((address.clone(), then.clone()));
                    continue;
                }
                AddressKind::BackupSet => continue,
            };
            let now = value
                .canonical()
                .map(|value| value_hash(salt, &value))
                .unwrap_or_else(|| crate::plan::ABSENT.to_string());
            if now != *then {
                moved.push((address.clone(), then.clone(), now));
            }
        }
        if let (Some(api), false) = (self.api, api_addresses.is_empty()) {
            let fingerprints: BTreeMap<String, String> = api_addresses.iter().cloned().collect();
            let current =
                super::api_steps::current_hashes(api, &fingerprints, self.user_ids, salt).await?;
            for (address, then) in api_addresses {
                let now = current
                    .get(&address)
                    .cloned()
                    .unwrap_or_else(|| crate::plan::ABSENT.to_string());
                if now != then {
                    moved.push((address, then, now));
                }
            }
        }
        Ok(moved)
    }

    /// Ends an apply that did not succeed, and releases the lock.
    async fn close_apply(
        &self,
        outcome: Outcome,
        health_passed: Option<bool>,
        message: &str,
    ) -> Result<(), ApplyError> {
        self.store
            .finish_apply(
                &self.apply_id,
                outcome,
                self.now(),
                health_passed,
                Some(message),
                None,
            )
            .await?;
        self.store.unlock(self.key, &self.apply_id).await?;
        Ok(())
    }

    /// Ends an apply that found its plan stale before touching anything, and releases the lock.
    pub async fn abandon_stale(&self, message: &str) -> Result<(), ApplyError> {
        self.close_apply(Outcome::RolledBack, None, message).await
    }

    /// Locks the directories of the deployment's files, so that no other apply (of any
    /// environment, with any state store) writes them until this process ends. Also clears the
    /// temporary files an interrupted apply left there.
    pub fn lock_targets(&self) -> Result<(), ApplyError> {
        if self.target_locks.get().is_some() {
            return Ok(());
        }
        let files = [
            self.deployment.env_file.as_path(),
            self.deployment.config_file.as_path(),
        ];
        let locks = DirectoryLocks::acquire(&files)?;
        for file in files {
            for removed in crate::providers::files::remove_stale_temporaries(file) {
                tracing::info!(path = %removed.display(), "removed a temporary file an interrupted apply left");
            }
        }
        let _ = self.target_locks.set(locks);
        Ok(())
    }

    /// Takes the lock and journals the apply. Fails with `Locked` when another apply holds it.
    pub async fn begin(&self) -> Result<(), ApplyError> {
        let holder = LockHolder {
            apply_id: self.apply_id.clone(),
            host: self.host.to_string(),
            pid: std::process::id(),
            started_at: self.now(),
        };
        self.store.lock(self.key, &holder).await?;
        if let Err(error) = self.lock_targets() {
            let _ = self.store.unlock(self.key, &self.apply_id).await;
            return Err(error);
        }
        let record = ApplyRecord {
            id: self.apply_id.clone(),
            environment: self.key.clone(),
            kind: self.kind.to_string(),
            plan_hash: self.plan.hash(),
            desired_hash: self.plan.desired_hash.clone(),
            shared_hash: self.plan.shared_hash.clone(),
            git_commit: self.plan.git_commit.clone(),
            actor_user: self.user.to_string(),
            actor_host: self.host.to_string(),
            pid: std::process::id(),
            started_at: self.now(),
            finished_at: None,
            outcome: Outcome::Running,
            changes: self.plan.changes.len() as u32,
            health_passed: None,
            override_reason: self.override_reason.map(str::to_string),
            message: None,
            plan_json: serde_json::to_string(self.plan).expect("plans serialise"),
        };
        if let Err(error) = self.store.begin_apply(&record).await {
            let _ = self.store.unlock(self.key, &self.apply_id).await;
            return Err(error.into());
        }
        Ok(())
    }

    /// Runs every step from `first`, then records the result. `journal` holds the rows of
    /// steps already done (when resuming).
    pub async fn run(
        &self,
        first: usize,
        mut journal: Vec<StepRecord>,
    ) -> Result<ApplyOutcome, ApplyError> {
        let mut effects = Effects::default();
        // Secrets set by steps an earlier, interrupted run completed.
        for row in &journal {
            let Some(step) = self.plan.steps.iter().find(|step| step.index == row.index) else {
                continue;
            };
            if step.kind == StepKind::EnsureEnvFile && row.status == StepStatus::Done {
                for address in &step.addresses {
                    if let Ok(address) = Address::parse(address)
                        && address.kind() == AddressKind::Secret
                    {
                        let rotated = self.plan.changes.iter().any(|change| {
                            change.address == address.as_str()
                                && change.action == crate::plan::Action::Rotate
                        });
                        effects
                            .secrets_set
                            .insert(address.name().to_string(), rotated);
                    }
                }
            }
        }
        for step in &self.plan.steps[first..] {
            self.reporter.step_started(step);
            let started = Instant::now();
            match self.execute(step, &mut effects).await {
                Ok(record) => {
                    let report = if record.status == StepStatus::Skipped {
                        StepReport::Skipped
                    } else {
                        StepReport::Done {
                            elapsed: started.elapsed(),
                        }
                    };
                    self.reporter.step_finished(step, &report);
                    journal.push(record);
                }
                Err(error) => {
                    let stale = matches!(error, StepError::Stale(_));
                    let message = error.to_string();
                    self.reporter.step_finished(
                        step,
                        &StepReport::Failed {
                            error: message.clone(),
                        },
                    );
                    return self.roll_back(step, &message, stale, journal).await;
                }
            }
        }
        self.finish_success(&effects).await
    }

    async fn finish_success(&self, effects: &Effects) -> Result<ApplyOutcome, ApplyError> {
        let record =
            super::backup_steps::records_managed_state(self.kind).then(|| self.record(effects));
        let health = if effects.health_checked {
            Some(true)
        } else {
            None
        };
        self.store
            .finish_apply(
                &self.apply_id,
                Outcome::Succeeded,
                self.now(),
                health,
                Some(&format!("{} change(s) applied", self.plan.changes.len())),
                record.as_ref(),
            )
            .await?;
        self.store.unlock(self.key, &self.apply_id).await?;
        let protect: Vec<String> = Vec::new();
        checkpoint::prune(&self.checkpoint_root, checkpoint::KEEP_APPLIES, &protect);
        Ok(ApplyOutcome::Succeeded {
            apply_id: self.apply_id.clone(),
            changes: self.plan.changes.len(),
            health_checked: effects.health_checked,
        })
    }

    /// The new managed set and secret metadata: every desired address with the hash of the
    /// value now in place.
    fn record(&self, effects: &Effects) -> Record {
        let salt = self.state.salt.as_slice();
        let now = self.now();
        let mut record = Record::default();
        for (address, resource) in &self.desired.resources {
            let value = match effects.values.get(address) {
                Some(value) => value.clone(),
                None => self.observed.get(address).cloned().flatten(),
            };
            let Some(value) = value else { continue };
            let hash = value_hash(salt, &value);
            record
                .managed
                .insert(address.to_string(), (hash.clone(), resource.sensitive));
            if address.kind() == AddressKind::Secret {
                let name = address.name().to_string();
                let source = match &resource.desired {
                    Desired::Secret(secret) => match secret.source {
                        SecretSource::Generate(_) => "generate",
                        SecretSource::FromEnv(_) => "from_env",
                        SecretSource::FromFile(_) => "from_file",
                    },
                    _ => "unknown",
                };
                let previous = self.state.secrets.get(&name);
                let meta = match (effects.secrets_set.get(&name), previous) {
                    (Some(&rotated), previous) => SecretMeta {
                        fingerprint: hash,
                        set_at: now,
                        rotated_at: if rotated {
                            Some(now)
                        } else {
                            previous.and_then(|meta| meta.rotated_at)
                        },
                        adopted: false,
                        source: source.to_string(),
                    },
                    (None, Some(previous)) if previous.fingerprint == hash => SecretMeta {
                        source: source.to_string(),
                        ..previous.clone()
                    },
                    (None, _) => SecretMeta {
                        fingerprint: hash,
                        set_at: now,
                        rotated_at: None,
                        adopted: true,
                        source: source.to_string(),
                    },
                };
                record.secrets.insert(name, meta);
            }
        }
        record
    }

    async fn execute(&self, step: &Step, effects: &mut Effects) -> Result<StepRecord, StepError> {
        if self.faults.fail.contains(&step.index) {
            let mut record = self.step_record(step, StepStatus::Failed);
            record.error = Some("injected failure (TLDW_OPS_FAULT)".to_string());
            record.finished_at = Some(self.now());
            self.store.write_step(&record).await?;
            return Err(StepError::Message(format!(
                "step {} ({}) failed: injected failure (TLDW_OPS_FAULT)",
                step.index + 1,
                step.kind.as_str()
            )));
        }
        let result = match step.kind {
            StepKind::EnsureEnvFile | StepKind::EnsureConfigFile => {
                self.ensure_file(step, effects).await
            }
            StepKind::Restart => self.restart(step, effects).await,
            StepKind::HealthGate => self.health_gate(step, effects).await,
            StepKind::CreateBackup => self.ensure_backup_created(step).await,
            StepKind::PruneBackups => self.ensure_backups_pruned(step).await,
            StepKind::StopService => self.ensure_service_stopped(step).await,
            StepKind::RestoreBackup => self.ensure_backup_restored(step).await,
            StepKind::StartService => self.ensure_service_started(step).await,
            StepKind::EnsureQuotas | StepKind::EnsureRetention => {
                self.ensure_api(step, effects).await
            }
        };
        match result {
            Ok(record) if self.faults.fail_after.contains(&step.index) => {
                let mut failed = record;
                failed.status = StepStatus::Failed;
                failed.error = Some("injected failure after acting (TLDW_OPS_FAULT)".to_string());
                self.store.write_step(&failed).await?;
                Err(StepError::Message(format!(
                    "step {} ({}) failed after acting: injected failure (TLDW_OPS_FAULT)",
                    step.index + 1,
                    step.kind.as_str()
                )))
            }
            other => other,
        }
    }

    /// The value an operation writes: from the desired state, or generated now.
    fn value_for(
        &self,
        address: &Address,
        value: Option<&str>,
        secret: Option<&crate::plan::SecretOperation>,
        random: &mut dyn RandomSource,
    ) -> Result<String, StepError> {
        let salt = self.state.salt.as_slice();
        let resource = self.desired.get(address).ok_or_else(|| {
            StepError::Message(format!(
                "{address} is in the plan but not in the desired state"
            ))
        })?;
        match (secret, &resource.desired) {
            (Some(operation), Desired::Secret(desired))
                if operation.from == SecretFrom::Generate =>
            {
                match &desired.source {
                    SecretSource::Generate(spec) => Ok(generate(spec, random)),
                    _ => Err(StepError::Message(format!(
                        "{address}: the plan generates it but the desired state has a source"
                    ))),
                }
            }
            (_, Desired::Secret(_)) => {
                let value = self.secret_values.get(address.name()).ok_or_else(|| {
                    StepError::Message(format!("{address}: its source could not be read"))
                })?;
                if let Some(expected) = secret.and_then(|operation| operation.expect.as_deref())
                    && show_hash(&value_hash(salt, value)) != expected
                {
                    return Err(StepError::Message(format!(
                        "{address}: its source changed since the plan was made (plan {expected}, now {})",
                        show_hash(&value_hash(salt, value))
                    )));
                }
                Ok(value.clone())
            }
            (_, desired) => {
                let wanted = desired.canonical().unwrap_or_default();
                if let Some(planned) = value
                    && planned != wanted
                {
                    return Err(StepError::Message(format!(
                        "{address}: the desired value changed since the plan was made"
                    )));
                }
                Ok(wanted)
            }
        }
    }

    async fn ensure_file(
        &self,
        step: &Step,
        effects: &mut Effects,
    ) -> Result<StepRecord, StepError> {
        let is_env = step.kind == StepKind::EnsureEnvFile;
        let path = if is_env {
            &self.deployment.env_file
        } else {
            &self.deployment.config_file
        };
        let snapshot = read_snapshot(path).map_err(|error| error.to_string())?;
        let before_hash = snapshot.hash();
        let mut random = OsRandom;
        let mut values: Vec<(Address, Option<String>)> = Vec::new();
        let restore = step
            .operations
            .iter()
            .find_map(|operation| match operation {
                Operation::RestoreFile {
                    checkpoint,
                    checkpoint_hash,
                } => Some((checkpoint, checkpoint_hash)),
                _ => None,
            });
        let new_content = if let Some((checkpoint_path, checkpoint_hash)) = restore {
            let content = checkpoint::load(std::path::Path::new(checkpoint_path), checkpoint_hash)
                .map_err(|error| error.to_string())?;
            values.extend(self.values_in(is_env, &content));
            content
        } else if is_env {
            let file =
                EnvFile::from_snapshot(snapshot.clone()).map_err(|error| error.to_string())?;
            let mut edits = Vec::new();
            for edit in step.entry_edits() {
                match edit.map_err(|error| error.to_string())? {
                    EntryEdit::Set {
                        address,
                        value,
                        secret,
                    } => {
                        let key = address.env_name().unwrap_or_default().to_string();
                        let new_value = self.value_for(&address, value, secret, &mut random)?;
                        if let Some(previous_key) =
                            secret.and_then(|secret| secret.keep_previous_as.as_ref())
                            && let Some(old) = file.get(&key)
                            && !old.is_empty()
                            && old != new_value
                        {
                            edits.push(EnvEdit {
                                address: Address::env(previous_key),
                                key: previous_key.clone(),
                                value: Some(old.to_string()),
                            });
                        }
                        if address.kind() == AddressKind::Secret {
                            let rotated = matches!(
                                self.plan.changes.iter().find(|change| change.address == address.as_str()),
                                Some(change) if change.action == crate::plan::Action::Rotate
                            );
                            effects
                                .secrets_set
                                .insert(address.name().to_string(), rotated);
                        }
                        values.push((address.clone(), Some(new_value.clone())));
                        edits.push(EnvEdit {
                            address,
                            key,
                            value: Some(new_value),
                        });
                    }
                    EntryEdit::Remove { address } => {
                        let key = address.env_name().unwrap_or_default().to_string();
                        values.push((address.clone(), None));
                        edits.push(EnvEdit {
                            address,
                            key,
                            value: None,
                        });
                    }
                }
            }
            file.edited(&edits).map_err(|error| error.to_string())?
        } else {
            let file =
                ConfigFile::from_snapshot(snapshot.clone()).map_err(|error| error.to_string())?;
            let mut edits = Vec::new();
            for edit in step.entry_edits() {
                match edit.map_err(|error| error.to_string())? {
                    EntryEdit::Set {
                        address,
                        value,
                        secret,
                    } => {
                        let new_value = self.value_for(&address, value, secret, &mut random)?;
                        values.push((address.clone(), Some(new_value.clone())));
                        edits.push(ConfigEdit {
                            address,
                            value: Some(new_value),
                        });
                    }
                    EntryEdit::Remove { address } => {
                        values.push((address.clone(), None));
                        edits.push(ConfigEdit {
                            address,
                            value: None,
                        });
                    }
                }
            }
            file.edited(&edits).map_err(|error| error.to_string())?
        };
        let after_hash = content_hash(Some(&new_content));
        let mut record = self.step_record(step, StepStatus::Started);
        record.before_hash = Some(before_hash.clone());
        record.after_hash = Some(after_hash.clone());
        if before_hash == after_hash {
            record.status = StepStatus::Skipped;
            record.finished_at = Some(self.now());
            self.store.write_step(&record).await?;
            effects.values.extend(values);
            return Ok(record);
        }
        if let Some(content) = &snapshot.content {
            let name = if is_env { "env" } else { "config.txt" };
            let (checkpoint_path, checkpoint_hash) = checkpoint::save(
                &self.checkpoint_root,
                &self.apply_id,
                step.index,
                name,
                content,
            )
            .map_err(|error| error.to_string())?;
            record.checkpoint_path = Some(checkpoint_path.display().to_string());
            record.checkpoint_hash = Some(checkpoint_hash);
        }
        self.store.write_step(&record).await?;
        self.faults.pause_at(step.index, Point::Before).await;
        // A new .env holds secrets: 0600. An existing file keeps its mode and owner. The file
        // must still hold what was read: a writer outside tldw-ops fails the step, not its
        // edit.
        let mode = snapshot.mode.unwrap_or(if is_env { 0o600 } else { 0o644 });
        write_atomic_if(
            path,
            new_content.as_bytes(),
            mode,
            snapshot.owner,
            &before_hash,
        )
        .map_err(|error| error.to_string())?;
        self.faults.pause_at(step.index, Point::After).await;
        record.status = StepStatus::Done;
        record.finished_at = Some(self.now());
        self.store.write_step(&record).await?;
        effects.values.extend(values);
        Ok(record)
    }

    async fn ensure_api(
        &self,
        step: &Step,
        effects: &mut Effects,
    ) -> Result<StepRecord, StepError> {
        let api = self.api.ok_or_else(|| {
            StepError::Message(
                "the plan changes the admin API but `target.api` is not configured".to_string(),
            )
        })?;
        let prepared =
            super::api_steps::prepare(step, self.observed, self.user_ids).map_err(|error| {
                if error.stale {
                    StepError::Stale(error.message)
                } else {
                    StepError::Message(error.message)
                }
            })?;
        let mut record = self.step_record(step, StepStatus::Started);
        record.before_hash = Some(prepared.before_hash());
        record.after_hash = Some(prepared.after_hash());
        record.before_values =
            Some(serde_json::to_string(&prepared.before).expect("before-values serialise"));
        self.store.write_step(&record).await?;
        self.faults.pause_at(step.index, Point::Before).await;
        let result = super::api_steps::perform(api, &prepared).await;
        self.faults.pause_at(step.index, Point::After).await;
        match result {
            Ok(values) => {
                record.status = StepStatus::Done;
                record.finished_at = Some(self.now());
                self.store.write_step(&record).await?;
                effects.values.extend(values);
                Ok(record)
            }
            Err(error) => {
                record.status = StepStatus::Failed;
                record.error = Some(error.message.clone());
                record.finished_at = Some(self.now());
                self.store.write_step(&record).await?;
                Err(if error.stale {
                    StepError::Stale(error.message)
                } else {
                    StepError::Message(error.message)
                })
            }
        }
    }

    /// The value of every desired address of one file in `content` (for restored files).
    fn values_in(&self, is_env: bool, content: &str) -> Vec<(Address, Option<String>)> {
        let snapshot = |content: &str| crate::providers::files::FileSnapshot {
            path: std::path::PathBuf::new(),
            content: Some(content.to_string()),
            mode: None,
            owner: None,
        };
        let mut values = Vec::new();
        if is_env {
            if let Ok(file) = EnvFile::from_snapshot(snapshot(content)) {
                for address in self.desired.resources.keys() {
                    if matches!(address.kind(), AddressKind::Env | AddressKind::Secret) {
                        values.push((address.clone(), file.observe(address).canonical()));
                    }
                }
            }
        } else if let Ok(file) = ConfigFile::from_snapshot(snapshot(content)) {
            for address in self.desired.resources.keys() {
                if address.kind() == AddressKind::Config {
                    values.push((address.clone(), file.observe(address).canonical()));
                }
            }
        }
        values
    }

    async fn restart(&self, step: &Step, effects: &mut Effects) -> Result<StepRecord, StepError> {
        let mut record = self.step_record(step, StepStatus::Started);
        self.store.write_step(&record).await?;
        self.faults.pause_at(step.index, Point::Before).await;
        let argv = match step.operations.first() {
            Some(Operation::Run { argv }) => argv.clone(),
            _ => {
                return Err(StepError::Message(
                    "restart step without a command".to_string(),
                ));
            }
        };
        let result = run_command(&argv, self.deployment.service_timeout).await;
        self.faults.pause_at(step.index, Point::After).await;
        self.close(&mut record, result.as_ref().err().map(ToString::to_string))
            .await?;
        result.map_err(|error| StepError::Message(error.to_string()))?;
        effects.restarted = true;
        Ok(record)
    }

    async fn health_gate(
        &self,
        step: &Step,
        effects: &mut Effects,
    ) -> Result<StepRecord, StepError> {
        let mut record = self.step_record(step, StepStatus::Started);
        self.store.write_step(&record).await?;
        self.faults.pause_at(step.index, Point::Before).await;
        let result = wait_healthy(
            &self.deployment.health,
            Instant::now() + self.deployment.service_timeout,
        )
        .await;
        self.faults.pause_at(step.index, Point::After).await;
        self.close(&mut record, result.as_ref().err().map(ToString::to_string))
            .await?;
        result.map_err(|error| StepError::Message(error.to_string()))?;
        effects.health_checked = true;
        Ok(record)
    }

    pub(super) async fn close(
        &self,
        record: &mut StepRecord,
        error: Option<String>,
    ) -> Result<(), StateError> {
        record.status = if error.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Done
        };
        record.error = error;
        record.finished_at = Some(self.now());
        self.store.write_step(record).await
    }

    /// Undoes `journal` in reverse after `failed` failed, restarts and re-checks health.
    async fn roll_back(
        &self,
        failed: &Step,
        error: &str,
        stale: bool,
        journal: Vec<StepRecord>,
    ) -> Result<ApplyOutcome, ApplyError> {
        self.reporter.note(&format!(
            "step {} ({}) failed: {error}\nrolling back",
            failed.index + 1,
            failed.kind.as_str()
        ));
        // The failed step itself may have acted (a failure after acting): undo it too.
        let mut to_undo = journal;
        if let Ok(rows) = self.store.steps(&self.apply_id).await
            && let Some(row) = rows.into_iter().find(|row| row.index == failed.index)
            && row.after_hash.is_some()
        {
            to_undo.push(row);
        }
        let outcome = undo_steps(
            self.store,
            self.plan,
            self.deployment,
            self.api,
            &to_undo,
            self.faults,
            self.reporter,
            self.clock,
        )
        .await;
        let final_health = if outcome.undone_files && self.deployment.restart.is_some() {
            self.reporter
                .note("restarting tldw_server on the restored files, then waiting for its health");
            self.reporter
                .activity("restarting tldw_server and waiting for its health (rollback)");
            Some(restart_and_check(self.deployment).await)
        } else if outcome.undone_files && !self.deployment.health.is_empty() {
            self.reporter
                .note("waiting for tldw_server's health on the restored files");
            self.reporter
                .activity("waiting for tldw_server's health (rollback)");
            Some(
                wait_healthy(
                    &self.deployment.health,
                    Instant::now() + self.deployment.service_timeout,
                )
                .await
                .map_err(|error| error.to_string()),
            )
        } else {
            None
        };
        let failed_step = format!("{} ({})", failed.index + 1, failed.kind.as_str());
        if outcome.errors.is_empty() {
            let message = format!(
                "step {failed_step} failed: {error}; undone: {}",
                if outcome.undone.is_empty() {
                    "nothing".to_string()
                } else {
                    outcome.undone.join(", ")
                }
            );
            self.close_apply(
                Outcome::RolledBack,
                final_health.as_ref().map(Result::is_ok),
                &message,
            )
            .await?;
            Ok(ApplyOutcome::RolledBack {
                apply_id: self.apply_id.clone(),
                failed_step,
                error: error.to_string(),
                undone: outcome.undone,
                final_health,
                stale,
            })
        } else {
            let instructions = instructions_after_failed_undo(&self.apply_id, &outcome.errors);
            let message = format!(
                "step {failed_step} failed: {error}; undo failed: {}",
                outcome.errors.join("; ")
            );
            self.close_apply(
                Outcome::Failed,
                final_health.as_ref().map(Result::is_ok),
                &message,
            )
            .await?;
            Ok(ApplyOutcome::NeedsAttention {
                apply_id: self.apply_id.clone(),
                failed_step,
                error: error.to_string(),
                undo_errors: outcome.errors,
                instructions,
            })
        }
    }
}

/// What undoing a list of steps achieved.
pub struct UndoOutcome {
    pub undone: Vec<String>,
    pub errors: Vec<String>,
    /// Whether a file tldw_server reads at start was restored (a restart is needed).
    pub undone_files: bool,
}

/// Undoes journaled steps in reverse. File steps go back to their checkpoint (or are removed
/// when there was no file) provided the file still holds what the step wrote; a step whose
/// file already holds its before-state is counted as undone. Undo is idempotent.
#[allow(clippy::too_many_arguments)]
pub async fn undo_steps<S: StateStore>(
    store: &S,
    plan: &Plan,
    deployment: &Deployment,
    api: Option<&TldwApi>,
    journal: &[StepRecord],
    faults: &Faults,
    reporter: &dyn Reporter,
    clock: &(dyn Fn() -> Timestamp + Sync),
) -> UndoOutcome {
    let mut outcome = UndoOutcome {
        undone: Vec::new(),
        errors: Vec::new(),
        undone_files: false,
    };
    for row in journal.iter().rev() {
        let Some(step) = plan.steps.iter().find(|step| step.index == row.index) else {
            continue;
        };
        let is_file = matches!(
            step.kind,
            StepKind::EnsureEnvFile | StepKind::EnsureConfigFile
        );
        let is_api = matches!(
            step.kind,
            StepKind::EnsureQuotas | StepKind::EnsureRetention
        );
        let backup = super::backup_steps::undoes(step.kind);
        if !(is_file || is_api || backup) || row.status == StepStatus::Skipped {
            continue;
        }
        reporter.undo_started(step);
        let mut undo_row = row.clone();
        undo_row.status = StepStatus::UndoStarted;
        let _ = store.write_step(&undo_row).await;
        let mut described = None;
        let result = if faults.fail_undo.contains(&step.index) {
            Err("injected undo failure (TLDW_OPS_FAULT)".to_string())
        } else if is_api {
            match (api, &row.before_values) {
                (Some(api), Some(before)) => {
                    super::api_steps::undo(api, step, before).await.map(|text| {
                        described = Some(format!("{} ({}): {text}", step.index + 1, step.target));
                    })
                }
                (None, _) => Err(
                    "the admin API is not configured, so its changes cannot be written back"
                        .to_string(),
                ),
                (_, None) => Ok(()),
            }
        } else if backup {
            super::backup_steps::undo(step, deployment)
                .await
                .map(|text| described = Some(text))
        } else {
            let path = if step.kind == StepKind::EnsureEnvFile {
                &deployment.env_file
            } else {
                &deployment.config_file
            };
            undo_file(row, path).map(|restored| {
                if restored {
                    outcome.undone_files = true;
                }
            })
        };
        reporter.undo_finished(step, &result);
        undo_row.finished_at = Some(clock());
        match result {
            Ok(()) => {
                undo_row.status = StepStatus::Undone;
                outcome.undone.push(
                    described.unwrap_or_else(|| format!("{} ({})", step.index + 1, step.target)),
                );
            }
            Err(error) => {
                undo_row.status = StepStatus::UndoFailed;
                undo_row.error = Some(error.clone());
                outcome.errors.push(format!(
                    "step {} ({}): {error}",
                    step.index + 1,
                    step.target
                ));
            }
        }
        let _ = store.write_step(&undo_row).await;
    }
    outcome
}

/// Restores one file from its checkpoint. Returns whether anything was written.
pub fn undo_file(row: &StepRecord, path: &std::path::Path) -> Result<bool, String> {
    let snapshot = read_snapshot(path).map_err(|error| error.to_string())?;
    let current = snapshot.hash();
    let before = row.before_hash.clone().unwrap_or_default();
    let after = row.after_hash.clone().unwrap_or_default();
    if current == before {
        return Ok(false);
    }
    if current != after {
        return Err(format!(
            "{} changed since this apply wrote it (now {}, wrote {}); not overwriting",
            path.display(),
            show_hash(&current),
            show_hash(&after)
        ));
    }
    match (&row.checkpoint_path, &row.checkpoint_hash) {
        (Some(checkpoint_path), Some(checkpoint_hash)) => {
            let content = checkpoint::load(std::path::Path::new(checkpoint_path), checkpoint_hash)
                .map_err(|error| error.to_string())?;
            let mode = snapshot.mode.unwrap_or(0o600);
            write_atomic_if(path, content.as_bytes(), mode, snapshot.owner, &current)
                .map_err(|error| error.to_string())?;
        }
        _ if before == "absent" => {
            remove_durably(path).map_err(|error| error.to_string())?;
        }
        _ => return Err(format!("no checkpoint was recorded for {}", path.display())),
    }
    Ok(true)
}

/// Restarts (when configured) and waits for the gates.
pub async fn restart_and_check(deployment: &Deployment) -> Result<(), String> {
    let deadline = Instant::now() + deployment.service_timeout;
    if let Some(restart) = &deployment.restart {
        run_command(restart, deployment.service_timeout)
            .await
            .map_err(|error: ServiceError| error.to_string())?;
    }
    if deployment.health.is_empty() {
        return Ok(());
    }
    wait_healthy(&deployment.health, deadline)
        .await
        .map_err(|error| error.to_string())
}

pub fn instructions_after_failed_undo(apply_id: &str, errors: &[String]) -> String {
    format!(
        "Some changes could not be undone automatically:\n  {}\n\
         The journal of apply {apply_id} records every step and its checkpoint.\n\
         To finish by hand: restore each file listed above from its checkpoint \
         (`tldw-ops show {apply_id}` lists the checkpoint paths), restart tldw_server, \
         then run `tldw-ops plan` to confirm the deployment is where you expect.",
        errors.join("\n  ")
    )
}
