//! `tldw-ops promote --from staging --to prod`: explain a promotion without doing it. Which
//! shared layers each environment last applied, what prod would receive from the shared layers
//! (compared with what prod last applied, by fingerprint), where the two environments resolve
//! the shared layers differently, and whether the promotion gate passes now and why. Changes
//! nothing: no lock, no store created, no deployment read. Exit 0 when the gate passes, 3 when
//! it refuses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use super::common::{report_pipeline_error, report_state_error, runtime};
use super::envdiff::{SaltSource, existing_store, per_run_salt, side_json};
use super::output::Style;
use super::{ExitStatus, Printer};
use crate::envdiff::{EnvDiff, Layer, diff, render_text};
use crate::environments::{Resolved, find, resolve};
use crate::model::{Desired, SecretSource};
use crate::pipeline::state_location;
use crate::promotion::{Gate, Verdict, evaluate, short};
use crate::secrets::{show_hash, value_hash};
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, ManagedRecord, Outcome, StateError, StateStore};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment that proves changes first (`env` or `deployment/env`).
    #[arg(long, value_name = "ENV")]
    from: String,
    /// The environment that would receive them.
    #[arg(long, value_name = "ENV")]
    to: String,
    /// Where to find the two environments' files, by their `environment:` field.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The `--from` environment's file, instead of searching DIR.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// The `--to` environment's file, instead of searching DIR.
    #[arg(long, value_name = "FILE")]
    to_file: Option<PathBuf>,
    /// Output format on stdout: a table for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = super::history::Format::Text)]
    format: super::history::Format,
}

/// One address prod would receive from the shared layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    pub address: String,
    /// `create`, `update`, or `unknown` (a secret whose source cannot be read here).
    pub action: &'static str,
    /// The value prod would get: as written, or a fingerprint, or the secret's source.
    pub value: String,
    pub declared_at: Option<String>,
    /// What prod last applied there (a fingerprint), if it manages the address.
    pub to_last_applied: Option<String>,
    /// Whether the `from` environment last applied the same value: `same`, `differs`,
    /// `not managed`, or `unknown`.
    pub from_has: &'static str,
}

