//! `tldw-ops envdiff A B`: how two resolved environments differ, address by address, secrets
//! as fingerprints. Reads the two files and, when one exists, the state store's salt; never
//! creates a store, takes a lock or looks at a deployment.

use std::path::PathBuf;

use super::common::{report_pipeline_error, runtime};
use super::{ExitStatus, Printer};
use crate::envdiff::render_text;
use crate::ops::envdiff::{compare, names};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first environment's desired-state file.
    a: PathBuf,
    /// The second environment's desired-state file.
    b: PathBuf,
    /// Output format on stdout: a table for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = super::history::Format::Text)]
    format: super::history::Format,
    /// Exit 2 when the environments differ (0 when they resolve the same).
    #[arg(long)]
    detailed_exitcode: bool,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let comparison = match runtime().block_on(compare(&args.a, &args.b, settings)) {
        Ok(comparison) => comparison,
        Err(error) => return report_pipeline_error(error, printer),
    };
    let (a, b) = (&comparison.a, &comparison.b);
    let (name_a, name_b) = names(a, b);
    match args.format {
        super::history::Format::Json => {
            let mut text =
                serde_json::to_string_pretty(&comparison.json()).expect("diffs serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        super::history::Format::Text => {
            printer.stdout(&format!(
                "envdiff {name_a} ({}) -> {name_b} ({})\n{}\n\n{}",
                a.file.display(),
                b.file.display(),
                comparison.salt_source.describe(&comparison.location),
                render_text(&comparison.difference, &name_a, &name_b)
            ));
        }
    }
    if args.detailed_exitcode && comparison.difference.differs() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    }
}
