//! `tldw-ops plan [FILE]`: what apply would change, with every secret masked.

use std::path::PathBuf;

use super::common::{report_pipeline_error, runtime};
use super::output::{Style, paint_adapter};
use super::{ExitStatus, Printer, desired_file};
use crate::pipeline::{self, Prepared};
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
    let prepared = match runtime.block_on(async {
        let loaded = pipeline::load_to_read(&file, settings, false).await?;
        let prepared = pipeline::observe(loaded).await?;
        // Everything this command needs from the store is read: close it now, so SQLite
        // removes the -wal and -shm files it opened.
        prepared.loaded.store.close().await;
        Ok::<_, pipeline::PipelineError>(prepared)
    }) {
        Ok(prepared) => prepared,
        Err(error) => return report_pipeline_error(error, printer),
    };
    let plan = pipeline::make_plan(&prepared, settings.now());
    let plan = match args.only {
        None => plan,
        Some(super::common::Part::Backup) => {
            match crate::backups::only_backups(&prepared, plan, settings.now()) {
                Ok(plan) => plan,
                Err(message) => {
                    printer.error(&message);
                    return ExitStatus::Error;
                }
            }
        }
    };
    print_warnings(&prepared, &plan, printer);
    if args.only.is_none()
        && let Err(status) = super::common::check_effective_policy(&prepared, &plan, printer)
    {
        return status;
    }
    if let Some(out) = &args.out
        && let Err(status) = write_plan(out, &plan, printer)
    {
        return status;
    }
    let diff = (args.diff && args.format != Format::Json && !plan.is_empty()).then(|| {
        crate::preview::file_diffs(
            &plan,
            &prepared.loaded.desired,
            &prepared.files,
            &prepared.loaded.state.salt,
        )
    });
    if args.format == Format::Markdown {
        let extras = render::MarkdownExtras {
            warnings: warnings(&prepared, &plan),
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

/// The warnings of validation and of the plan, as printed and as a PR comment lists them.
pub fn warnings(prepared: &Prepared, plan: &Plan) -> Vec<String> {
    prepared
        .loaded
        .checked
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == crate::spec::Severity::Warning)
        .map(|diagnostic| format!("{} [{}]", diagnostic.message, diagnostic.code))
        .chain(plan.warnings.iter().cloned())
        .collect()
}

pub fn print_warnings(prepared: &Prepared, plan: &Plan, printer: &Printer) {
    for warning in warnings(prepared, plan) {
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

/// Writes the plan file atomically.
pub fn write_plan(out: &std::path::Path, plan: &Plan, printer: &Printer) -> Result<(), ExitStatus> {
    match crate::providers::files::write_atomic(out, render::json(plan).as_bytes(), 0o644, None) {
        Ok(()) => {
            printer.note(&format!(
                "{} {}; apply it with: tldw-ops apply {}",
                printer.paint(Style::Dim, "plan saved to"),
                out.display(),
                crate::plan::service::shell_words(&[out.display().to_string()])
            ));
            Ok(())
        }
        Err(error) => {
            printer.error(&error.to_string());
            Err(ExitStatus::Error)
        }
    }
}
