//! `tldw-ops show TARGET`: a plan file saved with `plan --out` is read and rendered here; an
//! apply id goes on to the journal (`history::show`). The changes section of an apply is
//! rendered here too, so `show` prints one header, the apply's, and one list of steps, the
//! journaled ones.

use std::path::Path;

use super::history::{Format, ShowArgs};
use super::output::paint_adapter;
use super::{ExitStatus, Printer};
use crate::ops::apply::{SavedPlan, read_saved_plan};
use crate::plan::{Plan, render};
use crate::settings::Settings;

pub fn run(args: ShowArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let target = Path::new(&args.apply_id);
    if !is_plan_file(target) {
        return super::history::show(args, settings, printer);
    }
    match read_saved_plan(target) {
        SavedPlan::Plan(plan) => {
            match args.format {
                Format::Json => printer.stdout(&render::json(&plan)),
                Format::Text => printer.stdout(&plan_file_text(target, &plan, printer)),
            }
            ExitStatus::Success
        }
        SavedPlan::Invalid(error) => {
            printer.error(&error.to_string());
            ExitStatus::Error
        }
        SavedPlan::NotAPlan => {
            printer.error(&format!(
                "{} is neither an apply id nor a plan file (`plan --out PLAN.json`)",
                target.display()
            ));
            ExitStatus::Error
        }
    }
}

/// Apply ids (`20261126T031634Z-04fd3b`) have no dots or slashes; a plan file has `.json`, a
/// directory part, or exists.
fn is_plan_file(target: &Path) -> bool {
    target
        .extension()
        .is_some_and(|extension| extension == "json")
        || target.components().count() > 1
        || target.is_file()
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
