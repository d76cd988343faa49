//! `tldw-ops history` and `tldw-ops show <apply-id>`: the journal, for people and tools.

use std::path::PathBuf;

use super::common::{elapsed_text, report_state_error, runtime};
use super::output::Style;
use super::{ExitStatus, Printer, desired_file};
use crate::pipeline::state_location;
use crate::plan::Plan;
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, StateStore, open_read_only};

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

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// An apply id (see `tldw-ops history`), or a plan file saved with `plan --out`.
    #[arg(value_name = "APPLY_ID|PLAN")]
    pub(super) apply_id: String,
    /// The desired-state file whose state to read (default tldw-ops.yaml); or use --state.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format on stdout: text for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
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

fn duration(record: &ApplyRecord) -> String {
    match record.finished_at {
        Some(finished) => took(record.started_at, finished),
        None => "-".to_string(),
    }
}

/// How long from `started` to `finished`, as people say it (`37 ms`, `10.5 s`, `2m 05s`).
fn took(started: jiff::Timestamp, finished: jiff::Timestamp) -> String {
    elapsed_text(finished.duration_since(started).unsigned_abs())
}

/// The plan hash as the table shows it: enough hex to tell plans apart, like a short commit.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

pub fn history(args: HistoryArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let location = state_location(&file, settings);
    runtime().block_on(async {
        let store = match open_read_only(&location).await {
            Ok(store) => store,
            Err(error) => return report_state_error(error, printer),
        };
        let key = args.environment.as_deref().map(parse_environment);
        let records = store.applies(key.as_ref(), args.limit).await;
        store.close().await;
        let records = match records {
            Ok(records) => records,
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
                let mut text =
                    serde_json::to_string_pretty(&serde_json::json!({ "applies": items }))
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
    })
}

pub fn show(args: ShowArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let location = state_location(&file, settings);
    runtime().block_on(async {
        let store = match open_read_only(&location).await {
            Ok(store) => store,
            Err(error) => return report_state_error(error, printer),
        };
        let record = match store.apply_record(&args.apply_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                printer.error(&format!("no apply with id `{}` in {location}", args.apply_id));
                return ExitStatus::Error;
            }
            Err(error) => return report_state_error(error, printer),
        };
        let steps = store.steps(&args.apply_id).await;
        store.close().await;
        let steps = match steps {
            Ok(steps) => steps,
            Err(error) => return report_state_error(error, printer),
        };
        let plan: Option<Plan> = serde_json::from_str(&record.plan_json).ok();
        match args.format {
            Format::Json => {
                let value = serde_json::json!({
                    "apply": {
                        "id": record.id,
                        "environment": record.environment.environment,
                        "deployment": record.environment.deployment,
                        "kind": record.kind,
                        "outcome": record.outcome.as_str(),
                        "started_at": record.started_at.to_string(),
                        "finished_at": record.finished_at.map(|time| time.to_string()),
                        "user": record.actor_user,
                        "host": record.actor_host,
                        "plan_hash": record.plan_hash,
                        "desired_hash": record.desired_hash,
                        "shared_hash": record.shared_hash,
                        "git_commit": record.git_commit,
                        "health_passed": record.health_passed,
                        "override_reason": record.override_reason,
                        "message": record.message,
                    },
                    "steps": steps,
                    "changes": plan.as_ref().map(|plan| &plan.changes),
                });
                let mut text = serde_json::to_string_pretty(&value).expect("show serialises");
                text.push('\n');
                printer.stdout(&text);
            }
            Format::Text => {
                let mut text = String::new();
                text.push_str(&format!(
                    "apply {}  environment {}  kind {}\n  plan     {}\n  started  {} by {}@{} (pid {})\n  finished {}  took {}\n  outcome  {}\n",
                    record.id,
                    record.environment,
                    record.kind,
                    record.plan_hash,
                    record.started_at,
                    record.actor_user,
                    record.actor_host,
                    record.pid,
                    record.finished_at.map(|time| time.to_string()).unwrap_or_else(|| "(not finished)".to_string()),
                    duration(&record),
                    printer.paint_stdout(
                        if record.outcome == crate::state::Outcome::Succeeded { Style::Success } else { Style::Warning },
                        record.outcome.as_str()
                    ),
                ));
                if let Some(health) = record.health_passed {
                    text.push_str(&format!("  health   {}\n", if health { "passed" } else { "failed" }));
                }
                if let Some(message) = &record.message {
                    text.push_str(&format!("  message  {message}\n"));
                }
                if let Some(commit) = &record.git_commit {
                    text.push_str(&format!("  commit   {commit}\n"));
                }
                if let Some(reason) = &record.override_reason {
                    text.push_str(&format!("  override {reason}\n"));
                }
                text.push_str("\nSteps:\n");
                for step in &steps {
                    let took = step
                        .finished_at
                        .map(|finished| took(step.started_at, finished))
                        .unwrap_or_else(|| "-".to_string());
                    text.push_str(&format!(
                        "  {}. {} {}  [{}] {took}\n",
                        step.index + 1,
                        step.kind,
                        step.target,
                        step.status.as_str()
                    ));
                    if let Some(path) = &step.checkpoint_path {
                        text.push_str(&format!("       checkpoint {path}\n"));
                    }
                    if let Some(error) = &step.error {
                        text.push_str(&format!("       error: {error}\n"));
                    }
                }
                if let Some(plan) = &plan {
                    text.push_str(&super::show::changes_section(
                        plan,
                        &super::output::paint_adapter(printer),
                    ));
                }
                printer.stdout(&text);
            }
        }
        ExitStatus::Success
    })
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
