//! `tldw-ops validate [FILE]`: every problem in the desired state at once, with file:line:col.

use std::path::PathBuf;

use super::{ExitStatus, Printer, desired_file};
use crate::settings::Settings;
use crate::spec::diagnostic::{render_json, render_text};
use crate::spec::{CheckError, Diagnostic, Severity, SourceMap};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Desired-state file. Default: tldw-ops.yaml
    file: Option<PathBuf>,
    /// Output format: text on stderr, or JSON on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    match crate::pipeline::load_checked(&file, settings) {
        Ok(checked) => {
            let invalid = checked.has_errors();
            report(
                args.format,
                &checked.diagnostics,
                checked.sources(),
                printer,
            );
            if args.format == Format::Text {
                for (rule, reason) in &checked.waived {
                    printer.note(&format!("waived rule `{rule}`: {reason}"));
                }
                printer.note(&summary(&file, &checked.diagnostics, checked.waived.len()));
                if crate::spec::policy::is_production(&checked.spec) {
                    printer.note(
                        "the deployment's .env and config.txt are not read here: `plan` checks \
                         the policy again on what apply would leave behind, values this file \
                         does not manage included",
                    );
                }
            }
            if invalid {
                ExitStatus::Invalid
            } else {
                ExitStatus::Success
            }
        }
        Err(CheckError::Invalid {
            diagnostics,
            sources,
        }) => {
            report(args.format, &diagnostics, &sources, printer);
            if args.format == Format::Text {
                printer.note(&summary(&file, &diagnostics, 0));
            }
            ExitStatus::Invalid
        }
        Err(CheckError::Unreadable(error)) => {
            printer.error(&error.to_string());
            ExitStatus::Error
        }
    }
}

fn report(format: Format, diagnostics: &[Diagnostic], sources: &SourceMap, printer: &Printer) {
    match format {
        Format::Text => printer.diagnostics(&render_text(diagnostics, sources)),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&render_json(diagnostics))
                .expect("diagnostics serialise");
            text.push('\n');
            printer.stdout(&text);
        }
    }
}

fn summary(file: &std::path::Path, diagnostics: &[Diagnostic], waived: usize) -> String {
    let count = |severity| {
        diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity == severity)
            .count()
    };
    let errors = count(Severity::Error);
    let warnings = count(Severity::Warning);
    let verdict = if errors > 0 { "invalid" } else { "valid" };
    let mut parts = vec![format!("{errors} error{}", plural(errors))];
    parts.push(format!("{warnings} warning{}", plural(warnings)));
    if waived > 0 {
        parts.push(format!("{waived} rule{} waived", plural(waived)));
    }
    format!("{}: {verdict} ({})", file.display(), parts.join(", "))
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