/// The newest successful apply that put layers in place.
fn last_layers(history: &[ApplyRecord]) -> Option<&ApplyRecord> {
    history.iter().find(|record| {
        record.outcome == Outcome::Succeeded && matches!(record.kind.as_str(), "apply" | "resume")
    })
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let from_file = match locate(&args.from_file, &args.dir, &args.from, settings, printer) {
        Ok(file) => file,
        Err(status) => return status,
    };
    let to_file = match locate(&args.to_file, &args.dir, &args.to, settings, printer) {
        Ok(file) => file,
        Err(status) => return status,
    };
    let (from, to) = match (resolve(&from_file, settings), resolve(&to_file, settings)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(error), _) | (_, Err(error)) => return report_pipeline_error(error, printer),
    };
    let Some(promotion) = to.checked.spec.promotion.clone() else {
        printer.error(&format!(
            "{} declares no `promotion:`; it takes any change without a gate",
            to_file.display()
        ));
        return ExitStatus::Error;
    };
    if promotion.from != from.key.environment || from.key.deployment != to.key.deployment {
        printer.error(&format!(
            "{} promotes from {}/{}, not from {} ({})",
            to_file.display(),
            to.key.deployment,
            promotion.from,
            from.key,
            from_file.display()
        ));
        return ExitStatus::Error;
    }
    let gate = Gate {
        from: from.key.clone(),
        soak_seconds: promotion.soak.as_seconds(),
    };
    let location = state_location(&to_file, settings);
    let journal = match runtime().block_on(read_journal(&location, &from.key, &to.key)) {
        Ok(journal) => journal,
        Err(error) => return report_state_error(error, printer),
    };
    let now = settings.now();
    let verdict = evaluate(to.shared_hash.as_deref(), &gate, &journal.from_history, now);
    let received = receives(&to, &journal);
    let overrides = diff(&from, &to, &journal.salt).declared_by(Layer::Shared);
    let report = Report {
        from: &from,
        to: &to,
        gate: &gate,
        verdict: &verdict,
        journal: &journal,
        received: &received,
        overrides: &overrides,
        location: &location,
        now,
    };
    match args.format {
        super::history::Format::Json => {
            let mut text = serde_json::to_string_pretty(&report.json()).expect("reports serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        super::history::Format::Text => printer.stdout(&report.text(printer)),
    }
    if verdict.passes() {
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    }
}

fn locate(
    given: &Option<PathBuf>,
    directory: &Path,
    name: &str,
    settings: &Settings,
    printer: &Printer,
) -> Result<PathBuf, ExitStatus> {
    if let Some(file) = given {
        return Ok(file.clone());
    }
    find(directory, name, settings).map_err(|error| {
        printer.error(&error.to_string());
        ExitStatus::Error
    })
}

/// What the state store knows about the two environments. Empty when there is no store yet.
struct Journal {
    salt: Vec<u8>,
    salt_source: SaltSource,
    from_history: Vec<ApplyRecord>,
    to_history: Vec<ApplyRecord>,
    from_managed: Option<BTreeMap<String, ManagedRecord>>,
    to_managed: Option<BTreeMap<String, ManagedRecord>>,
}

async fn read_journal(
    location: &str,
    from: &EnvironmentKey,
    to: &EnvironmentKey,
) -> Result<Journal, StateError> {
    let Some((store, salt)) = existing_store(location).await else {
        return Ok(Journal {
            salt: per_run_salt(),
            salt_source: SaltSource::PerRun,
            from_history: Vec::new(),
            to_history: Vec::new(),
            from_managed: None,
            to_managed: None,
        });
    };
    let known: Vec<EnvironmentKey> = store
        .environments()
        .await?
        .into_iter()
        .map(|summary| summary.environment)
        .collect();
    // Reading an unknown environment would create it: only read the ones the store has.
    let managed = async |key: &EnvironmentKey| -> Result<_, StateError> {
        Ok(if known.contains(key) {
            Some(store.environment(key).await?.managed)
        } else {
            None
        })
    };
    Ok(Journal {
        from_managed: managed(from).await?,
        to_managed: managed(to).await?,
        from_history: store.applies(Some(from), u32::MAX).await?,
        to_history: store.applies(Some(to), 50).await?,
        salt,
        salt_source: SaltSource::Store,
    })
}

/// The addresses prod declares through its shared layers whose value differs from what prod
/// last applied there, with whether `from` last applied the same.
fn receives(to: &Resolved, journal: &Journal) -> Vec<Received> {
    let salt = journal.salt.as_slice();
    let mut out = Vec::new();
    for resource in to.desired.resources.values() {
        let shared = resource
            .source
            .as_ref()
            .is_some_and(|location| to.shared_files.contains(&*location.file));
        if !shared {
            continue;
        }
        let address = resource.address.as_str();
        let last = journal
            .to_managed
            .as_ref()
            .and_then(|managed| managed.get(address));
        let from_last = journal
            .from_managed
            .as_ref()
            .and_then(|managed| managed.get(address));
        // The hash the apply would record, when it can be known here.
        let (value, desired_hash) = match &resource.desired {
            Desired::Secret(secret) => match &secret.source {
                SecretSource::Generate(_) => ("(sensitive) generated at apply".to_string(), None),
                _ if to.unreadable.contains_key(resource.address.name()) => {
                    ("(sensitive) source not readable here".to_string(), None)
                }
                _ => {
                    let hash = secret
                        .resolved
                        .as_deref()
                        .map(|value| value_hash(salt, value));
                    (
                        format!(
                            "(sensitive) {}",
                            hash.as_deref().map(show_hash).unwrap_or_default()
                        ),
                        hash,
                    )
                }
            },
            desired => {
                let text = desired.canonical().unwrap_or_default();
                let hash = value_hash(salt, &text);
                let shown = if resource.sensitive {
                    format!("(sensitive) {}", show_hash(&hash))
                } else {
                    text
                };
                (shown, Some(hash))
            }
        };
        let generated = matches!(
            &resource.desired,
            Desired::Secret(secret) if matches!(secret.source, SecretSource::Generate(_))
        );
        let action = match (last, &desired_hash) {
            (None, _) => "create",
            // A generated secret is kept until it is due for rotation.
            (Some(_), None) if generated => continue,
            (Some(_), None) => "unknown",
            (Some(last), Some(hash)) if last.value_hash == *hash => continue,
            (Some(_), Some(_)) => "update",
        };
        let from_has = match (from_last, &desired_hash) {
            (None, _) => "not managed",
            (Some(_), None) => "unknown",
            (Some(record), Some(hash)) if record.value_hash == *hash => "same",
            (Some(_), Some(_)) => "differs",
        };
        out.push(Received {
            address: address.to_string(),
            action,
            value,
            declared_at: resource.source.as_ref().map(ToString::to_string),
            to_last_applied: last.map(|record| show_hash(&record.value_hash)),
            from_has,
        });
    }
    out
}

struct Report<'a> {
    from: &'a Resolved,
    to: &'a Resolved,
    gate: &'a Gate,
    verdict: &'a Verdict,
    journal: &'a Journal,
    received: &'a [Received],
    overrides: &'a EnvDiff,
    location: &'a str,
    now: Timestamp,
}

