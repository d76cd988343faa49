//! `tldw-ops drift [FILE]`: what changed in the deployment outside tldw-ops since the last
//! apply, and who most likely changed it. Exit 2 when something drifted, so cron and
//! monitoring can alert. `--adopt ADDRESS...` writes observed values back into the YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::common::runtime;
use super::output::{Style, paint_adapter};
use super::{ExitStatus, Printer, desired_file};
use crate::drift::adopt::{self, Adoption};
use crate::drift::{self, DriftReport};
use crate::pipeline::Prepared;
use crate::providers::files::{read_snapshot, write_atomic};
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
    let prepared =
        match runtime().block_on(super::common::load_and_observe(&file, settings, printer)) {
            Ok(prepared) => prepared,
            Err(status) => return status,
        };
    for warning in &prepared.observed.warnings {
        printer.warning(warning);
    }
    let mut report = drift::detect(
        &prepared.loaded.desired,
        &prepared.observed,
        &prepared.loaded.state,
    );
    report.policy = drift::policy::findings(&prepared.files);
    if !args.adopt.is_empty() {
        match adopt_all(&args.adopt, &prepared, printer) {
            Ok(adopted) => {
                // Adopted drift now matches the YAML; the next apply records it.
                let (now_declared, remaining) = std::mem::take(&mut report.drift)
                    .into_iter()
                    .partition(|item| adopted.contains(&item.address));
                report.drift = remaining;
                report.matches_desired.extend(
                    now_declared
                        .into_iter()
                        .map(|item: crate::drift::Drifted| item.address),
                );
                report.matches_desired.sort();
            }
            Err(status) => return status,
        }
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

/// Writes every adoption, or nothing when one of them is refused.
fn adopt_all(
    addresses: &[String],
    prepared: &Prepared,
    printer: &Printer,
) -> Result<BTreeSet<crate::model::Address>, ExitStatus> {
    let loaded = &prepared.loaded;
    let mut adoptions: Vec<Adoption> = Vec::new();
    let mut refused = false;
    let mut adopted = BTreeSet::new();
    for text in addresses {
        match adopt::prepare(text, &loaded.checked, &loaded.desired, &prepared.observed) {
            Ok(Some(adoption)) => adoptions.push(adoption),
            Ok(None) => {
                printer.note(&format!(
                    "{text}: the YAML already declares the observed value; nothing to adopt"
                ));
            }
            Err(refusal) => {
                printer.error(&refusal.to_string());
                refused = true;
            }
        }
    }
    if refused {
        printer.error("nothing was adopted; no file was changed");
        return Err(ExitStatus::Error);
    }
    let mut by_file: BTreeMap<PathBuf, Vec<&Adoption>> = BTreeMap::new();
    for adoption in &adoptions {
        by_file
            .entry(adoption.path.clone())
            .or_default()
            .push(adoption);
    }
    // Edit every file in memory first, so a problem in one leaves all of them untouched.
    let mut writes = Vec::new();
    for (path, group) in &by_file {
        let snapshot = read_snapshot(path).map_err(|error| {
            printer.error(&error.to_string());
            ExitStatus::Error
        })?;
        let name = crate::spec::source::display_name(path);
        let loaded_text = loaded.checked.sources().text(&name);
        let current = snapshot.content.clone().unwrap_or_default();
        if loaded_text != Some(current.as_str()) {
            printer.error(&format!(
                "{} changed while this command ran; nothing was adopted",
                path.display()
            ));
            return Err(ExitStatus::Error);
        }
        let edited = adopt::apply_edits(&current, group).map_err(|error| {
            printer.error(&format!("{}: {error}; nothing was adopted", path.display()));
            ExitStatus::Error
        })?;
        writes.push((snapshot, edited, group));
    }
    for (snapshot, edited, group) in writes {
        if let Err(error) = write_atomic(
            &snapshot.path,
            edited.as_bytes(),
            snapshot.mode.unwrap_or(0o644),
            snapshot.owner,
        ) {
            printer.error(&error.to_string());
            return Err(ExitStatus::Error);
        }
        for adoption in group {
            printer.note(&format!(
                "{} {} = {:?} at {}",
                printer.paint(Style::Success, "adopted"),
                adoption.address,
                adoption.shown,
                adoption.location
            ));
            adopted.insert(adoption.address.clone());
        }
        if loaded.checked.loaded.files.first() != Some(&snapshot.path) {
            printer.note(&format!(
                "  {} is a shared layer: every environment that extends it now declares this value",
                crate::spec::source::display_name(&snapshot.path)
            ));
        }
    }
    if !adopted.is_empty() {
        printer.note(
            "The state store is unchanged: the next `tldw-ops apply` records the adopted values.",
        );
    }
    Ok(adopted)
}
