//! `tldw-ops secrets status [FILE]`: every secret the desired state manages, with its source,
//! fingerprint, age, next rotation and policy findings. Never a value.

use std::path::PathBuf;

use super::common::{report_pipeline_error, runtime};
use super::{ExitStatus, Printer, desired_file};
use crate::ops::secrets::status;
use crate::settings::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List each secret: source, fingerprint, age, next rotation and findings.
    #[command(after_help = super::help::SECRETS_STATUS_HELP)]
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Desired-state file. Default: tldw-ops.yaml
    file: Option<PathBuf>,
    /// Output format on stdout: a table for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = super::history::Format::Text)]
    format: super::history::Format,
}

pub fn run(command: Command, settings: &Settings, printer: &Printer) -> ExitStatus {
    let Command::Status(args) = command;
    let file = desired_file(args.file);
    let rows = match runtime().block_on(status(&file, settings)) {
        Ok(rows) => rows,
        Err(error) => return report_pipeline_error(error, printer),
    };
    match args.format {
        super::history::Format::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({ "secrets": rows }))
                .expect("rows serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        super::history::Format::Text => {
            let mut text = format!(
                "{:<28} {:<28} {:<12} {:<14} {:<26} {}\n",
                "SECRET", "SOURCE", "FINGERPRINT", "AGE", "NEXT ROTATION", "FINDINGS"
            );
            for row in &rows {
                let age = match (row.age_days, row.adopted) {
                    (Some(days), Some(true)) => format!("{days}d (adopted)"),
                    (Some(days), _) => format!("{days}d"),
                    (None, _) => "unknown".to_string(),
                };
                text.push_str(&format!(
                    "{:<28} {:<28} {:<12} {:<14} {:<26} {}\n",
                    row.name,
                    row.source,
                    row.fingerprint.clone().unwrap_or_else(|| "-".to_string()),
                    age,
                    row.next_rotation.clone().unwrap_or_else(|| "-".to_string()),
                    if row.findings.is_empty() {
                        "ok".to_string()
                    } else {
                        row.findings.join("; ")
                    }
                ));
            }
            printer.stdout(&text);
        }
    }
    ExitStatus::Success
}
