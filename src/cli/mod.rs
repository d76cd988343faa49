//! The command line: one module per command, each parsing its arguments, calling the library,
//! printing, and returning an [`ExitStatus`]. stdout carries data, stderr carries people's text.

mod apply;
mod backup;
mod common;
mod docs;
mod drift;
mod envdiff;
mod gate;
mod help;
mod history;
mod import;
mod output;
mod plan;
mod promote;
mod rollback;
mod schema;
mod secrets;
mod show;
mod state;
mod state_migrate;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use output::Printer;

use crate::settings::{ColorChoice, Settings};

/// Exit codes, documented in README. `plan --detailed-exitcode` and `drift` use 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Success: nothing to do, or done.
    Success = 0,
    /// An error that is not one of the others (unreadable file, unreachable server, ...).
    Error = 1,
    /// Changes pending (with `--detailed-exitcode`) or drift found.
    Changes = 2,
    /// The desired state is invalid or breaks a policy rule.
    Invalid = 3,
    /// A saved plan no longer matches the deployment.
    StalePlan = 4,
    /// Another apply holds the lock for this environment.
    Locked = 5,
    /// The apply failed and was rolled back.
    RolledBack = 6,
    /// Needs attention: a rollback failed, or an unfinished apply exists.
    NeedsAttention = 7,
    /// The command line itself is wrong: an unknown flag or command, a missing or malformed
    /// argument. Its own code (sysexits' `EX_USAGE`), so a typo in a cron job's `drift` never
    /// reads as "drift found" (2).
    Usage = 64,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "tldw-ops",
    version,
    about = "Plan and apply the configuration of tldw_server deployments",
    long_about = "tldw-ops keeps a tldw_server deployment in the state a YAML file describes: \
                  `plan` shows what would change (secrets masked), `apply` changes it step by \
                  step with checkpoints, automatic rollback and resume.",
    after_help = help::TOP_HELP
)]
pub struct Cli {
    /// Where state is kept: a SQLite path or a postgres:// URL. Default: .tldw-ops/state.db
    /// beside the YAML file. Also TLDW_OPS_STATE.
    #[arg(long, global = true, value_name = "PATH|URL", help_heading = GLOBAL)]
    pub state: Option<String>,
    /// When to colour: `auto` colours stdout and stderr each only when it is a terminal and
    /// NO_COLOR is unset.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, help_heading = GLOBAL)]
    pub color: ColorChoice,
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Format of every line on stderr: text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a desired-state file: schema, values and production policy.
    #[command(after_help = help::VALIDATE_HELP)]
    Validate(validate::Args),
    /// Print the JSON Schema of the desired-state format (or of plan files).
    #[command(after_help = help::SCHEMA_HELP)]
    Schema(schema::Args),
    /// Show what apply would change (secrets masked).
    #[command(after_help = help::PLAN_HELP)]
    Plan(plan::Args),
    /// Apply the desired state, or a saved plan, with checkpoints and automatic rollback.
    #[command(after_help = help::APPLY_HELP)]
    Apply(apply::Args),
    /// Restore the files of an earlier apply, or undo an interrupted one.
    #[command(after_help = help::ROLLBACK_HELP)]
    Rollback(rollback::Args),
    /// Report what changed outside tldw-ops since the last apply (exit 2 when something did).
    #[command(after_help = help::DRIFT_HELP)]
    Drift(drift::Args),
    /// List applies.
    #[command(after_help = help::HISTORY_HELP)]
    History(history::HistoryArgs),
    /// Show one apply (its steps, timings and changes), or a saved plan file.
    #[command(after_help = help::SHOW_HELP)]
    Show(show::Args),
    /// Write a desired-state file from a running deployment, so the first plan is empty.
    #[command(after_help = help::IMPORT_HELP)]
    Import(import::Args),
    /// Look after the state store.
    #[command(subcommand, after_help = help::STATE_HELP)]
    State(state::Command),
    /// Secrets: sources, ages and rotation, never values.
    #[command(subcommand, after_help = help::SECRETS_HELP)]
    Secrets(secrets::Command),
    /// Show how two environments' desired states differ (secrets as fingerprints).
    #[command(after_help = help::ENVDIFF_HELP)]
    Envdiff(envdiff::Args),
    /// Explain what promoting one environment's shared layers to another would do, and
    /// whether the promotion gate passes now. Changes nothing.
    #[command(after_help = help::PROMOTE_HELP)]
    Promote(promote::Args),
    /// List, verify and restore backup sets, and print a schedule for them.
    #[command(subcommand, after_help = help::BACKUP_HELP)]
    Backup(backup::Command),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) on stdout.
    #[command(after_help = help::COMPLETIONS_HELP)]
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) of tldw-ops, or of one command, on stdout.
    #[command(after_help = help::MAN_HELP)]
    Man(docs::ManArgs),
}

