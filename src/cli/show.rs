//! `tldw-ops show TARGET`: a plan file saved with `plan --out`, or an apply in the journal. The
//! reading is `ops::show`'s; this renders it. The changes section of an apply is rendered so
//! that `show` prints one header, the apply's, and one list of steps, the journaled ones.

use std::path::{Path, PathBuf};

use super::common::{report_state_error, runtime};
use super::history::{Format, duration, took};
use super::output::{Style, paint_adapter};
use super::{ExitStatus, Printer, desired_file};
use crate::ops::show::{Journaled, ShowError, Shown, show};
use crate::plan::{Plan, render};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An apply id (see `tldw-ops history`), or a plan file saved with `plan --out`.
    #[arg(value_name = "APPLY_ID|PLAN")]
    target: String,
    /// The desired-state file whose state to read (default tldw-ops.yaml); or use --state.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format on stdout: text for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let shown = match runtime().block_on(show(&args.target, &file, settings)) {
        Ok(shown) => shown,
        Err(ShowError::State(error)) => return report_state_error(error, printer),
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    match shown {
        Shown::Plan(plan) => match args.format {
            Format::Json => printer.stdout(&render::json(&plan)),
            Format::Text => {
                printer.stdout(&plan_file_text(Path::new(&args.target), &plan, printer))
            }
        },
        Shown::Apply(journaled) => print_apply(&journaled, args.format, printer),
    }
    ExitStatus::Success
}

/// A journaled apply: its record, its steps and the changes of its plan.
fn print_apply(journaled: &Journaled, format: Format, printer: &Printer) {
    let Journaled {
        record,
        steps,
        plan,
    } = journaled;
    match format {
        Format::Json => {
            let value = serde_json::json!({
                "apply": {
                    "id": record.id,
                    "environment": record.environment.environment,
                    "deployment": record.environment.deployment,
                    "kind": record.kind,
                    "outcome": record.outcome.as_str(),
                    "started_at": record.started_at.to_string(),
                    "finished_at": record.finished_at.map(|time| time.to_string()),
                    "user": record.actor_user,
                    "host": record.actor_host,
                    "plan_hash": record.plan_hash,
                    "desired_hash": record.desired_hash,
                    "shared_hash": record.shared_hash,
                    "git_commit": record.git_commit,
                    "health_passed": record.health_passed,
                    "override_reason": record.override_reason,
                    "message": record.message,
                },
                "steps": steps,
                "changes": plan.as_ref().map(|plan| &plan.changes),
            });
            let mut text = serde_json::to_string_pretty(&value).expect("show serialises");
            text.push('\n');
            printer.stdout(&text);
        }
        Format::Text => {
            let mut text = String::new();
            text.push_str(&format!(
                    "apply {}  environment {}  kind {}\n  plan     {}\n  started  {} by {}@{} (pid {})\n  finished {}  took {}\n  outcome  {}\n",
                    record.id,
                    record.environment,
                    record.kind,
                    record.plan_hash,
                    record.started_at,
                    record.actor_user,
                    record.actor_host,
                    record.pid,
                    record.finished_at.map(|time| time.to_string()).unwrap_or_else(|| "(not finished)".to_string()),
                    duration(record),
                    printer.paint_stdout(
                        if record.outcome == crate::state::Outcome::Succeeded { Style::Success } else { Style::Warning },
                        record.outcome.as_str()
                    ),
                ));
            if let Some(health) = record.health_passed {
                text.push_str(&format!(
                    "  health   {}\n",
                    if health { "passed" } else { "failed" }
                ));
            }
            if let Some(message) = &record.message {
                text.push_str(&format!("  message  {message}\n"));
            }
            if let Some(commit) = &record.git_commit {
                text.push_str(&format!("  commit   {commit}\n"));
            }
            if let Some(reason) = &record.override_reason {
                text.push_str(&format!("  override {reason}\n"));
            }
            text.push_str("\nSteps:\n");
            for step in steps {
                let took = step
                    .finished_at
                    .map(|finished| took(step.started_at, finished))
                    .unwrap_or_else(|| "-".to_string());
                text.push_str(&format!(
                    "  {}. {} {}  [{}] {took}\n",
                    step.index + 1,
                    step.kind,
                    step.target,
                    step.status.as_str()
                ));
                if let Some(path) = &step.checkpoint_path {
                    text.push_str(&format!("       checkpoint {path}\n"));
                }
                if let Some(error) = &step.error {
                    text.push_str(&format!("       error: {error}\n"));
                }
            }
            if let Some(plan) = &plan {
                text.push_str(&changes_section(plan, &paint_adapter(printer)));
            }
            printer.stdout(&text);
        }
    }
}

fn plan_file_text(path: &Path, plan: &Plan, printer: &Printer) -> String {
    let mut text = format!(
        "plan file {}\n  made     {} by tldw-ops {}\n  from     {}{}\n  hash     {}\n\n",
        path.display(),
        plan.created_at,
        plan.tool_version,
        plan.file,
        plan.git_commit
            .as_deref()
            .map(|commit| format!(" at commit {commit}"))
            .unwrap_or_default(),
        plan.hash(),
    );
    text.push_str(&render::text(plan, &paint_adapter(printer)));
    if !plan.warnings.is_empty() {
        text.push_str("\nWarnings:\n");
        for warning in &plan.warnings {
            text.push_str(&format!("  {warning}\n"));
        }
    }
    text
}

/// The changes of a journaled apply: what the plan changed, without the plan's own header and
/// steps, which `show` prints from the journal above it.
pub fn changes_section(plan: &Plan, paint: &dyn render::Paint) -> String {
    let mut changes_only = plan.clone();
    changes_only.steps.clear();
    let rendered = render::text(&changes_only, paint);
    let mut out = String::new();
    let mut blank = true;
    // Line 1 is the plan's header; the `Steps:` heading has nothing under it here.
    for line in rendered.lines().skip(1).filter(|line| *line != "Steps:") {
        let is_blank = line.trim().is_empty();
        if is_blank && blank {
            continue;
        }
        blank = is_blank;
        out.push_str(line);
        out.push('\n');
    }
    format!("\nChanges:\n{out}")
}
