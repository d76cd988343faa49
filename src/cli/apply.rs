//! `tldw-ops apply [FILE | PLAN.json]`: plan (or load a reviewed plan), confirm, and execute it
//! step by step with automatic rollback. `--resume` finishes an interrupted apply.

use std::path::{Path, PathBuf};

use super::common::{LineReporter, confirm, report_pipeline_error, report_state_error, runtime};
use super::output::Style;
use super::plan::{Format, print_plan, print_warnings};
use super::{ExitStatus, Printer, desired_file};
use crate::apply::recover::{resume, take_over_lock};
use crate::apply::{ApplyContext, ApplyError, ApplyOutcome, new_apply_id};
use crate::faults::Faults;
use crate::pipeline::{self, PipelineError, Prepared, observed_values, staleness, state_location};
use crate::plan::{FORMAT_VERSION, Plan, render};
use crate::providers::checkpoint;
use crate::settings::Settings;
use crate::state::{LockHolder, StateStore};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A desired-state file (default tldw-ops.yaml), or a plan saved with `plan --out`.
    target: Option<PathBuf>,
    /// Apply without asking for confirmation.
    #[arg(long)]
    auto_approve: bool,
    /// Finish an apply that was interrupted (crash, kill, power loss).
    #[arg(long, conflicts_with = "target")]
    resume: bool,
    /// The desired-state file, when applying a saved plan or resuming (default: the file the
    /// plan names).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Refuse a saved plan that was not made from this git commit.
    #[arg(long, value_name = "SHA")]
    require_commit: Option<String>,
    /// Apply even though the promotion gate refuses; the reason is recorded with the apply.
    #[arg(long, value_name = "REASON", conflicts_with = "resume", value_parser = super::gate::reason)]
    override_promotion: Option<String>,
    /// Apply only this part of the desired state. `--only backup` creates a backup set when one
    /// is due and deletes the sets the keep policy releases, and changes nothing else (what
    /// `backup schedule` runs).
    #[arg(long, value_enum, value_name = "PART", conflicts_with = "resume")]
    only: Option<super::common::Part>,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let faults = match super::common::faults(settings, printer) {
        Ok(faults) => faults,
        Err(status) => return status,
    };
    let runtime = runtime();
    if args.resume {
        return runtime.block_on(resume_command(&args, settings, printer, &faults));
    }
    let target = args.target.clone().unwrap_or_else(|| desired_file(None));
    match read_saved_plan(&target) {
        SavedPlan::Plan(_) if args.only.is_some() => {
            printer.error("--only applies to a desired-state file; a saved plan is applied whole");
            ExitStatus::Error
        }
        SavedPlan::Plan(plan) => runtime.block_on(apply_saved(
            *plan, &target, &args, settings, printer, &faults,
        )),
        SavedPlan::Invalid(message) => {
            printer.error(&message);
            ExitStatus::Error
        }
        SavedPlan::NotAPlan => {
            runtime.block_on(apply_file(&target, &args, settings, printer, &faults))
        }
    }
}

pub(super) enum SavedPlan {
    Plan(Box<Plan>),
    Invalid(String),
    NotAPlan,
}

/// A `.json` target is a saved plan; anything else is a desired-state file.
pub(super) fn read_saved_plan(target: &Path) -> SavedPlan {
    if target.extension().and_then(|extension| extension.to_str()) != Some("json") {
        return SavedPlan::NotAPlan;
    }
    let bytes = match crate::limits::read_regular_file(target, crate::limits::MAX_PLAN_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(crate::limits::ReadError::Io { source, .. }) => {
            return SavedPlan::Invalid(format!("cannot read plan {}: {source}", target.display()));
        }
        Err(refused) => return SavedPlan::Invalid(format!("plan refused: {refused}")),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return SavedPlan::Invalid(format!("plan {} is not UTF-8 text", target.display()));
    };
    match serde_json::from_str::<Plan>(&text) {
        Ok(plan) if plan.format_version == FORMAT_VERSION => SavedPlan::Plan(Box::new(plan)),
        Ok(plan) => SavedPlan::Invalid(format!(
            "plan {} has format version {}; this tldw-ops reads version {FORMAT_VERSION}",
            target.display(),
            plan.format_version
        )),
        Err(error) => SavedPlan::Invalid(format!(
            "{} is not a tldw-ops plan file: {error}",
            target.display()
        )),
    }
}

