//! The kinds of managed thing, one folder each, and the registry that lists them.
//!
//! A kind's I/O half implements [`Provider`]: it performs a step of its kind (with the
//! before-hash precondition and a checkpoint where the kind has one), undoes a journaled step,
//! and says what the deployment holds now for the addresses it owns. The executor, rollback,
//! resume and the stale-plan check loop over [`provider`] and [`owner`] and never match on a
//! kind themselves, so a new kind is one folder here, one line in each of those two matches and
//! its spec field; the matches are exhaustive, so a new `StepKind` or `AddressKind` cannot be
//! silently ignored (docs/adding-a-kind.md walks through one).
//!
//! This module sits below `apply`: a provider sees the apply only through [`StepContext`] and
//! its [`Journal`], so nothing here imports the executor.

pub mod admin_api;
pub mod backups;
pub mod config_file;
pub mod env_file;
pub mod files;
pub mod release;
pub mod service;
pub mod smoke;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use jiff::Timestamp;

use crate::deployment::Deployment;
use crate::faults::{Faults, Point};
use crate::model::{Address, AddressKind, DesiredState, Target};
use crate::plan::{Plan, Step, StepKind};
use crate::providers::tldw_api::TldwApi;
use crate::state::{StateError, StepRecord, StepStatus};

/// A provider's future: boxed so the registry can hand out trait objects. Apply runs on one
/// task, so it need not be `Send`.
pub type StepFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One step's error.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Message(String),
    /// The server says the plan no longer matches it (a stale retention value).
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    File(#[from] crate::providers::files::FileError),
    #[error(transparent)]
    Checkpoint(#[from] crate::providers::checkpoint::CheckpointError),
    #[error(transparent)]
    Service(#[from] crate::providers::service::ServiceError),
    #[error(transparent)]
    EnvFile(#[from] crate::providers::env_file::EnvFileError),
    #[error(transparent)]
    ConfigFile(#[from] crate::providers::config_file::ConfigFileError),
    #[error(transparent)]
    Git(#[from] release::GitError),
}

impl From<String> for StepError {
    fn from(message: String) -> StepError {
        StepError::Message(message)
    }
}

/// What the steps did, for the record the apply writes when it succeeds.
#[derive(Debug, Default)]
pub struct Effects {
    /// Address -> value now in place (`None`: removed).
    pub values: BTreeMap<Address, Option<String>>,
    /// Secret names that got a new value, and whether it was a rotation.
    pub secrets_set: BTreeMap<String, bool>,
    pub health_checked: bool,
}

/// The apply's journal, as a provider sees it.
pub trait Journal {
    fn now(&self) -> Timestamp;
    /// A fresh row for `step` (its kind, target and addresses filled in, started now).
    fn row(&self, step: &Step, status: StepStatus) -> StepRecord;
    fn write<'a>(&'a self, row: &'a StepRecord) -> StepFuture<'a, Result<(), StateError>>;
    /// The rows this apply journaled so far (a resumed apply finds its earlier ones).
    fn rows(&self) -> StepFuture<'_, Result<Vec<StepRecord>, StateError>>;
    /// A line for the operator.
    fn note(&self, text: &str);
}

/// What a provider may read and use while it performs a step.
pub struct StepContext<'a> {
    pub journal: &'a dyn Journal,
    pub plan: &'a Plan,
    pub desired: &'a DesiredState,
    /// The state store's salt, for fingerprints.
    pub salt: &'a [u8],
    /// Values of `from_env`/`from_file` secrets, by secret name.
    pub secret_values: &'a BTreeMap<String, String>,
    pub deployment: &'a Deployment,
    /// Observed canonical values at the start of the apply.
    pub observed: &'a BTreeMap<Address, Option<String>>,
    pub checkpoint_root: &'a Path,
    pub apply_id: &'a str,
    pub faults: &'a Faults,
    /// The admin API, for quota and retention steps.
    pub api: Option<&'a TldwApi>,
    /// Username -> user id, resolved during observe.
    pub user_ids: &'a BTreeMap<String, i64>,
}

impl StepContext<'_> {
    pub fn now(&self) -> Timestamp {
        self.journal.now()
    }

    pub async fn write(&self, row: &StepRecord) -> Result<(), StateError> {
        self.journal.write(row).await
    }

    /// Sleeps at a pause point of the fault-injection hook (test builds only).
    pub async fn pause(&self, step: &Step, point: Point) {
        self.faults.pause_at(step.index, point).await;
    }

    /// Journals `row` as done, or as failed with `error`.
    pub async fn close(
        &self,
        row: &mut StepRecord,
        error: Option<String>,
    ) -> Result<(), StateError> {
        row.status = if error.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Done
        };
        row.error = error;
        row.finished_at = Some(self.now());
        self.write(row).await
    }

    /// Journals `row` as done, or as failed with the error, and returns the step's result.
    pub async fn settle<E: Into<StepError> + ToString>(
        &self,
        mut row: StepRecord,
        result: Result<(), E>,
    ) -> Result<StepRecord, StepError> {
        self.close(&mut row, result.as_ref().err().map(ToString::to_string))
            .await?;
        result.map_err(Into::into)?;
        Ok(row)
    }
}

/// What `plan --diff` shows a file kind.
pub struct PreviewContext<'a> {
    pub files: &'a crate::deployment::ObservedFiles,
    pub salt: &'a [u8],
    /// The addresses the desired state holds sensitive.
    pub sensitive: &'a std::collections::BTreeSet<&'a Address>,
}

/// What undoing a step may use: the journal is the apply's, but the desired state may be gone
/// (a later `rollback --unfinished` has only the plan and the deployment).
pub struct UndoContext<'a> {
    /// The plan being rolled back.
    pub plan: &'a Plan,
    pub deployment: &'a Deployment,
    pub api: Option<&'a TldwApi>,
}

