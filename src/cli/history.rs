//! `tldw-ops history`: the journal, for people and tools. The reading is `ops::history`'s; this
//! prints it. The durations and short hashes here serve `show` too.

use std::path::PathBuf;

use super::common::{elapsed_text, report_state_error, runtime};
use super::{ExitStatus, Printer, desired_file};
use crate::ops::history::{self as ops, History};
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey};

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this environment (`env` or `deployment/env`).
    #[arg(long, short = 'e')]
    environment: Option<String>,
    /// The desired-state file whose state to read (default tldw-ops.yaml); or use --state.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// How many applies to list, newest first.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Output format on stdout: a table for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn parse_environment(text: &str) -> EnvironmentKey {
    match text.split_once('/') {
        Some((deployment, environment)) => EnvironmentKey {
            deployment: deployment.to_string(),
            environment: environment.to_string(),
        },
        None => EnvironmentKey {
            deployment: "default".to_string(),
            environment: text.to_string(),
        },
    }
}

pub(super) fn duration(record: &ApplyRecord) -> String {
    match record.finished_at {
        Some(finished) => took(record.started_at, finished),
        None => "-".to_string(),
    }
}

/// How long from `started` to `finished`, as people say it (`37 ms`, `10.5 s`, `2m 05s`).
pub(super) fn took(started: jiff::Timestamp, finished: jiff::Timestamp) -> String {
    elapsed_text(finished.duration_since(started).unsigned_abs())
}

/// The plan hash as the table shows it: enough hex to tell plans apart, like a short commit.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

pub fn history(args: HistoryArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let key = args.environment.as_deref().map(parse_environment);
    let History { location, records } =
        match runtime().block_on(ops::history(&file, settings, key.as_ref(), args.limit)) {
            Ok(history) => history,
            Err(error) => return report_state_error(error, printer),
        };
    match args.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = records
                .iter()
                .map(|record| {
                    serde_json::json!({
                        "id": record.id,
                        "environment": record.environment.environment,
                        "deployment": record.environment.deployment,
                        "kind": record.kind,
                        "started_at": record.started_at.to_string(),
                        "finished_at": record.finished_at.map(|time| time.to_string()),
                        "user": record.actor_user,
                        "host": record.actor_host,
                        "plan_hash": record.plan_hash,
                        "outcome": record.outcome.as_str(),
                        "changes": record.changes,
                        "health_passed": record.health_passed,
                        "git_commit": record.git_commit,
                        "shared_hash": record.shared_hash,
                        "override_reason": record.override_reason,
                        "message": record.message,
                    })
                })
                .collect();
            let mut text = serde_json::to_string_pretty(&serde_json::json!({ "applies": items }))
                .expect("history serialises");
            text.push('\n');
            printer.stdout(&text);
        }
        Format::Text => {
            if records.is_empty() {
                printer.note(&format!("no applies recorded in {location}"));
                return ExitStatus::Success;
            }
            let mut text = format!(
                "{:<26} {:<14} {:<9} {:<20} {:<24} {:<12} {:<12} {:>7} {:>8}\n",
                "APPLY",
                "ENVIRONMENT",
                "KIND",
                "STARTED",
                "WHO",
                "PLAN",
                "OUTCOME",
                "CHANGES",
                "TOOK"
            );
            for record in &records {
                text.push_str(&format!(
                    "{:<26} {:<14} {:<9} {:<20} {:<24} {:<12} {:<12} {:>7} {:>8}\n",
                    record.id,
                    record.environment.to_string(),
                    record.kind,
                    record.started_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                    format!("{}@{}", record.actor_user, record.actor_host),
                    short_hash(&record.plan_hash),
                    record.outcome.as_str(),
                    record.changes,
                    duration(record)
                ));
            }
            printer.stdout(&text);
        }
    }
    ExitStatus::Success
}

#[cfg(test)]
mod tests {
    use super::{short_hash, took};

    #[test]
    fn an_apply_s_duration_reads_as_people_say_it_not_in_milliseconds() {
        let started: jiff::Timestamp = "2026-11-26T03:16:34Z".parse().unwrap();
        let later = |millis: i64| started + jiff::SignedDuration::from_millis(millis);
        assert_eq!(took(started, later(37)), "37 ms");
        assert_eq!(took(started, later(10_515)), "10.5 s");
        assert_eq!(took(started, later(125_000)), "2m 05s");
    }

    #[test]
    fn the_table_shows_twelve_hex_digits_of_the_plan_hash() {
        assert_eq!(short_hash(&"ab".repeat(32)), "abababababab");
        assert_eq!(short_hash("abc"), "abc");
    }
}
