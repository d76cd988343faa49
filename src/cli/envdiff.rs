//! `tldw-ops envdiff A B`: how two resolved environments differ, address by address, secrets
//! as fingerprints. Reads the two files and, when one exists, the state store's salt; never
//! creates a store, takes a lock or looks at a deployment.

use std::path::PathBuf;

use super::common::{report_pipeline_error, runtime};
use super::{ExitStatus, Printer};
use crate::envdiff::{EnvDiff, diff, render_text};
use crate::environments::{Resolved, resolve};
use crate::pipeline::state_location;
use crate::settings::Settings;
use crate::state::location::exists;
use crate::state::{StateStore, Store, open};

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

/// Where the fingerprint salt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltSource {
    /// The state store's: fingerprints match those in plans and `show`.
    Store,
    /// Random for this run: fingerprints compare only within this output.
    PerRun,
}

impl SaltSource {
    pub fn describe(self, location: &str) -> String {
        match self {
            SaltSource::Store => format!(
                "secrets are compared by fingerprint with the salt of the state store {location}"
            ),
            SaltSource::PerRun => "no state store found: secrets are compared by fingerprint \
                                   with a salt made for this run (they match nothing else)"
                .to_string(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SaltSource::Store => "state_store",
            SaltSource::PerRun => "per_run",
        }
    }
}

/// Opens the store at `location` only if it already exists, and takes its salt from any
/// environment it knows (the salt is per store).
pub async fn existing_store(location: &str) -> Option<(Store, Vec<u8>)> {
    if !exists(location) {
        return None;
    }
    let store = open(location).await.ok()?;
    let known = store.environments().await.ok()?.into_iter().next()?;
    let salt = store.environment(&known.environment).await.ok()?.salt;
    Some((store, salt))
}

pub fn per_run_salt() -> Vec<u8> {
    let mut salt = vec![0u8; 32];
    getrandom::fill(&mut salt).expect("the operating system random source is available");
    salt
}

/// How an environment is named in output: its name, or its file when both share a name.
pub fn names(a: &Resolved, b: &Resolved) -> (String, String) {
    if a.key == b.key {
        (a.file.display().to_string(), b.file.display().to_string())
    } else {
        (a.key.to_string(), b.key.to_string())
    }
}

pub fn side_json(resolved: &Resolved) -> serde_json::Value {
    serde_json::json!({
        "environment": resolved.key.environment,
        "deployment": resolved.key.deployment,
        "file": resolved.file.display().to_string(),
        "shared_hash": resolved.shared_hash,
        "shared_files": resolved.shared_files,
    })
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let (a, b) = match (resolve(&args.a, settings), resolve(&args.b, settings)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(error), _) | (_, Err(error)) => return report_pipeline_error(error, printer),
    };
    let location = state_location(&args.a, settings);
    let (salt, source) = match runtime().block_on(existing_store(&location)) {
        Some((_, salt)) => (salt, SaltSource::Store),
        None => (per_run_salt(), SaltSource::PerRun),
    };
    let difference = diff(&a, &b, &salt);
    let (name_a, name_b) = names(&a, &b);
    match args.format {
        super::history::Format::Json => {
            let mut text = serde_json::to_string_pretty(&json(&difference, &a, &b, source))
                .expect("diffs serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        super::history::Format::Text => {
            printer.stdout(&format!(
                "envdiff {name_a} ({}) -> {name_b} ({})\n{}\n\n{}",
                a.file.display(),
                b.file.display(),
                source.describe(&location),
                render_text(&difference, &name_a, &name_b)
            ));
        }
    }
    if args.detailed_exitcode && difference.differs() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    }
}

pub fn json(
    difference: &EnvDiff,
    a: &Resolved,
    b: &Resolved,
    source: SaltSource,
) -> serde_json::Value {
    serde_json::json!({
        "a": side_json(a),
        "b": side_json(b),
        "fingerprint_salt": source.as_str(),
        "differs": difference.differs(),
        "counts": difference.counts,
        "sections": difference.sections,
    })
}
