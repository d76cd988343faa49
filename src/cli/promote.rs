//! `tldw-ops promote --from staging --to prod`: explain a promotion without doing it. Which
//! shared layers each environment last applied, what prod would receive from the shared layers
//! (compared with what prod last applied, by fingerprint), where the two environments resolve
//! the shared layers differently, and whether the promotion gate passes now and why. Changes
//! nothing: no lock, no store created, no deployment read. Exit 0 when the gate passes, 3 when
//! it refuses.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::common::{report_pipeline_error, report_state_error, runtime};
use super::output::Style;
use super::{ExitStatus, Printer};
use crate::envdiff::{EnvDiff, render_text};
use crate::environments::Resolved;
use crate::ops::envdiff::side_json;
use crate::ops::promote::{Journal, PromoteError, Received, explain, last_layers, locate};
use crate::promotion::{Gate, Verdict, short};
use crate::settings::Settings;
use crate::state::ApplyRecord;

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

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let from_file = match located(&args.from_file, &args.dir, &args.from, settings, printer) {
        Ok(file) => file,
        Err(status) => return status,
    };
    let to_file = match located(&args.to_file, &args.dir, &args.to, settings, printer) {
        Ok(file) => file,
        Err(status) => return status,
    };
    let promotion = match runtime().block_on(explain(&from_file, &to_file, settings)) {
        Ok(promotion) => promotion,
        Err(PromoteError::Pipeline(error)) => return report_pipeline_error(error, printer),
        Err(PromoteError::State(error)) => return report_state_error(error, printer),
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    let report = Report {
        from: &promotion.from,
        to: &promotion.to,
        gate: &promotion.gate,
        verdict: &promotion.verdict,
        journal: &promotion.journal,
        received: &promotion.received,
        overrides: &promotion.overrides,
        location: &promotion.location,
        now: promotion.now,
    };
    match args.format {
        super::history::Format::Json => {
            let mut text = serde_json::to_string_pretty(&report.json()).expect("reports serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        super::history::Format::Text => printer.stdout(&report.text(printer)),
    }
    if promotion.verdict.passes() {
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    }
}

/// [`locate`]'s file, or the exit status after saying why there is none.
fn located(
    given: &Option<PathBuf>,
    directory: &Path,
    name: &str,
    settings: &Settings,
    printer: &Printer,
) -> Result<PathBuf, ExitStatus> {
    locate(given.as_deref(), directory, name, settings).map_err(|error| {
        printer.error(&error.to_string());
        ExitStatus::Error
    })
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
