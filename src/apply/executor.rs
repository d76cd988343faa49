//! The executor: runs a plan's steps with journal, checkpoints, health gates and automatic
//! rollback. It makes no choices the plan did not make: values come from the desired state the
//! plan pins (by hash) or are generated here for `generate` secrets, and nothing else.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::undo::{instructions_after_failed_undo, undo_steps};
use crate::deployment::Deployment;
use crate::faults::Faults;
use crate::kinds::service::restart_and_check;
use crate::kinds::{self, Effects, Journal, StepContext, StepError, StepFuture};
use crate::model::{Address, AddressKind, Desired, DesiredState, SecretSource, Target};
use crate::plan::{Plan, Step};
use crate::providers::checkpoint::{self, CheckpointError};
use crate::providers::files::DirectoryLocks;
use crate::providers::tldw_api::TldwApi;
use crate::secrets::value_hash;
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
        // The plan's fingerprints, grouped by the provider that owns each address.
        let mut by_target: BTreeMap<Target, BTreeMap<String, String>> = BTreeMap::new();
        for (address, then) in &self.plan.fingerprints {
            if let Ok(parsed) = Address::parse(address) {
                by_target
                    .entry(parsed.kind().target())
                    .or_default()
                    .insert(address.clone(), then.clone());
            }
        }
        let cx = self.step_context();
        let mut moved = Vec::new();
        for (target, fingerprints) in &by_target {
            let now = kinds::owner(*target)
                .fingerprints_now(&cx, fingerprints)
                .await?;
            for (address, then) in fingerprints {
                if let Some(now) = now.get(address)
                    && now != then
                {
                    moved.push((*target, address.clone(), then.clone(), now.clone()));
                }
            }
        }
        // Files in address order (the `.env` and config.txt interleaved), then the API.
        moved.sort_by(|a, b| ((a.0 == Target::Api), &a.1).cmp(&((b.0 == Target::Api), &b.1)));
        Ok(moved
            .into_iter()
            .map(|(_, address, then, now)| (address, then, now))
            .collect())
    }

    /// What a provider sees of this apply.
    fn step_context(&self) -> StepContext<'_> {
        StepContext {
            journal: self,
            plan: self.plan,
            desired: self.desired,
            salt: self.state.salt.as_slice(),
            secret_values: self.secret_values,
            deployment: self.deployment,
            observed: self.observed,
            checkpoint_root: &self.checkpoint_root,
            apply_id: &self.apply_id,
            faults: self.faults,
            api: self.api,
            user_ids: self.user_ids,
        }
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
        // What steps an earlier, interrupted run completed did.
        for row in &journal {
            if row.status != StepStatus::Done {
                continue;
            }
            if let Some(step) = self.plan.steps.iter().find(|step| step.index == row.index) {
                kinds::provider(step.kind).resumed(self.plan, step, &mut effects);
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
        let record = kinds::backups::records_managed_state(self.kind).then(|| self.record(effects));
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
        let cx = self.step_context();
        let result = kinds::provider(step.kind).ensure(&cx, step, effects).await;
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
        )
        .await;
        let final_health = if outcome.undone_files && self.deployment.restart.is_some() {
            self.reporter
                .note("restarting tldw_server on the restored files, then waiting for its health");
            self.reporter
                .activity("restarting tldw_server and waiting for its health (rollback)");
            Some(restart_and_check(self.deployment, self.api, true).await)
        } else if outcome.undone_files
            && !(self.deployment.health.is_empty() && self.deployment.smoke.is_empty())
        {
            self.reporter
                .note("waiting for tldw_server's health on the restored files");
            self.reporter
                .activity("waiting for tldw_server's health (rollback)");
            Some(restart_and_check(self.deployment, self.api, false).await)
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

impl<S: StateStore> Journal for ApplyContext<'_, S> {
    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn row(&self, step: &Step, status: StepStatus) -> StepRecord {
        self.step_record(step, status)
    }

    fn write<'a>(&'a self, row: &'a StepRecord) -> StepFuture<'a, Result<(), StateError>> {
        Box::pin(self.store.write_step(row))
    }

    fn rows(&self) -> StepFuture<'_, Result<Vec<StepRecord>, StateError>> {
        Box::pin(self.store.steps(&self.apply_id))
    }

    fn note(&self, text: &str) {
        self.reporter.note(text);
    }
}