/// Which journaled steps of a kind a rollback undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undoes {
    /// None: the step changes nothing a rollback puts back (a gate, a restart).
    Nothing,
    /// Steps that got as far as recording what they wrote (an after-hash).
    Finished,
    /// Those, and also steps interrupted before that: `rollback --unfinished` undoes them too
    /// (an interrupted create leaves a partial set, an interrupted stop a stopped server).
    Started,
}

/// Where an interrupted step stands (see [`Provider::interrupted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    Done,
    NotDone,
}

/// What undoing one step did.
#[derive(Debug, Default)]
pub struct Undone {
    /// How the report names it, when more than its number and target.
    pub described: Option<String>,
    /// A file tldw_server reads at start was written back: a restart is needed.
    pub restored_files: bool,
}

/// What `rollback <apply-id>` reads to plan the restore of a journaled step: the deployment
/// as observed now.
pub struct RestoreContext<'a> {
    pub apply_id: &'a str,
    pub files: &'a crate::deployment::ObservedFiles,
    pub observed: &'a crate::model::Observed,
    pub salt: &'a [u8],
    /// The addresses the desired state declares sensitive.
    pub sensitive: &'a std::collections::BTreeSet<Address>,
    /// The desired state as the YAML declares it now.
    pub desired: &'a DesiredState,
}

impl RestoreContext<'_> {
    /// The canonical value `address` has now (see `ObservedFiles::now`).
    pub fn now(&self, address: &Address) -> Option<String> {
        self.files.now(self.observed, address)
    }

    /// The stale-plan fingerprint of what `address` holds now.
    pub fn fingerprint(&self, address: &Address) -> String {
        self.now(address)
            .map(|value| crate::secrets::value_hash(self.salt, &value))
            .unwrap_or_else(|| crate::plan::ABSENT.to_string())
    }

    /// The change that puts `then` back where `now` is, masked when sensitive.
    pub fn change(
        &self,
        address: Address,
        now: Option<String>,
        then: Option<String>,
        sensitive: bool,
    ) -> crate::plan::Change {
        use crate::plan::Action;
        let shown = |value: String| crate::secrets::shown(self.salt, &value, sensitive);
        crate::plan::Change {
            action: match (&now, &then) {
                (None, Some(_)) => Action::Create,
                (Some(_), None) => Action::Delete,
                _ => Action::Update,
            },
            address,
            reason: "restoring the value from before the rolled-back apply".to_string(),
            sensitive,
            drift: false,
            before: now.map(shown),
            after: then.map(shown),
            source: None,
        }
    }
}

/// The step that restores what one journaled step replaced, with a change for every value
/// that differs from now (the planner adds their fingerprints).
#[derive(Debug)]
pub struct Restoring {
    pub step: Step,
    pub changes: Vec<crate::plan::Change>,
    /// Whether tldw_server must restart afterwards (it reads the file at start).
    pub restarts: bool,
}

/// The I/O half of a kind.
pub trait Provider: Sync {
    /// Performs `step`: journals it `started` before acting and `done`, `skipped` or `failed`
    /// after, and is idempotent, so a resumed apply may run it again.
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>>;

    /// Which journaled steps of this kind are undone when the apply rolls back.
    fn undoes(&self) -> Undoes {
        Undoes::Nothing
    }

