//! `tldw-ops state migrate --from <sqlite> --to <postgres://…>`: move a team from a SQLite state
//! file to a shared PostgreSQL database without losing history. Checking the two locations and
//! copying is `ops::state::migrate`'s; this module only prints.

use super::common::{report_state_error, runtime};
use super::history::Format;
use super::{ExitStatus, Printer};
use crate::ops::state::{MigrateError, migrate};
use crate::settings::Settings;
use crate::state::MigrationReport;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The store to copy from: a SQLite path or `sqlite://…` (or a `postgres://` URL).
    #[arg(long, value_name = "PATH|URL")]
    from: String,
    /// The store to copy into, usually `postgres://…`. Default: `--state` / TLDW_OPS_STATE.
    #[arg(long, value_name = "PATH|URL")]
    to: Option<String>,
    /// Output format on stdout: a summary for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: MigrateArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let migrated = match runtime().block_on(migrate(&args.from, args.to.as_deref(), settings)) {
        Ok(migrated) => migrated,
        Err(MigrateError::State(error)) => return report_state_error(error, printer),
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    match args.format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({
                "from": migrated.from,
                "to": migrated.to,
                "copied": migrated.report,
            }))
            .expect("reports serialise");
            text.push('\n');
            printer.stdout(&text);
        }
        Format::Text => printer.stdout(&describe(&migrated.report, &migrated.from, &migrated.to)),
    }
    ExitStatus::Success
}

fn describe(report: &MigrationReport, from: &str, to: &str) -> String {
    let copied = report.environments
        + report.managed
        + report.secrets
        + report.applies
        + report.steps
        + usize::from(report.salt_copied);
    if copied == 0 {
        return format!(
            "nothing to copy from {from}: {to} already holds all of it ({} appl{} already there)\n",
            report.applies_already_present,
            if report.applies_already_present == 1 {
                "y"
            } else {
                "ies"
            }
        );
    }
    let plural = |count: usize, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    format!(
        "copied state from {from} to {to}\n  \
         salt             {}\n  \
         environments     {} new\n  \
         managed values   {}\n  \
         secret metadata  {} (fingerprints and dates, never values)\n  \
         applies          {} with {}; {} already there\n",
        if report.salt_copied {
            "copied (fingerprints stay comparable)"
        } else {
            "already the same"
        },
        report.environments,
        report.managed,
        report.secrets,
        plural(report.applies, "apply", "applies"),
        plural(report.steps, "step", "steps"),
        report.applies_already_present,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_migration_says_nothing_was_copied() {
        let report = MigrationReport {
            applies_already_present: 3,
            ..MigrationReport::default()
        };
        assert_eq!(
            describe(&report, "a.db", "postgres://h/db"),
            "nothing to copy from a.db: postgres://h/db already holds all of it (3 applies already there)\n"
        );
    }

    #[test]
    fn a_first_migration_lists_what_it_copied() {
        let report = MigrationReport {
            salt_copied: true,
            environments: 2,
            managed: 14,
            secrets: 3,
            applies: 1,
            steps: 4,
            applies_already_present: 0,
        };
        let text = describe(&report, "a.db", "postgres://h/db");
        assert!(text.contains("environments     2 new"), "{text}");
        assert!(
            text.contains("applies          1 apply with 4 steps; 0 already there"),
            "{text}"
        );
    }
}