fn layers_line(record: Option<&ApplyRecord>) -> String {
    match record {
        Some(record) => format!(
            "{} (apply {}, {})",
            record.shared_hash.as_deref().map(short).unwrap_or("none"),
            record.id,
            record
                .finished_at
                .map(|time| time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default()
        ),
        None => "nothing yet".to_string(),
    }
}

fn applied_json(record: Option<&ApplyRecord>) -> serde_json::Value {
    record.map_or(serde_json::Value::Null, |record| {
        serde_json::json!({
            "apply_id": record.id,
            "shared_hash": record.shared_hash,
            "finished_at": record.finished_at.map(|time| time.to_string()),
            "health_passed": record.health_passed,
        })
    })
}

impl Report<'_> {
    fn text(&self, printer: &Printer) -> String {
        let (from, to) = (&self.from.key.environment, &self.to.key.environment);
        let mut out = format!(
            "promote {from} ({}) -> {to} ({})\n\n",
            self.from.file.display(),
            self.to.file.display()
        );
        out.push_str(&format!(
            "Shared layers ({})\n",
            self.to
                .shared_files
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let rows = [
            (
                format!("{to} would apply"),
                self.to
                    .shared_hash
                    .as_deref()
                    .map(short)
                    .unwrap_or("none (no extends)")
                    .to_string(),
            ),
            (
                format!("{from} last applied"),
                layers_line(last_layers(&self.journal.from_history)),
            ),
            (
                format!("{to} last applied"),
                layers_line(last_layers(&self.journal.to_history)),
            ),
        ];
        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        for (label, value) in rows {
            out.push_str(&format!("  {label:<width$}  {value}\n"));
        }
        out.push_str(&format!(
            "\nWhat {to} would receive from the shared layers\n"
        ));
        if self.journal.to_managed.is_none() {
            out.push_str(&format!(
                "  ({to} has no recorded state in {}: everything is new to it)\n",
                self.location
            ));
        }
        if self.received.is_empty() {
            out.push_str(&format!("  nothing: {to} already has every shared value\n"));
        }
        for item in self.received {
            let symbol = match item.action {
                "create" => '+',
                "update" => '~',
                _ => '?',
            };
            let last = item
                .to_last_applied
                .as_deref()
                .map(|hash| format!(" (was {hash})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {symbol} {} = {}{last}  [{}; {from}: {}]\n",
                item.address,
                item.value,
                item.declared_at.as_deref().unwrap_or("-"),
                item.from_has
            ));
        }
        out.push_str(&format!(
            "\nWhere {from} and {to} resolve the shared layers differently\n"
        ));
        if self.overrides.differs() {
            for line in render_text(self.overrides, from, to).lines() {
                if line.is_empty() || !line.starts_with([' ', '\t']) && line.contains(" differ") {
                    continue;
                }
                out.push_str(&format!("  {line}\n"));
            }
        } else {
            out.push_str("  nowhere: neither environment overrides a shared value\n");
        }
        out.push_str(&format!(
            "  ({}; everything: tldw-ops envdiff {} {})\n",
            self.journal.salt_source.describe(self.location),
            self.from.file.display(),
            self.to.file.display()
        ));
        let soak = crate::promotion::human(self.gate.soak_seconds);
        out.push_str(&format!(
            "\nPromotion gate ({from}, soak {soak}) at {}\n",
            self.now.strftime("%Y-%m-%d %H:%M:%S UTC")
        ));
        match self.verdict {
            Verdict::Passes(evidence) => out.push_str(&format!(
                "  {} {}\n",
                printer.paint_stdout(Style::Success, "passes:"),
                evidence.explain(self.gate)
            )),
            Verdict::Refused(refusal) => out.push_str(&format!(
                "  {} {}\n",
                printer.paint_stdout(Style::Error, "refuses:"),
                refusal.explain(to, self.gate, self.to.shared_hash.as_deref())
            )),
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let explanation = match self.verdict {
            Verdict::Passes(evidence) => evidence.explain(self.gate),
            Verdict::Refused(refusal) => refusal.explain(
                &self.to.key.environment,
                self.gate,
                self.to.shared_hash.as_deref(),
            ),
        };
        serde_json::json!({
            "from": side_json(self.from),
            "to": side_json(self.to),
            "from_last_applied": applied_json(last_layers(&self.journal.from_history)),
            "to_last_applied": applied_json(last_layers(&self.journal.to_history)),
            "receives": self.received,
            "shared_overrides": {
                "counts": self.overrides.counts,
                "sections": self.overrides.sections,
            },
            "fingerprint_salt": self.journal.salt_source.as_str(),
            "gate": {
                "from": self.gate.from.environment,
                "soak_seconds": self.gate.soak_seconds,
                "now": self.now.to_string(),
                "passes": self.verdict.passes(),
                "explanation": explanation,
                "detail": self.verdict,
            },
        })
    }
}
