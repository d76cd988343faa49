//! `apply [FILE | PLAN.json]` and `apply --resume`: the plan to apply (made now by
//! `ops::plan`, or read from a file saved by `plan --out` and checked against the deployment as
//! it is now), the executor's context for it, the last check before the first step (did
//! anything move while waiting for the lock or the confirmation) and the run itself, which
//! returns how the apply ended; for `--resume`, the unfinished apply and the rest of its run.
//! `cli::apply` prints the plan, the progress and the outcome, runs the promotion gate, asks for
//! confirmation and picks the exit status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::apply::recover::{resume, take_over_lock};
use crate::apply::{ApplyContext, ApplyError, ApplyOutcome, Reporter, new_apply_id};
use crate::faults::Faults;
use crate::model::Address;
use crate::pipeline::{self, Loaded, Moved, PipelineError, Prepared, staleness, state_location};
use crate::plan::{FORMAT_VERSION, Plan};
use crate::providers::checkpoint;
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, LockHolder, StateError, StateStore, StepRecord};

/// What an `apply` or `show` target is.
pub enum SavedPlan {
    Plan(Box<Plan>),
    /// A `.json` file that is not a plan this tldw-ops reads.
    Invalid(PlanFileError),
    /// Not a `.json` file: a desired-state file.
    NotAPlan,
}

/// Why a `.json` target is not a plan this tldw-ops reads.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plan refused: {0}")]
    Refused(crate::limits::ReadError),
    #[error("plan {} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error(
        "plan {} has format version {found}; this tldw-ops reads version {FORMAT_VERSION}",
        path.display()
    )]
    FormatVersion { path: PathBuf, found: u32 },
    #[error("{} is not a tldw-ops plan file: {error}", path.display())]
    NotAPlanFile {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// A `.json` target is a saved plan; anything else is a desired-state file.
pub fn read_saved_plan(target: &Path) -> SavedPlan {
    if target.extension().and_then(|extension| extension.to_str()) != Some("json") {
        return SavedPlan::NotAPlan;
    }
    let path = target.to_path_buf();
    let bytes = match crate::limits::read_regular_file(target, crate::limits::MAX_PLAN_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(crate::limits::ReadError::Io { source, .. }) => {
            return SavedPlan::Invalid(PlanFileError::Unreadable { path, source });
        }
        Err(refused) => return SavedPlan::Invalid(PlanFileError::Refused(refused)),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return SavedPlan::Invalid(PlanFileError::NotText { path });
    };
    match serde_json::from_str::<Plan>(&text) {
        Ok(plan) if plan.format_version == FORMAT_VERSION => SavedPlan::Plan(Box::new(plan)),
        Ok(plan) => SavedPlan::Invalid(PlanFileError::FormatVersion {
            path,
            found: plan.format_version,
        }),
        Err(error) => SavedPlan::Invalid(PlanFileError::NotAPlanFile { path, error }),
    }
}

/// Loads the desired state in `file` for an apply and observes its deployment.
pub async fn prepare(file: &Path, settings: &Settings) -> Result<Prepared, PipelineError> {
    let loaded = pipeline::load(file, settings, false).await?;
    pipeline::observe(loaded).await
}

/// `backup` for a plan that changes backup sets and nothing else (`--only backup`, or a plan
/// saved from one): it records no managed state, since with other changes left out the record
/// would forget values still waiting to be applied or removed.
pub fn apply_kind(plan: &Plan) -> &'static str {
    if crate::plan::backups::is_backup_only(plan) {
        "backup"
    } else {
        "apply"
    }
}