/// The default desired-state file.
pub const DEFAULT_FILE: &str = "tldw-ops.yaml";

pub fn desired_file(file: Option<PathBuf>) -> PathBuf {
    file.unwrap_or_else(|| PathBuf::from(DEFAULT_FILE))
}

pub fn main() -> ExitCode {
    let arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // clap colours its own help and usage errors; `--color` decides there too (NO_COLOR and
    // a piped stream it sees for itself).
    let parsed = Cli::command()
        .color(clap_color(&arguments))
        .try_get_matches_from(&arguments)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` arrive here too, as "errors" bound for stdout.
            let status = if error.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            };
            if error.use_stderr() && asks_for_json_logs(&arguments) {
                // Even a usage error is one JSON line when the logs are JSON.
                Printer::new(false, false, LogFormat::Json)
                    .error(error.render().to_string().trim_start_matches("error: "));
            } else {
                let _ = error.print();
            }
            return status.into();
        }
    };
    if matches!(
        cli.command,
        Command::Validate(_)
            | Command::Plan(_)
            | Command::Apply(_)
            | Command::Rollback(_)
            | Command::Drift(_)
    ) {
        // Compiling the JSON Schema validator is the largest fixed cost of a run; do it on
        // the other core while this one reads and parses the YAML.
        std::thread::spawn(crate::spec::schema::warm);
    }
    let settings = Settings::from_process(cli.state.clone(), cli.color);
    init_tracing(cli.verbose, cli.log_format, settings.color);
    let printer = Printer::new(settings.stdout_color, settings.color, cli.log_format);
    let status = match cli.command {
        Command::Validate(args) => validate::run(args, &settings, &printer),
        Command::Schema(args) => schema::run(args, &printer),
        Command::Plan(args) => plan::run(args, &settings, &printer),
        Command::Apply(args) => apply::run(args, &settings, &printer),
        Command::Rollback(args) => rollback::run(args, &settings, &printer),
        Command::Drift(args) => drift::run(args, &settings, &printer),
        Command::History(args) => history::history(args, &settings, &printer),
        Command::Show(args) => show::run(args, &settings, &printer),
        Command::Import(args) => import::run(args, &settings, &printer),
        Command::State(command) => state::run(command, &settings, &printer),
        Command::Secrets(command) => secrets::run(command, &settings, &printer),
        Command::Envdiff(args) => envdiff::run(args, &settings, &printer),
        Command::Promote(args) => promote::run(args, &settings, &printer),
        Command::Backup(command) => backup::run(command, &settings, &printer),
        Command::Completions(args) => docs::completions(args, &printer),
        Command::Man(args) => docs::man(args, &printer),
    };
    status.into()
}

/// The value of a flag among arguments clap has not parsed yet: `--flag value` or `--flag=value`.
fn raw_flag<'a>(arguments: &'a [std::ffi::OsString], flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    arguments.iter().enumerate().find_map(|(index, argument)| {
        let argument = argument.to_str()?;
        if argument == flag {
            arguments.get(index + 1)?.to_str()
        } else {
            argument.strip_prefix(&prefix)
        }
    })
}

fn clap_color(arguments: &[std::ffi::OsString]) -> clap::ColorChoice {
    match raw_flag(arguments, "--color") {
        Some("always") => clap::ColorChoice::Always,
        Some("never") => clap::ColorChoice::Never,
        _ if asks_for_json_logs(arguments) => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    }
}

/// `--log-format json` (or `=json`) among arguments clap refused.
fn asks_for_json_logs(arguments: &[std::ffi::OsString]) -> bool {
    raw_flag(arguments, "--log-format") == Some("json")
}

/// Log lines take stderr's colour decision, so `--color never`, `NO_COLOR` and a piped stderr
/// give no escape codes in them either.
fn init_tracing(verbose: u8, format: LogFormat, color: bool) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("tldw_ops={level}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color && format == LogFormat::Text);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