    /// Undoes one journaled step (only called when [`Provider::undoes`]).
    fn undo<'a>(
        &'a self,
        _cx: &'a UndoContext<'a>,
        _step: &'a Step,
        _row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async { Ok(Undone::default()) })
    }

    /// The masked text of the file `step` edits, before and after (`plan --diff`; file kinds).
    fn preview(&self, _step: &Step, _cx: &PreviewContext<'_>) -> Option<(String, String)> {
        None
    }

    /// Where a step stands that was journaled `started` when the apply stopped: whether it
    /// finished acting (a resume counts it done) or must run again. Errors when the deployment
    /// holds neither what the step found nor what it wrote. Steps are idempotent, so by default
    /// they run again.
    fn interrupted(
        &self,
        _row: &StepRecord,
        _deployment: &Deployment,
    ) -> Result<Interrupted, String> {
        Ok(Interrupted::NotDone)
    }

    /// What a completed step of an interrupted run did, for the record of the resumed one.
    fn resumed(&self, _plan: &Plan, _step: &Step, _effects: &mut Effects) {}

    /// The step that puts back what the done step `row` replaced (`rollback <apply-id>`), or
    /// `None` when this kind restores nothing or nothing differs from now.
    fn restoring(
        &self,
        _cx: &RestoreContext<'_>,
        _row: &StepRecord,
    ) -> Result<Option<Restoring>, String> {
        Ok(None)
    }

    /// The fingerprint of what the deployment holds now at each address of `fingerprints`
    /// (address -> fingerprint when the plan was made; all owned by this provider), so the
    /// executor can refuse a plan made against other values. An address left out is not this
    /// provider's to check.
    fn fingerprints_now<'a>(
        &'a self,
        _cx: &'a StepContext<'a>,
        _fingerprints: &'a BTreeMap<String, String>,
    ) -> StepFuture<'a, Result<BTreeMap<String, String>, String>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }
}

pub use crate::plan::kind::{Kind, LikelyCause};

/// The kind that owns addresses of `kind`: its pure half, which the pipeline passes to the
/// core as its [`crate::plan::Registry`].
pub fn kind(kind: AddressKind) -> &'static dyn Kind {
    match kind {
        AddressKind::Env => &env_file::kind::Env,
        AddressKind::Secret => &env_file::kind::Secrets,
        AddressKind::Config => &config_file::kind::Config,
        AddressKind::QuotaUser => &admin_api::kind::Quotas,
        AddressKind::Retention => &admin_api::kind::Retention,
        AddressKind::BackupSet => &backups::kind::BackupSets,
        AddressKind::Release => &release::kind::Release,
    }
}

/// Who or what most likely changed `address`, by its kind.
pub fn likely_cause(address: &Address) -> LikelyCause {
    kind(address.kind()).likely_cause(address)
}

/// The provider that performs a step of `kind`.
pub fn provider(kind: StepKind) -> &'static dyn Provider {
    match kind {
        StepKind::EnsureEnvFile => &env_file::EnvFileProvider,
        StepKind::EnsureConfigFile => &config_file::ConfigFileProvider,
        StepKind::EnsureQuotas | StepKind::EnsureRetention => &admin_api::AdminApiProvider,
        StepKind::CreateBackup => &backups::CreateBackup,
        StepKind::PruneBackups => &backups::PruneBackups,
        StepKind::RestoreBackup => &backups::RestoreBackup,
        StepKind::Restart => &service::Restart,
        StepKind::HealthGate => &service::HealthGate,
        StepKind::StopService => &service::StopService,
        StepKind::StartService => &service::StartService,
        StepKind::SmokeGate => &smoke::SmokeGate,
        StepKind::SwitchRelease => &release::SwitchRelease,
    }
}

/// The provider that owns the addresses of `target` (see [`AddressKind::target`]): it says what
/// the deployment holds there now.
pub fn owner(target: Target) -> &'static dyn Provider {
    match target {
        Target::EnvFile => &env_file::EnvFileProvider,
        Target::ConfigFile => &config_file::ConfigFileProvider,
        Target::Api => &admin_api::AdminApiProvider,
        Target::Backups => &backups::CreateBackup,
        Target::Checkout => &release::SwitchRelease,
    }
}

/// The provider of a journaled row's kind, when the kind is one this build knows.
pub fn provider_of_row(kind: &str) -> Option<&'static dyn Provider> {
    StepKind::ALL
        .iter()
        .find(|step| step.as_str() == kind)
        .map(|step| provider(*step))
}