/// Whether an empty plan still has something to record: addresses tldw-ops starts managing
/// (adopting values already in place) or secrets whose age starts counting now.
pub fn needs_record(prepared: &Prepared) -> bool {
    let loaded = &prepared.loaded;
    let managed: std::collections::BTreeSet<&str> =
        loaded.state.managed.keys().map(String::as_str).collect();
    let desired: std::collections::BTreeSet<&str> = loaded
        .desired
        .resources
        .keys()
        .filter(|address| prepared.observed.get(address).canonical().is_some())
        .map(|address| address.as_str())
        .collect();
    // A value changed outside tldw-ops that the YAML now declares (`drift --adopt`) leaves the
    // plan empty but the recorded hash stale; recording it ends the drift.
    let stale = loaded.state.managed.iter().any(|(address, record)| {
        Address::parse(address)
            .ok()
            .filter(|address| loaded.desired.resources.contains_key(address))
            .and_then(|address| prepared.observed.get(&address).canonical())
            .is_some_and(|value| {
                crate::secrets::value_hash(&loaded.state.salt, &value) != record.value_hash
            })
    });
    managed != desired
        || stale
        || loaded
            .desired
            .resources
            .keys()
            .filter(|address| address.kind() == crate::model::AddressKind::Secret)
            .any(|address| !loaded.state.secrets.contains_key(address.name()))
}

/// Whether policy is checked on what an apply of `plan` would leave behind: not for the backup
/// part alone (`only_backup`, or a plan of backup sets alone), which changes no managed value.
pub fn checks_policy(plan: &Plan, only_backup: bool) -> bool {
    !only_backup && !crate::plan::backups::is_backup_only(plan)
}

/// What applying a plan comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing to change and nothing to record.
    Nothing,
    /// Nothing changes, but the record is written ([`needs_record`]): nothing to confirm.
    RecordOnly,
    /// The plan changes something.
    Changes,
}

/// What applying `plan` over `prepared` comes to; the backup part alone (`only_backup`) records
/// nothing when it changes nothing.
pub fn work(prepared: &Prepared, plan: &Plan, only_backup: bool) -> Work {
    if !plan.is_empty() {
        Work::Changes
    } else if !only_backup && needs_record(prepared) {
        Work::RecordOnly
    } else {
        Work::Nothing
    }
}

/// Why a saved plan is not applied.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error(
        "the plan was made from commit {}, but --require-commit asks for {required}",
        commit.as_deref().unwrap_or("(none: not in a git checkout)")
    )]
    OtherCommit {
        commit: Option<String>,
        required: String,
    },
    #[error(
        "the plan was made from {}, which is neither at {} nor at {}; pass it with --file",
        recorded.display(),
        beside.display(),
        here.display()
    )]
    NoDesiredFile {
        recorded: PathBuf,
        beside: PathBuf,
        here: PathBuf,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the plan is for environment {plan}, but {} describes {desired}", file.display())]
    OtherEnvironment {
        plan: String,
        file: PathBuf,
        desired: String,
    },
    /// Addresses the plan touches moved since it was made, or the desired state resolves
    /// differently; `fresh` is the plan made now instead.
    #[error("the saved plan is stale; nothing was applied.")]
    Stale {
        moved: Vec<Moved>,
        reasons: Vec<String>,
        fresh: Box<Plan>,
    },
    /// Planned again at the plan's own time, the plan's `what` come out otherwise.
    #[error(
        "the saved plan's {what} are not what the desired state and the deployment give \
         when planned again at the plan's time ({created_at}): the file was edited, or was made by \
         another version of tldw-ops; nothing was applied. Make a new plan file."
    )]
    Edited {
        what: &'static str,
        created_at: String,
    },
}

/// The desired-state file of a saved plan. The plan records it as given to `plan`, relative
/// to the directory `plan` ran in, which is most often the plan file's own; so it is looked
/// for beside the plan file first, then in the current directory, and an absolute path is
/// taken as it is. `--file` overrides all of this.
pub fn saved_plan_file(plan_path: &Path, recorded: &str) -> Result<PathBuf, SavedPlanError> {
    let recorded = Path::new(recorded);
    if recorded.is_absolute() {
        return Ok(recorded.to_path_buf());
    }
    let beside = plan_path
        .parent()
        .map(|directory| directory.join(recorded))
        .unwrap_or_else(|| recorded.to_path_buf());
    let candidates = [beside, recorded.to_path_buf()];
    if let Some(found) = candidates.iter().find(|candidate| candidate.is_file()) {
        return Ok(found.clone());
    }
    let [beside, here] = candidates;
    Err(SavedPlanError::NoDesiredFile {
        recorded: recorded.to_path_buf(),
        beside,
        here,
    })
}

