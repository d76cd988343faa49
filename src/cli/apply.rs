//! `tldw-ops apply [FILE | PLAN.json]`: plan (or load a reviewed plan), confirm, and execute it
//! step by step with automatic rollback. `--resume` finishes an interrupted apply. The work is
//! `ops::apply`'s; this prints the plan, the progress and the outcome, runs the promotion gate,
//! asks for confirmation and picks the exit status.

use std::path::{Path, PathBuf};

use super::common::{LineReporter, confirm, report_pipeline_error, report_state_error, runtime};
use super::output::Style;
use super::plan::{Format, print_plan, print_warnings};
use super::{ExitStatus, Printer, desired_file};
use crate::apply::{ApplyError, ApplyOutcome};
use crate::faults::Faults;
use crate::ops::apply::{
    self as ops, ExecuteError, ResumeError, SavedPlan, SavedPlanError, SavedPlanRequest,
    Unfinished, Work, apply_kind, read_saved_plan,
};
use crate::pipeline::Prepared;
use crate::plan::{Plan, render};
use crate::settings::Settings;

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
        SavedPlan::Invalid(error) => {
            printer.error(&error.to_string());
            ExitStatus::Error
        }
        SavedPlan::NotAPlan => {
            runtime.block_on(apply_file(&target, &args, settings, printer, &faults))
        }
    }
}

async fn apply_file(
    file: &Path,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let prepared = match ops::prepare(file, settings).await {
        Ok(prepared) => prepared,
        Err(error) => return report_pipeline_error(error, printer),
    };
    let status = apply_prepared(&prepared, args, settings, printer, faults).await;
    // A clean close checkpoints the journal into the state database, so no -wal is left.
    prepared.loaded.store.close().await;
    status
}

async fn apply_prepared(
    prepared: &Prepared,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let only_backup = args.only == Some(super::common::Part::Backup);
    let plan = match crate::ops::plan::plan_for(prepared, only_backup, settings) {
        Ok(plan) => plan,
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    print_warnings(prepared, &plan, printer);
    if ops::checks_policy(&plan, only_backup)
        && let Err(status) = super::common::check_effective_policy(prepared, &plan, printer)
    {
        return status;
    }
    print_plan(&plan, Format::Text, printer);
    let run = Run::new(prepared, &plan, args, settings, printer, faults);
    match ops::work(prepared, &plan, only_backup) {
        Work::Nothing => ExitStatus::Success,
        // Nothing changes, so nothing to confirm: only the record is written.
        Work::RecordOnly => run.gate_confirm_execute(None, "apply").await,
        Work::Changes => {
            run.gate_confirm_execute(
                Some("Do you want to apply these changes?"),
                apply_kind(&plan),
            )
            .await
        }
    }
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

async fn apply_saved(
    plan: Plan,
    plan_path: &Path,
    args: &Args,
    settings: &Settings,
    printer: &Printer,
    faults: &Faults,
) -> ExitStatus {
    let request = SavedPlanRequest {
        plan_path,
        file: args.file.as_deref(),
        require_commit: args.require_commit.as_deref(),
    };
    let prepared = match ops::prepare_saved(&plan, &request, settings).await {
        Ok(prepared) => prepared,
        Err(error) => return report_saved_plan_error(error, printer),
    };
    print_warnings(&prepared, &plan, printer);
    if ops::checks_policy(&plan, false)
        && let Err(status) = super::common::check_effective_policy(&prepared, &plan, printer)
    {
        return status;
    }
    print_plan(&plan, Format::Text, printer);
    if ops::work(&prepared, &plan, false) == Work::Nothing {
        return ExitStatus::Success;
    }
    let run = Run::new(&prepared, &plan, args, settings, printer, faults);
    run.gate_confirm_execute(
        Some("Do you want to apply this saved plan?"),
        apply_kind(&plan),
    )
    .await
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
    let reporter = LineReporter::new(*printer, plan.steps.len(), settings.interactive);
    match ops::apply(
        prepared,
        plan,
        settings,
        faults,
        &reporter,
        kind,
        override_reason,
    )
    .await
    {
        Ok((outcome, elapsed)) => report_outcome(&outcome, elapsed, printer),
        Err(ExecuteError::Apply(error)) => report_apply_error(error, printer),
        Err(ExecuteError::Moved(moved)) => {
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
            printer.error(&text);
            ExitStatus::StalePlan
        }
        Err(ExecuteError::Unchecked(error)) => {
            printer.error(&error);
            ExitStatus::Error
        }
    }
}

/// Reports why a saved plan is not applied and returns its exit code.
fn report_saved_plan_error(error: SavedPlanError, printer: &Printer) -> ExitStatus {
    match error {
        SavedPlanError::Pipeline(error) => report_pipeline_error(error, printer),
        error @ SavedPlanError::NoDesiredFile { .. } => {
            printer.error(&error.to_string());
            ExitStatus::Error
        }
        SavedPlanError::Stale {
            moved,
            reasons,
            fresh,
        } => {
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
            printer.stderr(&render::text(&fresh, &render::Plain));
            ExitStatus::StalePlan
        }
        error @ (SavedPlanError::OtherCommit { .. }
        | SavedPlanError::OtherEnvironment { .. }
        | SavedPlanError::Edited { .. }) => {
            printer.error(&error.to_string());
            ExitStatus::StalePlan
        }
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
    let Unfinished {
        loaded,
        record: unfinished,
        plan,
    } = match super::common::load_unfinished(&file, settings, printer, "resume").await {
        Ok(found) => found,
        Err(status) => return status,
    };
    let (prepared, rows) = match ops::prepare_resume(loaded, &unfinished, &file, settings).await {
        Ok(found) => found,
        Err(error) => return report_resume_error(error, printer),
    };
    printer.note(&format!(
        "resuming apply {} (started {})",
        unfinished.id, unfinished.started_at
    ));
    let reporter = LineReporter::new(*printer, plan.steps.len(), settings.interactive);
    match ops::resume_unfinished(
        &prepared,
        &plan,
        &unfinished,
        &rows,
        settings,
        faults,
        &reporter,
    )
    .await
    {
        Ok((outcome, elapsed)) => report_outcome(&outcome, elapsed, printer),
        Err(error) => report_resume_error(error, printer),
    }
}

/// Reports why an unfinished apply is not resumed and returns its exit code.
fn report_resume_error(error: ResumeError, printer: &Printer) -> ExitStatus {
    match error {
        ResumeError::State(error) => report_state_error(error, printer),
        ResumeError::Pipeline(error) => report_pipeline_error(error, printer),
        ResumeError::Apply(error) => report_apply_error(error, printer),
        error @ (ResumeError::ResolvesDifferently { .. } | ResumeError::CannotResume { .. }) => {
            printer.error(&error.to_string());
            ExitStatus::NeedsAttention
        }
    }
}
