//! `tldw-ops plan [FILE]`: what apply would change, with every secret masked. The work is
//! `ops::plan`'s; this prints the plan in the format asked for and picks the exit status.

use std::path::PathBuf;

use super::common::{report_pipeline_error, runtime};
use super::output::{Style, paint_adapter};
use super::{ExitStatus, Printer, desired_file};
use crate::ops::plan as ops;
use crate::pipeline::Prepared;
use crate::plan::{Plan, render};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Desired-state file. Default: tldw-ops.yaml
    file: Option<PathBuf>,
    /// Also write the plan as JSON to this file, for `tldw-ops apply PLAN`.
    #[arg(long, value_name = "PLAN")]
    out: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Add a unified diff of each file (secrets masked).
    #[arg(long)]
    diff: bool,
    /// Exit 2 when there are changes (0 when there are none).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Plan only this part of the desired state (what `apply --only` would do).
    #[arg(long, value_enum, value_name = "PART")]
    only: Option<super::common::Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// A PR comment's limit is 65,536 characters; stay well under it.
pub const MARKDOWN_LIMIT: usize = 60_000;

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let runtime = runtime();
    let prepared = match runtime.block_on(ops::prepare(&file, settings)) {
        Ok(prepared) => prepared,
        Err(error) => return report_pipeline_error(error, printer),
    };
    let only_backup = args.only == Some(super::common::Part::Backup);
    let plan = match ops::plan_for(&prepared, only_backup, settings) {
        Ok(plan) => plan,
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    print_warnings(&prepared, &plan, printer);
    if args.only.is_none()
        && let Err(status) = super::common::check_effective_policy(&prepared, &plan, printer)
    {
        return status;
    }
    if let Some(out) = &args.out
        && let Err(status) = write_plan(out, &plan, settings, printer)
    {
        return status;
    }
    let diff = (args.diff && args.format != Format::Json && !plan.is_empty())
        .then(|| ops::file_diffs(&prepared, &plan));
    if args.format == Format::Markdown {
        let extras = render::MarkdownExtras {
            warnings: ops::warnings(&prepared, &plan),
            diff,
        };
        printer.stdout(&render::markdown(&plan, &extras, MARKDOWN_LIMIT));
    } else {
        print_plan(&plan, args.format, printer);
        if let Some(diff) = diff {
            printer.stdout(&format!("\n{diff}"));
        }
    }
    // The process ends here; freeing thousands of small allocations one by one is wasted work.
    std::mem::forget(prepared);
    if args.detailed_exitcode && !plan.is_empty() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    }
}

pub fn print_warnings(prepared: &Prepared, plan: &Plan, printer: &Printer) {
    for warning in ops::warnings(prepared, plan) {
        printer.warning(&warning);
    }
}

pub fn print_plan(plan: &Plan, format: Format, printer: &Printer) {
    match format {
        Format::Text => printer.stdout(&render::text(plan, &paint_adapter(printer))),
        Format::Json => printer.stdout(&render::json(plan)),
        Format::Markdown => printer.stdout(&render::markdown(
            plan,
            &render::MarkdownExtras::default(),
            MARKDOWN_LIMIT,
        )),
    }
}

/// Writes the plan file (`ops::plan::write_plan`) and says how to apply it.
fn write_plan(
    out: &std::path::Path,
    plan: &Plan,
    settings: &Settings,
    printer: &Printer,
) -> Result<(), ExitStatus> {
    if let Err(error) = ops::write_plan(out, plan) {
        printer.error(&error.to_string());
        return Err(ExitStatus::Error);
    }
    let state = if settings.state.is_some() {
        " (with the same --state or TLDW_OPS_STATE)"
    } else {
        ""
    };
    printer.note(&format!(
        "{} {}; apply it with: tldw-ops apply {}{state}",
        printer.paint(Style::Dim, "plan saved to"),
        out.display(),
        crate::plan::service::shell_words(&[out.display().to_string()])
    ));
    Ok(())
}