/// What `apply PLAN.json` was given besides the plan.
pub struct SavedPlanRequest<'a> {
    /// The plan file, for finding the desired-state file beside it.
    pub plan_path: &'a Path,
    /// `--file`: the desired-state file, instead of the one the plan names.
    pub file: Option<&'a Path>,
    /// `--require-commit`.
    pub require_commit: Option<&'a str>,
}

/// The deployment a saved plan applies to, observed now, once the plan is found to still be
/// the one this tool would make: from the commit asked for, for the same environment, nothing
/// it touches moved, and planning again at its time gives the same plan.
pub async fn prepare_saved(
    plan: &Plan,
    request: &SavedPlanRequest<'_>,
    settings: &Settings,
) -> Result<Prepared, SavedPlanError> {
    if let Some(required) = request.require_commit {
        let matches = plan
            .git_commit
            .as_deref()
            .is_some_and(|commit| !required.is_empty() && commit.starts_with(required));
        if !matches {
            return Err(SavedPlanError::OtherCommit {
                commit: plan.git_commit.clone(),
                required: required.to_string(),
            });
        }
    }
    let file = match request.file {
        Some(file) => file.to_path_buf(),
        None => saved_plan_file(request.plan_path, &plan.file)?,
    };
    let prepared = prepare(&file, settings).await?;
    if prepared.loaded.desired.environment != plan.environment {
        return Err(SavedPlanError::OtherEnvironment {
            plan: plan.environment.to_string(),
            file,
            desired: prepared.loaded.desired.environment.to_string(),
        });
    }
    let (moved, reasons) = staleness(plan, &prepared);
    if !moved.is_empty() || !reasons.is_empty() {
        let fresh = Box::new(pipeline::make_plan(&prepared, settings.now()));
        return Err(SavedPlanError::Stale {
            moved,
            reasons,
            fresh,
        });
    }
    if let Some(what) = differs_from_replan(plan, &prepared) {
        return Err(SavedPlanError::Edited {
            what,
            created_at: plan.created_at.clone(),
        });
    }
    Ok(prepared)
}

/// Plans again, at the saved plan's own time, and names the part of the saved plan that
/// differs. With the fingerprints and the desired hash unchanged the plan is reproducible, so
/// any difference is an edit of the file: it is refused before anything runs, not when the
/// executor meets the edited value halfway through.
fn differs_from_replan(plan: &Plan, prepared: &Prepared) -> Option<&'static str> {
    let Ok(at) = plan.created_at.parse::<jiff::Timestamp>() else {
        return Some("creation time");
    };
    let fresh = pipeline::make_plan(prepared, at);
    // A plan of backups alone may have been made with `--only backup`: either plan is one this
    // tool could have made.
    let backups_only = crate::plan::backups::is_backup_only(plan)
        .then(|| pipeline::only_backups(prepared, fresh.clone(), at).ok())
        .flatten();
    fn json<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
        serde_json::to_value(value).ok()
    }
    // Paths for people (a change's source file, a step's target) are shown relative to the
    // directory the command runs in, so a plan applied from another directory names them
    // differently: `site/.env` then, `/srv/x/site/.env` now. They are compared as the same
    // path seen from two places; everything else must be equal.
    fn same_place(then: &str, now: &str) -> bool {
        then == now || Path::new(now).ends_with(then) || Path::new(then).ends_with(now)
    }
    fn changes_json(changes: &[crate::plan::Change]) -> Option<serde_json::Value> {
        let mut changes = changes.to_vec();
        for change in &mut changes {
            if let Some(source) = &mut change.source {
                source.file.clear();
            }
        }
        json(&changes)
    }
    fn steps_json(steps: &[crate::plan::Step]) -> Option<serde_json::Value> {
        let mut steps = steps.to_vec();
        for step in &mut steps {
            step.target.clear();
        }
        json(&steps)
    }
    let same_changes = |fresh: &Plan| {
        changes_json(&plan.changes) == changes_json(&fresh.changes)
            && plan.changes.iter().zip(&fresh.changes).all(|(then, now)| {
                match (&then.source, &now.source) {
                    (Some(then), Some(now)) => same_place(&then.file, &now.file),
                    (None, None) => true,
                    _ => false,
                }
            })
    };
    let same_steps = |fresh: &Plan| {
        steps_json(&plan.steps) == steps_json(&fresh.steps)
            && plan
                .steps
                .iter()
                .zip(&fresh.steps)
                .all(|(then, now)| same_place(&then.target, &now.target))
    };
    let differs = |fresh: &Plan| {
        if !same_changes(fresh) {
            Some("changes")
        } else if !same_steps(fresh) {
            Some("steps")
        } else if json(&plan.fingerprints) != json(&fresh.fingerprints) {
            Some("fingerprints")
        } else {
            None
        }
    };
    let full = differs(&fresh);
    match (full, backups_only.as_ref().map(differs)) {
        (None, _) | (_, Some(None)) => None,
        (Some(what), _) => Some(what),
    }
}