async fn prepare(file: &Path, settings: &Settings) -> Result<Prepared, PipelineError> {
    let loaded = pipeline::load(file, settings, false).await?;
    pipeline::observe(loaded).await
}

async fn apply_file(
    file: &Path,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let prepared = match prepare(file, settings).await {
        Ok(prepared) => prepared,
        Err(error) => return report_pipeline_error(error, printer),
    };
    let status = apply_prepared(&prepared, args, settings, printer, faults).await;
    // A clean close checkpoints the journal into the state database, so no -wal is left.
    prepared.loaded.store.close().await;
    status
}

async fn apply_prepared(
    prepared: &pipeline::Prepared,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let plan = pipeline::make_plan(prepared, settings.now());
    let plan = match args.only {
        None => plan,
        Some(super::common::Part::Backup) => {
            match crate::pipeline::only_backups(prepared, plan, settings.now()) {
                Ok(plan) => plan,
                Err(message) => {
                    printer.error(&message);
                    return ExitStatus::Error;
                }
            }
        }
    };
    print_warnings(prepared, &plan, printer);
    if args.only.is_none()
        && !crate::plan::backups::is_backup_only(&plan)
        && let Err(status) = super::common::check_effective_policy(prepared, &plan, printer)
    {
        return status;
    }
    if plan.is_empty() {
        print_plan(&plan, Format::Text, printer);
        if args.only.is_none() && needs_record(prepared) {
            // Nothing changes, so nothing to confirm: only the record is written.
            let run = Run::new(prepared, &plan, args, settings, printer, faults);
            return run.gate_confirm_execute(None, "apply").await;
        }
        return ExitStatus::Success;
    }
    print_plan(&plan, Format::Text, printer);
    let run = Run::new(prepared, &plan, args, settings, printer, faults);
    run.gate_confirm_execute(
        Some("Do you want to apply these changes?"),
        apply_kind(&plan),
    )
    .await
}

/// What the last stage of both apply flows needs.
struct Run<'a> {
    prepared: &'a Prepared,
    plan: &'a Plan,
    args: &'a Args,
    settings: &'a Settings,
    printer: &'a Printer,
    faults: &'a Faults,
}

impl<'a> Run<'a> {
    fn new(
        prepared: &'a Prepared,
        plan: &'a Plan,
        args: &'a Args,
        settings: &'a Settings,
        printer: &'a Printer,
        faults: &'a Faults,
    ) -> Run<'a> {
        Run {
            prepared,
            plan,
            args,
            settings,
            printer,
            faults,
        }
    }

    /// The promotion gate, then the confirmation (when there is a question), then the apply.
    async fn gate_confirm_execute(&self, question: Option<&str>, kind: &str) -> ExitStatus {
        let override_reason = match promotion_gate(
            self.prepared,
            self.plan,
            self.args,
            self.settings,
            self.printer,
        )
        .await
        {
            Ok(reason) => reason,
            Err(status) => return status,
        };
        if let Some(question) = question
            && let Err(status) = confirm(
                question,
                self.args.auto_approve,
                self.settings,
                self.printer,
            )
        {
            return status;
        }
        execute_overriding(
            self.prepared,
            self.plan,
            self.settings,
            self.printer,
            self.faults,
            kind,
            override_reason.as_deref(),
        )
        .await
    }
}

/// The promotion gate, before confirmation and the lock: the layers checked are the ones the
/// plan carries (and the apply will record).
async fn promotion_gate(
    prepared: &Prepared,
    plan: &Plan,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
) -> Result<Option<String>, ExitStatus> {
    super::gate::enforce(
        &prepared.loaded,
        plan.shared_hash.as_deref(),
        args.override_promotion.as_deref(),
        settings.now(),
        printer,
    )
    .await
}

