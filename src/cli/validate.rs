//! `tldw-ops validate [FILE]`: every problem in the desired state at once, with file:line:col.
//! The checking is `ops::validate`'s; this renders the diagnostics and picks the exit status.

use std::path::PathBuf;

use super::{ExitStatus, Printer, desired_file};
use crate::ops::validate::{Validation, validate};
use crate::settings::Settings;
use crate::spec::diagnostic::{render_json, render_text};
use crate::spec::{Diagnostic, Severity, SourceMap};

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
    let validation = match validate(&file, settings) {
        Ok(validation) => validation,
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    report(
        args.format,
        validation.diagnostics(),
        validation.sources(),
        printer,
    );
    if args.format == Format::Text {
        for (rule, reason) in validation.waived() {
            printer.note(&format!("waived rule `{rule}`: {reason}"));
        }
        printer.note(&summary(&file, &validation));
        if validation.is_production() {
            printer.note(
                "the deployment's .env and config.txt are not read here: `plan` checks \
                 the policy again on what apply would leave behind, values this file \
                 does not manage included",
            );
        }
    }
    if validation.is_invalid() {
        ExitStatus::Invalid
    } else {
        ExitStatus::Success
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

fn summary(file: &std::path::Path, validation: &Validation) -> String {
    let errors = validation.count(Severity::Error);
    let warnings = validation.count(Severity::Warning);
    let waived = validation.waived().len();
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
