//! `tldw-ops state {list, unlock, migrate}`: look after the state store itself. The work is
//! `ops::state`'s; this asks for `--force`, prints, and picks the exit status.

use std::path::PathBuf;

use super::common::{report_state_error, runtime};
use super::history::parse_environment;
use super::{ExitStatus, Printer, desired_file};
use crate::ops::state::{self as ops, UnlockError, Unlocked};
use crate::settings::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List environments, their last apply and lock holder.
    #[command(after_help = super::help::STATE_LIST_HELP)]
    List(ListArgs),
    /// Clear an environment's lock left by an apply that is gone.
    #[command(after_help = super::help::STATE_UNLOCK_HELP)]
    Unlock(UnlockArgs),
    /// Copy history, what each environment manages and secret metadata from one store into
    /// another (typically a SQLite file into PostgreSQL). Safe to run again.
    #[command(after_help = super::help::STATE_MIGRATE_HELP)]
    Migrate(super::state_migrate::MigrateArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The desired-state file whose state to read (default tldw-ops.yaml); or use --state.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format on stdout: a table for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = super::history::Format::Text)]
    format: super::history::Format,
}

#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The desired-state file whose environment to unlock (default tldw-ops.yaml).
    file: Option<PathBuf>,
    /// The environment (`env` or `deployment/env`), instead of reading it from FILE.
    #[arg(long, short = 'e')]
    environment: Option<String>,
    /// Required: clearing a lock can let two applies run at once if the holder is alive.
    #[arg(long)]
    force: bool,
}

pub fn run(command: Command, settings: &Settings, printer: &Printer) -> ExitStatus {
    match command {
        Command::List(args) => list(args, settings, printer),
        Command::Unlock(args) => unlock(args, settings, printer),
        Command::Migrate(args) => super::state_migrate::run(args, settings, printer),
    }
}

fn list(args: ListArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let environments = match runtime().block_on(ops::list(&file, settings)) {
        Ok(environments) => environments,
        Err(error) => return report_state_error(error, printer),
    };
    match args.format {
        super::history::Format::Json => {
            let mut text =
                serde_json::to_string_pretty(&serde_json::json!({ "environments": environments }))
                    .expect("environments serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        super::history::Format::Text => {
            let rows: Vec<[String; 4]> = environments.iter().map(summary_row).collect();
            printer.stdout(&table(
                ["ENVIRONMENT", "MANAGED", "LAST APPLY", "LOCK"],
                &rows,
            ));
        }
    }
    ExitStatus::Success
}

fn unlock(args: UnlockArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    if !args.force {
        printer.error(
            "`state unlock` clears a lock another apply may still hold; pass --force to confirm",
        );
        return ExitStatus::Error;
    }
    let file = desired_file(args.file);
    let environment = args.environment.as_deref().map(parse_environment);
    match runtime().block_on(ops::unlock(&file, environment, settings)) {
        Ok(Unlocked::Cleared { key, holder }) => {
            printer.note(&format!(
                "cleared the lock of {key} held by apply {} on {} (pid {}) since {}",
                holder.apply_id, holder.host, holder.pid, holder.started_at
            ));
            ExitStatus::Success
        }
        Ok(Unlocked::NotLocked { key }) => {
            printer.note(&format!("environment {key} was not locked"));
            ExitStatus::Success
        }
        Err(UnlockError::State(error)) => report_state_error(error, printer),
        Err(error) => {
            printer.error(&error.to_string());
            ExitStatus::Error
        }
    }
}

/// One row of `state list`. An interrupted apply ([`ops::interrupted`]) says so, and how to go
/// on, instead of "running".
fn summary_row(summary: &crate::state::EnvironmentSummary) -> [String; 4] {
    let last = summary
        .last_apply
        .as_ref()
        .map(|record| {
            let outcome = if ops::interrupted(summary) {
                "interrupted (apply --resume or rollback --unfinished)"
            } else {
                record.outcome.as_str()
            };
            format!(
                "{} {} {}",
                record.id,
                outcome,
                record.started_at.strftime("%Y-%m-%d %H:%M")
            )
        })
        .unwrap_or_else(|| "-".to_string());
    let lock = summary
        .lock
        .as_ref()
        .map(|holder| format!("{} on {} pid {}", holder.apply_id, holder.host, holder.pid))
        .unwrap_or_else(|| "-".to_string());
    [
        summary.environment.to_string(),
        summary.managed.to_string(),
        last,
        lock,
    ]
}

/// Columns padded to their widest cell (counted in characters), numbers right-aligned in the
/// second column, no trailing spaces.
fn table(header: [&str; 4], rows: &[[String; 4]]) -> String {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_string);
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = width - cell.chars().count();
            if column == 1 {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if column < 3 {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if column < 3 {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_line_up_whatever_the_widths() {
        let rows = [
            [
                "default/a-very-long-environment-name".to_string(),
                "12345".to_string(),
                "x".to_string(),
                "-".to_string(),
            ],
            [
                "default/dev".to_string(),
                "3".to_string(),
                "ab".to_string(),
                "lock".to_string(),
            ],
        ];
        let text = table(["ENVIRONMENT", "MANAGED", "LAST APPLY", "LOCK"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        let column = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(column(lines[0], "LAST APPLY"), column(lines[1], "x"));
        assert_eq!(column(lines[1], "x"), column(lines[2], "ab"));
        // Numbers are right-aligned under MANAGED.
        assert_eq!(column(lines[1], "12345") + 5, column(lines[2], "3") + 1);
        assert!(text.lines().all(|line| line == line.trim_end()));
    }
}