/// `backup` for a plan that changes backup sets and nothing else (`--only backup`, or a plan
/// saved from one): it records no managed state, since with other changes left out the record
/// would forget values still waiting to be applied or removed.
fn apply_kind(plan: &Plan) -> &'static str {
    if crate::plan::backups::is_backup_only(plan) {
        "backup"
    } else {
        "apply"
    }
}

/// Whether an empty plan still has something to record: addresses tldw-ops starts managing
/// (adopting values already in place) or secrets whose age starts counting now.
fn needs_record(prepared: &Prepared) -> bool {
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
        crate::model::Address::parse(address)
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

/// The desired-state file of a saved plan. The plan records it as given to `plan`, relative
/// to the directory `plan` ran in, which is most often the plan file's own; so it is looked
/// for beside the plan file first, then in the current directory, and an absolute path is
/// taken as it is. `--file` overrides all of this.
fn saved_plan_file(plan_path: &Path, recorded: &str) -> Result<PathBuf, String> {
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
    Err(format!(
        "the plan was made from {}, which is neither at {} nor at {}; pass it with --file",
        recorded.display(),
        candidates[0].display(),
        candidates[1].display()
    ))
}

async fn apply_saved(
    plan: Plan,
    plan_path: &Path,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    if let Some(required) = &args.require_commit {
        let matches = plan
            .git_commit
            .as_deref()
            .is_some_and(|commit| !required.is_empty() && commit.starts_with(required.as_str()));
        if !matches {
            printer.error(&format!(
                "the plan was made from commit {}, but --require-commit asks for {required}",
                plan.git_commit
                    .as_deref()
                    .unwrap_or("(none: not in a git checkout)")
            ));
            return ExitStatus::StalePlan;
        }
    }
    let file = match &args.file {
        Some(file) => file.clone(),
        None => match saved_plan_file(plan_path, &plan.file) {
            Ok(file) => file,
            Err(message) => {
                printer.error(&message);
                return ExitStatus::Error;
            }
        },
    };
    let prepared = match prepare(&file, settings).await {
        Ok(prepared) => prepared,
        Err(error) => return report_pipeline_error(error, printer),
    };
    if prepared.loaded.desired.environment != plan.environment {
        printer.error(&format!(
            "the plan is for environment {}, but {} describes {}",
            plan.environment,
            file.display(),
            prepared.loaded.desired.environment
        ));
        return ExitStatus::StalePlan;
    }
    let (moved, reasons) = staleness(&plan, &prepared);
    if !moved.is_empty() || !reasons.is_empty() {
        let mut text = String::from("the saved plan is stale; nothing was applied.\n");
        for reason in &reasons {
            text.push_str(&format!("  {reason}\n"));
        }
        if !moved.is_empty() {
            text.push_str("  moved since the plan was made:\n");
            for item in &moved {
                text.push_str(&format!(
                    "    {}: then {}, now {}\n",
                    item.address,
                    crate::secrets::show_hash(&item.then),
                    crate::secrets::show_hash(&item.now)
                ));
            }
        }
        text.push_str("A fresh plan follows; review it and make a new plan file to apply it.");
        printer.error(&text);
        let fresh = pipeline::make_plan(&prepared, settings.now());
        printer.stderr(&render::text(&fresh, &render::Plain));
        return ExitStatus::StalePlan;
    }
    if let Some(what) = differs_from_replan(&plan, &prepared) {
        printer.error(&format!(
            "the saved plan's {what} are not what the desired state and the deployment give \
             when planned again at the plan's time ({}): the file was edited, or was made by \
             another version of tldw-ops; nothing was applied. Make a new plan file.",
            plan.created_at
        ));
        return ExitStatus::StalePlan;
    }
    print_warnings(&prepared, &plan, printer);
    if !crate::plan::backups::is_backup_only(&plan)
        && let Err(status) = super::common::check_effective_policy(&prepared, &plan, printer)
    {
        return status;
    }
    print_plan(&plan, Format::Text, printer);
    if plan.is_empty() && !needs_record(&prepared) {
        return ExitStatus::Success;
    }
    let run = Run::new(&prepared, &plan, args, settings, printer, faults);
    run.gate_confirm_execute(
        Some("Do you want to apply this saved plan?"),
        apply_kind(&plan),
    )
    .await
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
        .then(|| crate::pipeline::only_backups(prepared, fresh.clone(), at).ok())
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
struct Parts<'a> {
    observed: &'a std::collections::BTreeMap<crate::model::Address, Option<String>>,
    faults: &'a Faults,
    reporter: &'a LineReporter,
    clock: &'a (dyn Fn() -> jiff::Timestamp + Sync),
    apply_id: String,
    kind: &'a str,
    override_reason: Option<&'a str>,
}

/// The executor's context for `plan` over a prepared pipeline.
fn apply_context<'a>(
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

/// Locks, journals and runs `plan`; reports how it ended.
pub async fn execute(
    prepared: &Prepared,
    plan: &Plan,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
    kind: &str,
) -> ExitStatus {
    execute_overriding(prepared, plan, settings, printer, faults, kind, None).await
}

/// [`execute`], recording why the promotion gate was overridden.
async fn execute_overriding(
    prepared: &Prepared,
    plan: &Plan,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
    kind: &str,
    override_reason: Option<&str>,
) -> ExitStatus {
    let now = settings.now();
    let apply_id = new_apply_id(now);
    let observed = observed_values(prepared);
    let reporter = LineReporter::new(*printer, plan.steps.len(), settings.interactive);
    let clock = || settings.now();
    let context = apply_context(
        prepared,
        plan,
        settings,
        Parts {
            observed: &observed,
            faults,
            reporter: &reporter,
            clock: &clock,
            apply_id,
            kind,
            override_reason,
        },
    );
    if let Err(error) = context.begin().await {
        return report_apply_error(error, printer);
    }
    match context.moved_since_plan().await {
        Ok(moved) if moved.is_empty() => {}
        Ok(moved) => {
            let mut text = String::from("the plan went stale while waiting for the lock or the confirmation; nothing was applied.
  moved:
");
            for (address, then, now) in &moved {
                text.push_str(&format!(
                    "    {address}: then {}, now {}
",
                    crate::secrets::show_hash(then),
                    crate::secrets::show_hash(now)
                ));
            }
            text.push_str("Run `tldw-ops plan` again.");
            let _ = context
                .abandon_stale("stale plan: nothing was applied")
                .await;
            printer.error(&text);
            return ExitStatus::StalePlan;
        }
        Err(error) => {
            let _ = context.abandon_stale(&error).await;
            printer.error(&error);
            return ExitStatus::Error;
        }
    }
    let started = std::time::Instant::now();
    match context.run(0, Vec::new()).await {
        Ok(outcome) => report_outcome(&outcome, started.elapsed(), printer),
        Err(error) => report_apply_error(error, printer),
    }
}

pub fn report_apply_error(error: ApplyError, printer: &Printer) -> ExitStatus {
    match error {
        ApplyError::State(error) => report_state_error(error, printer),
        ApplyError::TargetLocked(
            error @ crate::providers::files::DirectoryLockError::Busy { .. },
        ) => {
            printer.error(&error.to_string());
            ExitStatus::Locked
        }
        other => {
            printer.error(&other.to_string());
            ExitStatus::Error
        }
    }
}

pub fn report_outcome(
    outcome: &ApplyOutcome,
    elapsed: std::time::Duration,
    printer: &Printer,
) -> ExitStatus {
    match outcome {
        ApplyOutcome::Succeeded {
            apply_id,
            changes,
            health_checked,
        } => {
            let health = if *health_checked {
                ", health gates passed"
            } else {
                ""
            };
            printer.note(&format!(
                "{} {changes} change{} in {}{health} (apply {apply_id}).",
                printer.paint(Style::Success, "Apply complete:"),
                if *changes == 1 { "" } else { "s" },
                super::common::elapsed_text(elapsed)
            ));
            ExitStatus::Success
        }
        ApplyOutcome::RolledBack {
            apply_id,
            failed_step,
            error,
            undone,
            final_health,
            stale,
        } => {
            let health = match final_health {
                None => "not checked (no restart or health gates configured)".to_string(),
                Some(Ok(())) => "healthy".to_string(),
                Some(Err(problem)) => format!("UNHEALTHY: {problem}"),
            };
            printer.error(&format!(
                "apply {apply_id} failed at step {failed_step}: {error}\n  \
                 rolled back: {}\n  final health: {health}\n  \
                 The deployment is back where it was before this apply.",
                if undone.is_empty() {
                    "nothing needed undoing".to_string()
                } else {
                    undone.join(", ")
                }
            ));
            if *stale {
                printer.error("the server no longer matches the plan; make a new plan");
                return ExitStatus::StalePlan;
            }
            ExitStatus::RolledBack
        }
        ApplyOutcome::NeedsAttention {
            apply_id,
            failed_step,
            error,
            instructions,
            ..
        } => {
            printer.error(&format!(
                "apply {apply_id} failed at step {failed_step}: {error}\n{instructions}"
            ));
            ExitStatus::NeedsAttention
        }
    }
}

async fn resume_command(
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let file = args.file.clone().unwrap_or_else(|| desired_file(None));
    let (loaded, unfinished, plan) =
        match super::common::load_unfinished(&file, settings, printer, "resume").await {
            Ok(found) => found,
            Err(status) => return status,
        };
    if unfinished.desired_hash != loaded.desired_hash {
        printer.error(&format!(
            "{} resolves differently from when apply {} started; restore it to resume, or undo the apply with `tldw-ops rollback --unfinished`",
            file.display(),
            unfinished.id
        ));
        return ExitStatus::NeedsAttention;
    }
    let holder = LockHolder {
        apply_id: unfinished.id.clone(),
        host: settings.host.clone(),
        pid: std::process::id(),
        started_at: settings.now(),
    };
    if let Err(error) = take_over_lock(&loaded.store, &loaded.key, &holder, &settings.host).await {
        return report_state_error(error, printer);
    }
    let rows = match loaded.store.steps(&unfinished.id).await {
        Ok(rows) => rows,
        Err(error) => return report_state_error(error, printer),
    };
    let prepared = match pipeline::observe(loaded).await {
        Ok(prepared) => prepared,
        Err(error) => return report_pipeline_error(error, printer),
    };
    printer.note(&format!(
        "resuming apply {} (started {})",
        unfinished.id, unfinished.started_at
    ));
    let loaded = &prepared.loaded;
    let observed = observed_values(&prepared);
    let reporter = LineReporter::new(*printer, plan.steps.len(), settings.interactive);
    let clock = || settings.now();
    let context = apply_context(
        &prepared,
        &plan,
        settings,
        Parts {
            observed: &observed,
            faults,
            reporter: &reporter,
            clock: &clock,
            apply_id: unfinished.id.clone(),
            // A resumed backup-only apply or restore still records no managed state.
            kind: if crate::kinds::backups::records_managed_state(&unfinished.kind) {
                "resume"
            } else {
                &unfinished.kind
            },
            override_reason: None,
        },
    );
    if let Err(error) = context.lock_targets() {
        return report_apply_error(error, printer);
    }
    let started = std::time::Instant::now();
    match resume(&context, &rows).await {
        Ok(Ok(outcome)) => report_outcome(&outcome, started.elapsed(), printer),
        Ok(Err(problem)) => {
            let _ = loaded.store.unlock(&loaded.key, &unfinished.id).await;
            printer.error(&format!(
                "apply {} cannot be resumed: {problem}\nUndo it with `tldw-ops rollback --unfinished`, or restore the file from its checkpoint (`tldw-ops show {}`).",
                unfinished.id, unfinished.id
            ));
            ExitStatus::NeedsAttention
        }
        Err(error) => report_apply_error(error, printer),
    }
}
