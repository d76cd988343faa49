//! `tldw-ops drift [FILE]`: what changed in the deployment outside tldw-ops since the last
//! apply, and who most likely changed it. Exit 2 when something drifted, so cron and
//! monitoring can alert. `--adopt ADDRESS...` writes observed values back into the YAML.

use std::path::PathBuf;

use super::common::{report_pipeline_error, runtime};
use super::output::{Style, paint_adapter};
use super::{ExitStatus, Printer, desired_file};
use crate::drift::{self, DriftReport};
use crate::ops::drift::{AdoptError, Asked, Written, adopt_all, detect, mark_adopted};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Desired-state file. Default: tldw-ops.yaml
    file: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Keep what the deployment has now for these addresses: write the observed values into
    /// the YAML that declares them (secrets are refused: update their source instead).
    #[arg(long, value_name = "ADDRESS", num_args = 1..)]
    adopt: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let (prepared, mut report) = match runtime().block_on(detect(&file, settings)) {
        Ok(found) => found,
        Err(error) => return report_pipeline_error(error, printer),
    };
    for warning in &prepared.observed.warnings {
        printer.warning(warning);
    }
    if !args.adopt.is_empty() {
        let adopted = match adopt_all(&args.adopt, &prepared) {
            Ok(adopted) => adopted,
            Err(error) => {
                print_adoption_error(error, printer);
                return ExitStatus::Error;
            }
        };
        print_asked(&adopted.asked, printer);
        print_written(&adopted.written, printer);
        let addresses = adopted.addresses();
        if !addresses.is_empty() {
            printer.note(
                "The state store is unchanged: the next `tldw-ops apply` records the adopted values.",
            );
        }
        mark_adopted(&mut report, &addresses);
    }
    print_report(&report, args.format, printer);
    if report.needs_attention() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    }
}

fn print_report(report: &DriftReport, format: Format, printer: &Printer) {
    match format {
        Format::Text => printer.stdout(&drift::render_text(report, &paint_adapter(printer))),
        Format::Json => printer.stdout(&drift::render_json(report)),
    }
}

/// The notes and refusals of the addresses asked for, in the order given.
fn print_asked(asked: &[(String, Asked)], printer: &Printer) {
    for (_, outcome) in asked {
        match outcome {
            Asked::AlreadyDeclared(text) => printer.note(text),
            Asked::Refused(text) => printer.error(text),
            Asked::Adopt => {}
        }
    }
}

fn print_written(written: &[Written], printer: &Printer) {
    for file in written {
        for adoption in &file.adoptions {
            printer.note(&format!(
                "{} {} = {:?} at {}",
                printer.paint(Style::Success, "adopted"),
                adoption.address,
                adoption.shown,
                adoption.location
            ));
        }
        if file.shared_layer {
            printer.note(&format!(
                "  {} is a shared layer: every environment that extends it now declares this value",
                crate::spec::source::display_name(&file.path)
            ));
        }
    }
}

fn print_adoption_error(error: AdoptError, printer: &Printer) {
    match error {
        AdoptError::Refused { asked } => {
            print_asked(&asked, printer);
            printer.error("nothing was adopted; no file was changed");
        }
        AdoptError::Unchanged { asked, message } => {
            print_asked(&asked, printer);
            printer.error(&message);
        }
        AdoptError::Write {
            asked,
            written,
            message,
        } => {
            print_asked(&asked, printer);
            print_written(&written, printer);
            printer.error(&message);
        }
    }
}