/// What an apply context takes besides the prepared pipeline.
pub struct Parts<'a> {
    pub observed: &'a BTreeMap<Address, Option<String>>,
    pub faults: &'a Faults,
    pub reporter: &'a dyn Reporter,
    pub clock: &'a (dyn Fn() -> Timestamp + Sync),
    pub apply_id: String,
    pub kind: &'a str,
    pub override_reason: Option<&'a str>,
}

/// The executor's context for `plan` over a prepared pipeline.
pub fn apply_context<'a>(
    prepared: &'a Prepared,
    plan: &'a Plan,
    settings: &'a Settings,
    parts: Parts<'a>,
) -> ApplyContext<'a, crate::state::Store> {
    let loaded = &prepared.loaded;
    ApplyContext {
        store: &loaded.store,
        key: &loaded.key,
        plan,
        desired: &loaded.desired,
        state: &loaded.state,
        secret_values: &loaded.secret_values,
        deployment: &loaded.deployment,
        observed: parts.observed,
        checkpoint_root: checkpoint::root_for(
            &state_location(&loaded.file, settings),
            &loaded.file,
        ),
        faults: parts.faults,
        reporter: parts.reporter,
        apply_id: parts.apply_id,
        kind: parts.kind,
        user: &settings.user,
        host: &settings.host,
        override_reason: parts.override_reason,
        clock: parts.clock,
        api: loaded.api.as_ref(),
        user_ids: &prepared.user_ids,
        target_locks: std::sync::OnceLock::new(),
    }
}

/// Why an apply did not start, or did not end with an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The plan went stale while waiting for the lock or the confirmation: these addresses
    /// (with their fingerprints then and now) moved. The apply is journaled as rolled back.
    #[error("the plan went stale while waiting for the lock or the confirmation")]
    Moved(Vec<(String, String, String)>),
    /// Whether anything moved could not be told. The apply is journaled as rolled back.
    #[error("{0}")]
    Unchecked(String),
}

/// Locks and journals the apply of `context`, checks that nothing its plan touches moved since
/// the plan was made, and runs it. Returns how it ended and how long the run took.
pub async fn execute(
    context: &ApplyContext<'_, crate::state::Store>,
) -> Result<(ApplyOutcome, Duration), ExecuteError> {
    context.begin().await?;
    match context.moved_since_plan().await {
        Ok(moved) if moved.is_empty() => {}
        Ok(moved) => {
            let _ = context
                .abandon_stale("stale plan: nothing was applied")
                .await;
            return Err(ExecuteError::Moved(moved));
        }
        Err(error) => {
            let _ = context.abandon_stale(&error).await;
            return Err(ExecuteError::Unchecked(error));
        }
    }
    let started = Instant::now();
    let outcome = context.run(0, Vec::new()).await?;
    Ok((outcome, started.elapsed()))
}

/// Runs `plan` over `prepared` as a new apply of `kind`: a fresh apply id, the observed values
/// and the executor's context, then [`execute`]. `override_reason` is why the promotion gate
/// was overridden, recorded with the apply.
pub async fn apply(
    prepared: &Prepared,
    plan: &Plan,
    settings: &Settings,
    faults: &Faults,
    reporter: &dyn Reporter,
    kind: &str,
    override_reason: Option<&str>,
) -> Result<(ApplyOutcome, Duration), ExecuteError> {
    let job = Job {
        faults,
        reporter,
        apply_id: new_apply_id(settings.now()),
        kind,
        override_reason,
    };
    in_context(prepared, plan, settings, job, execute).await
}

