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
            match crate::pipeline::only_backups(&prepared, plan, settings.now()) {
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
        && let Err(status) = write_plan(out, &plan, settings, printer)
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

/// Writes the plan file atomically, creating the directories it goes in (and removing them
/// again when the write fails, so a failed `plan --out` leaves nothing behind). The plan
/// records its desired-state file relative to the plan file's own directory, which is where
/// `apply PLAN` looks first: the plan then finds its YAML from any working directory, wherever
/// `--out` put it.
pub fn write_plan(
    out: &std::path::Path,
    plan: &Plan,
    settings: &Settings,
    printer: &Printer,
) -> Result<(), ExitStatus> {
    let directory = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let created = match create_directories(&directory) {
        Ok(created) => created,
        Err(error) => {
            printer.error(&format!(
                "cannot create {} for the plan file: {error}",
                directory.display()
            ));
            return Err(ExitStatus::Error);
        }
    };
    let mut saved = plan.clone();
    if let Some(recorded) = relative_from(&directory, std::path::Path::new(&plan.file)) {
        saved.file = recorded;
    }
    match crate::providers::files::write_atomic(out, render::json(&saved).as_bytes(), 0o644, None) {
        Ok(()) => {
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
        Err(error) => {
            for directory in created.iter().rev() {
                let _ = std::fs::remove_dir(directory);
            }
            printer.error(&error.to_string());
            Err(ExitStatus::Error)
        }
    }
}

/// Creates `directory` and its missing parents, returning the ones it created, outermost first.
fn create_directories(directory: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut missing = Vec::new();
    let mut next = Some(directory);
    while let Some(path) = next {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path.to_path_buf());
        next = path.parent();
    }
    missing.reverse();
    for (index, path) in missing.iter().enumerate() {
        if let Err(error) = std::fs::create_dir(path)
            && error.kind() != std::io::ErrorKind::AlreadyExists
        {
            for made in missing[..index].iter().rev() {
                let _ = std::fs::remove_dir(made);
            }
            return Err(error);
        }
    }
    Ok(missing)
}

/// `file` as seen from `directory` (`../prod.yaml`), both resolved through the file system;
/// `None` when either cannot be resolved.
fn relative_from(directory: &std::path::Path, file: &std::path::Path) -> Option<String> {
    use std::path::Component;
    let directory = std::fs::canonicalize(directory).ok()?;
    let file = std::fs::canonicalize(file).ok()?;
    let from: Vec<Component<'_>> = directory.components().collect();
    let to: Vec<Component<'_>> = file.components().collect();
    let common = from
        .iter()
        .zip(&to)
        .take_while(|(left, right)| left == right)
        .count();
    let mut relative = std::path::PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component.as_os_str());
    }
    Some(relative.display().to_string())
}
