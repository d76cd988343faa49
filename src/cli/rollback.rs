//! `tldw-ops rollback <apply-id>|--last`: a reviewed plan that puts the files of an earlier
//! apply back as they were before it, applied as a new apply. `rollback --unfinished` undoes an
//! apply that was interrupted.

use std::path::PathBuf;

use super::apply::{execute, report_apply_error, report_outcome};
use super::common::{LineReporter, confirm, report_state_error, runtime};
use super::plan::{Format, print_plan};
use super::{ExitStatus, Printer, desired_file};
use crate::faults::Faults;
use crate::ops::rollback::{self, RollbackError, UndoError};
use crate::settings::Settings;

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
    let unfinished =
        match super::common::load_unfinished(&file, settings, printer, "roll back").await {
            Ok(found) => found,
            Err(status) => return status,
        };
    let record = &unfinished.record;
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
    let reporter = LineReporter::new(*printer, unfinished.plan.steps.len(), settings.interactive);
    match rollback::undo_unfinished(&unfinished, settings, faults, &reporter).await {
        Ok((
            crate::apply::ApplyOutcome::RolledBack {
                undone,
                final_health,
                ..
            },
            _,
        )) => {
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
        Ok((outcome, elapsed)) => report_outcome(&outcome, elapsed, printer),
        Err(UndoError::State(error)) => report_state_error(error, printer),
        Err(UndoError::Apply(error)) => report_apply_error(error, printer),
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
    let (record, plan) =
        match rollback::earlier(&prepared, args.apply_id.as_deref(), settings.now()).await {
            Ok(found) => found,
            Err(RollbackError::State(error)) => return report_state_error(error, printer),
            Err(error) => {
                printer.error(&error.to_string());
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