/// What an executor's context takes besides the prepared pipeline, the plan and the settings.
struct Job<'a> {
    faults: &'a Faults,
    reporter: &'a dyn Reporter,
    apply_id: String,
    kind: &'a str,
    override_reason: Option<&'a str>,
}

/// Runs `run` in the executor's context of `job` for `plan` over `prepared`, with the values
/// observed now and the settings' clock.
async fn in_context<T>(
    prepared: &Prepared,
    plan: &Plan,
    settings: &Settings,
    job: Job<'_>,
    run: impl AsyncFnOnce(&ApplyContext<'_, crate::state::Store>) -> T,
) -> T {
    let observed = pipeline::observed_values(prepared);
    let clock = || settings.now();
    let parts = Parts {
        observed: &observed,
        faults: job.faults,
        reporter: job.reporter,
        clock: &clock,
        apply_id: job.apply_id,
        kind: job.kind,
        override_reason: job.override_reason,
    };
    run(&apply_context(prepared, plan, settings, parts)).await
}

/// Why an unfinished apply is not resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "{} resolves differently from when apply {id} started; restore it to resume, or undo the apply with `tldw-ops rollback --unfinished`",
        file.display()
    )]
    ResolvesDifferently { file: PathBuf, id: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The journal and the checkpoints do not tell where to go on from; the lock is released.
    #[error(
        "apply {id} cannot be resumed: {problem}\nUndo it with `tldw-ops rollback --unfinished`, or restore the file from its checkpoint (`tldw-ops show {id}`)."
    )]
    CannotResume { id: String, problem: String },
}

/// An apply that did not finish, and what `apply --resume` and `rollback --unfinished` need of
/// it.
pub struct Unfinished {
    /// The desired state, loaded even though an apply is unfinished.
    pub loaded: Loaded,
    /// The unfinished apply.
    pub record: ApplyRecord,
    /// The plan it was executing.
    pub plan: Plan,
}

/// Why there is no unfinished apply to go on with.
#[derive(Debug, thiserror::Error)]
pub enum UnfinishedError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    State(#[from] StateError),
    /// The environment has no unfinished apply.
    #[error("environment {0} has no unfinished apply")]
    NoneUnfinished(EnvironmentKey),
    /// The plan the journal holds for the unfinished apply does not read.
    #[error("{0}")]
    UnreadablePlan(String),
}

/// For `apply --resume` and `rollback --unfinished`: the desired state in `file`, the apply of
/// its environment that did not finish, and the plan it was executing.
pub async fn load_unfinished(
    file: &Path,
    settings: &Settings,
) -> Result<Unfinished, UnfinishedError> {
    let loaded = pipeline::load(file, settings, true).await?;
    let Some(record) = loaded.store.unfinished_apply(&loaded.key).await? else {
        return Err(UnfinishedError::NoneUnfinished(loaded.key.clone()));
    };
    let plan = crate::apply::recover::plan_of(&record).map_err(UnfinishedError::UnreadablePlan)?;
    Ok(Unfinished {
        loaded,
        record,
        plan,
    })
}

/// Takes over the lock an unfinished apply `apply_id` of the environment of `loaded` left,
/// for this process, to resume or undo it.
pub async fn take_over(
    loaded: &Loaded,
    apply_id: &str,
    settings: &Settings,
) -> Result<(), StateError> {
    let holder = LockHolder {
        apply_id: apply_id.to_string(),
        host: settings.host.clone(),
        pid: std::process::id(),
        started_at: settings.now(),
    };
    take_over_lock(&loaded.store, &loaded.key, &holder, &settings.host).await
}

/// For `apply --resume`: takes over the lock of `unfinished` (when `file`, loaded as `loaded`,
/// still resolves as it did), reads the steps it journaled and observes the deployment.
pub async fn prepare_resume(
    loaded: Loaded,
    unfinished: &ApplyRecord,
    file: &Path,
    settings: &Settings,
) -> Result<(Prepared, Vec<StepRecord>), ResumeError> {
    if unfinished.desired_hash != loaded.desired_hash {
        return Err(ResumeError::ResolvesDifferently {
            file: file.to_path_buf(),
            id: unfinished.id.clone(),
        });
    }
    take_over(&loaded, &unfinished.id, settings).await?;
    let rows = loaded.store.steps(&unfinished.id).await?;
    let prepared = pipeline::observe(loaded).await?;
    Ok((prepared, rows))
}

/// The kind a resumed apply is journaled as: a resumed backup-only apply or restore still
/// records no managed state.
pub fn resume_kind(kind: &str) -> &str {
    if crate::kinds::backups::records_managed_state(kind) {
        "resume"
    } else {
        kind
    }
}

/// Resumes the unfinished apply `unfinished` (whose journaled steps are `rows`) over
/// `prepared`: its context, journaled under its own id and as [`resume_kind`] of its kind, then
/// [`resume_run`].
pub async fn resume_unfinished(
    prepared: &Prepared,
    plan: &Plan,
    unfinished: &ApplyRecord,
    rows: &[StepRecord],
    settings: &Settings,
    faults: &Faults,
    reporter: &dyn Reporter,
) -> Result<(ApplyOutcome, Duration), ResumeError> {
    let job = Job {
        faults,
        reporter,
        apply_id: unfinished.id.clone(),
        kind: resume_kind(&unfinished.kind),
        override_reason: None,
    };
    in_context(prepared, plan, settings, job, async |context| {
        resume_run(context, rows).await
    })
    .await
}

/// Runs the rest of the unfinished apply of `context` (whose journaled steps are `rows`) and
/// returns how it ended and how long it took.
pub async fn resume_run(
    context: &ApplyContext<'_, crate::state::Store>,
    rows: &[StepRecord],
) -> Result<(ApplyOutcome, Duration), ResumeError> {
    context.lock_targets()?;
    let started = Instant::now();
    match resume(context, rows).await? {
        Ok(outcome) => Ok((outcome, started.elapsed())),
        Err(problem) => {
            let _ = context.store.unlock(context.key, &context.apply_id).await;
            Err(ResumeError::CannotResume {
                id: context.apply_id.clone(),
                problem,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_plan_finds_its_desired_file_beside_it_and_names_both_places_when_it_cannot() {
        let directory = tempfile::tempdir().unwrap();
        let plan_path = directory.path().join("plan.json");
        let error = saved_plan_file(&plan_path, "tldw-ops.yaml").unwrap_err();
        assert!(matches!(error, SavedPlanError::NoDesiredFile { .. }));
        assert_eq!(
            error.to_string(),
            format!(
                "the plan was made from tldw-ops.yaml, which is neither at {} nor at \
                 tldw-ops.yaml; pass it with --file",
                directory.path().join("tldw-ops.yaml").display()
            )
        );
        std::fs::write(directory.path().join("tldw-ops.yaml"), "").unwrap();
        assert_eq!(
            saved_plan_file(&plan_path, "tldw-ops.yaml").unwrap(),
            directory.path().join("tldw-ops.yaml")
        );
        assert_eq!(
            saved_plan_file(&plan_path, "/srv/tldw/tldw-ops.yaml").unwrap(),
            PathBuf::from("/srv/tldw/tldw-ops.yaml")
        );
    }

    #[test]
    fn only_a_json_target_is_read_as_a_plan_and_a_broken_one_says_why() {
        let directory = tempfile::tempdir().unwrap();
        let yaml = directory.path().join("tldw-ops.yaml");
        assert!(matches!(read_saved_plan(&yaml), SavedPlan::NotAPlan));
        let json = directory.path().join("plan.json");
        std::fs::write(&json, "{}").unwrap();
        match read_saved_plan(&json) {
            SavedPlan::Invalid(error @ PlanFileError::NotAPlanFile { .. }) => assert!(
                error
                    .to_string()
                    .starts_with(&format!("{} is not a tldw-ops plan file: ", json.display()))
            ),
            _ => panic!("an empty object is not a plan"),
        }
    }

    #[test]
    fn a_resumed_apply_keeps_a_kind_that_records_no_managed_state() {
        assert_eq!(resume_kind("apply"), "resume");
        assert_eq!(resume_kind("backup"), "backup");
        assert_eq!(resume_kind("restore"), "restore");
    }
}
