//! `tldw-ops backup {list,verify,drill,restore,schedule}`: look at the backup sets of an
//! environment, verify them, drill a restore into a scratch copy, restore one (journaled as an apply of kind `restore`), and print a systemd timer
//! or cron line that runs the backup part of the reconcile on schedule. Creating and pruning
//! sets is not here: it is part of `plan`/`apply` (and `apply --only backup`). The work is
//! `ops::backup`'s; this prints it and picks the exit status.

use std::path::PathBuf;

use serde_json::json;

use super::apply::execute;
use super::common::{confirm, report_pipeline_error, runtime};
use super::output::Style;
use super::plan::{Format as PlanFormat, print_plan, print_warnings};
use super::{ExitStatus, Printer, desired_file};
use crate::backups::schedule::{Scheduler, render};
use crate::backups::shown;
use crate::ops::backup::{
    self as ops, BackupCommandError, DrillRequest, Listing, RestoreRequest, Verified,
};
use crate::plan::backups::{item_name, keep_text, release_reason, state_word};
use crate::providers::backups::{DrillReport, ItemKind};
use crate::settings::Settings;
use crate::spec::types::BackupItem;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the backup sets: age, size, verified or not, and the rule that keeps each one (or
    /// why the next apply deletes it).
    #[command(after_help = super::help::BACKUP_LIST_HELP)]
    List(ListArgs),
    /// Verify a set (or every set) against its manifest, with SQLite's integrity_check and a
    /// full read of a PostgreSQL dump; the result is recorded in the set. Exit 1 when one fails.
    #[command(after_help = super::help::BACKUP_VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Restore drill: verify a set (the newest by default), restore it into a scratch copy
    /// beside the sets, and check every database's integrity and rows per table against the
    /// manifest and that .env and config.txt parse. The live deployment is not touched; the
    /// result is recorded in the set. Exit 1 when it fails.
    #[command(after_help = super::help::BACKUP_DRILL_HELP)]
    Drill(DrillArgs),
    /// Restore a set, all of it or one part, after taking a safety backup, with tldw_server
    /// stopped. Journaled as an apply of kind `restore`.
    #[command(after_help = super::help::BACKUP_RESTORE_HELP)]
    Restore(RestoreArgs),
    /// Print a systemd service and timer, or a cron line, that runs
    /// `tldw-ops apply --only backup --auto-approve FILE` on the policy's schedule.
    #[command(after_help = super::help::BACKUP_SCHEDULE_HELP)]
    Schedule(ScheduleArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Desired-state file. Default: tldw-ops.yaml
    file: Option<PathBuf>,
    /// Output format on stdout: a table for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The set to verify (its id, as `backup list` shows it). Default: every set.
    set: Option<String>,
    /// Desired-state file. Default: tldw-ops.yaml
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// The set to drill (its id, as `backup list` shows it). Default: the newest complete set.
    set: Option<String>,
    /// Desired-state file. Default: tldw-ops.yaml
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Keep the scratch copy (a hidden directory beside the sets) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Drill only when one is due by `backup.drill` (the last drill that passed is at least
    /// that old); otherwise say when the last one passed and exit 0. For timers.
    #[arg(long)]
    if_due: bool,
    /// A scratch PostgreSQL database to restore an AuthNZ dump into (its tables are replaced);
    /// never the live one. Without it the dump is read in full but not restored. The password
    /// comes from PGPASSWORD or ~/.pgpass, never from the URL.
    #[arg(long, value_name = "URL")]
    postgres_url: Option<String>,
    /// Output format on stdout: a report for people, or JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The set to restore (its id, as `backup list` shows it).
    set: String,
    /// Restore only this part of the set.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Desired-state file. Default: tldw-ops.yaml
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// tldw_server is stopped (you stopped it): restore without running `target.service.stop`
    /// and without checking that its health URLs are silent.
    #[arg(long)]
    server_stopped: bool,
    /// Restore without asking for confirmation.
    #[arg(long)]
    auto_approve: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    Authnz,
    #[value(name = "user_databases")]
    UserDatabases,
    Config,
}

impl From<Only> for BackupItem {
    fn from(only: Only) -> BackupItem {
        match only {
            Only::Authnz => BackupItem::Authnz,
            Only::UserDatabases => BackupItem::UserDatabases,
            Only::Config => BackupItem::Config,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// What to print for.
    #[arg(long, value_enum, value_name = "SCHEDULER")]
    print: Scheduler,
    /// Desired-state file. Default: tldw-ops.yaml
    file: Option<PathBuf>,
    /// The tldw-ops binary the schedule runs. Default: this one.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(command: Command, settings: &Settings, printer: &Printer) -> ExitStatus {
    match command {
        Command::List(args) => list(args, settings, printer),
        Command::Verify(args) => verify(args, settings, printer),
        Command::Drill(args) => drill(args, settings, printer),
        Command::Restore(args) => restore(args, settings, printer),
        Command::Schedule(args) => schedule(args, settings, printer),
    }
}

/// Reports why a backup command does nothing and returns its exit code.
fn report_error(error: BackupCommandError, printer: &Printer) -> ExitStatus {
    match error {
        BackupCommandError::Pipeline(error) => report_pipeline_error(error, printer),
        other => {
            printer.error(&other.to_string());
            ExitStatus::Error
        }
    }
}

/// Bytes as people read them: `812 B`, `3.4 KiB`, `12.0 MiB`, `1.2 GiB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn list(args: ListArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let listing = match ops::list(&file, settings) {
        Ok(listing) => listing,
        Err(error) => return report_error(error, printer),
    };
    match args.format {
        Format::Json => printer.stdout(&list_json(&listing)),
        Format::Text => printer.stdout(&list_text(&listing, printer)),
    }
    ExitStatus::Success
}

fn list_json(listing: &Listing) -> String {
    let Listing {
        target,
        sets,
        due,
        decisions,
        ..
    } = listing;
    let policy = &target.policy;
    let every = crate::plan::backup_policy::human_duration(policy.every.as_seconds());
    let location = shown(&target.location());
    let items: Vec<serde_json::Value> = sets
        .iter()
        .zip(decisions)
        .map(|((set, manifest), decision)| {
            json!({
                "id": set.id,
                "created_at": set.created_at.to_string(),
                "age_seconds": listing.age(set),
                "size": set.size,
                "state": state_word(set),
                "items": manifest.as_ref().map(|manifest| manifest.items.len()),
                "include": manifest.as_ref().map(|manifest| {
                    manifest.include.iter().map(|item| item_name(*item)).collect::<Vec<_>>()
                }),
                "kept_by": decision.keep,
                "release": decision.release.as_ref().map(|release| release_reason(release, &crate::plan::backups::effective_keep(policy))),
            })
        })
        .collect();
    let value = json!({
        "environment": target.environment,
        "location": location,
        "policy": {
            "every": every,
            "keep": keep_text(&crate::plan::backups::effective_keep(policy)),
            "verify": policy.verify,
            "before_apply": policy.before_apply,
        },
        "due": due,
        "sets": items,
    });
    let mut text = serde_json::to_string_pretty(&value).expect("the listing serialises");
    text.push('\n');
    text
}

fn list_text(listing: &Listing, printer: &Printer) -> String {
    let Listing {
        target,
        sets,
        due,
        decisions,
        ..
    } = listing;
    let policy = &target.policy;
    let every = crate::plan::backup_policy::human_duration(policy.every.as_seconds());
    let location = shown(&target.location());
    let mut text = format!(
        "Backup sets of environment {} in {location}\nPolicy: every {every}, keep {}, verify {}\n\n",
        target.environment,
        keep_text(&crate::plan::backups::effective_keep(policy)),
        if policy.verify { "on" } else { "off" },
    );
    if sets.is_empty() {
        text.push_str("No sets yet.\n");
    } else {
        text.push_str(&format!(
            "{:<20} {:>7} {:>10}  {:<11} {}\n",
            "SET", "AGE", "SIZE", "STATE", "KEPT BY / DELETED BECAUSE"
        ));
        for ((set, _), decision) in sets.iter().zip(decisions) {
            let why = match &decision.release {
                Some(release) => printer.paint_stdout(
                    Style::Remove,
                    &format!(
                        "deleted by the next apply: {}",
                        release_reason(release, &policy.keep)
                    ),
                ),
                None => decision.keep.join(", "),
            };
            text.push_str(&format!(
                "{:<20} {:>7} {:>10}  {:<11} {why}\n",
                set.id,
                crate::plan::backup_policy::human_duration(listing.age(set)),
                size_text(set.size),
                state_word(set),
            ));
        }
    }
    match due {
        Some(reason) => text.push_str(&format!(
            "\nA new set is due: {reason}. The next apply makes it, then deletes what is \
             marked above.\n"
        )),
        None => text.push_str("\nNo new set is due.\n"),
    }
    text
}

fn verify(args: VerifyArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let (target, selected) = match ops::verify_selection(&file, settings, args.set.as_deref()) {
        Ok(found) => found,
        Err(error) => return report_error(error, printer),
    };
    if selected.is_empty() {
        printer.note(&format!("no backup sets in {}", shown(&target.location())));
        return ExitStatus::Success;
    }
    let mut failed = 0;
    let runtime = runtime();
    for set in &selected {
        // Each set is reported as soon as it is verified.
        let verified = runtime.block_on(ops::verify(&target, set, settings.now()));
        if verified.failed(args.set.is_some()) {
            failed += 1;
        }
        match verified {
            Verified::Incomplete => printer.stdout(&format!(
                "{}  incomplete: it has no manifest (an interrupted backup, or one still running)\n",
                set.id
            )),
            Verified::Checked(verification) if verification.ok => printer.stdout(&format!(
                "{}  {} ({} items)\n",
                set.id,
                printer.paint_stdout(Style::Success, "verified"),
                verification.items_checked
            )),
            Verified::Checked(verification) => {
                let mut text = format!(
                    "{}  {}: {} problem(s)\n",
                    set.id,
                    printer.paint_stdout(Style::Error, "FAILED"),
                    verification.problems.len()
                );
                for problem in &verification.problems {
                    text.push_str(&format!("    {}: {}\n", problem.item, problem.problem));
                }
                printer.stdout(&text);
            }
            Verified::Unverifiable(error) => {
                printer.error(&format!("could not verify {}: {error}", set.id));
            }
        }
    }
    if failed > 0 {
        printer.error(&format!("{failed} set(s) did not verify"));
        ExitStatus::Error
    } else {
        ExitStatus::Success
    }
}

fn drill(args: DrillArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let request = DrillRequest {
        set: args.set.as_deref(),
        keep: args.keep,
        postgres_url: args.postgres_url.as_deref(),
    };
    let drill = match ops::drill_plan(&file, settings, &request) {
        Ok(drill) => drill,
        Err(error) => return report_error(error, printer),
    };
    let runtime = runtime();
    if args.if_due {
        match runtime.block_on(ops::drill_due(&file, settings, &drill)) {
            Ok(due) if !due.due => {
                let every = crate::plan::backup_policy::human_duration(due.every.as_secs());
                let last = due
                    .last_passed
                    .map(|last| last.to_string())
                    .unwrap_or_default();
                printer.note(&format!(
                    "restore drill not due: the last one passed at {last} (backup.drill: every {every})"
                ));
                return ExitStatus::Success;
            }
            Ok(_) => {}
            Err(error) => return report_error(error, printer),
        }
    }
    let report = match runtime.block_on(ops::drill(&drill, settings.now())) {
        Ok(report) => report,
        Err(error) => return report_error(error, printer),
    };
    if let Err(error) = runtime.block_on(ops::record_drill(&file, settings, &drill, &report)) {
        printer.warning(&error.to_string());
    }
    match args.format {
        Format::Json => {
            let value = json!({
                "set": report.set_id,
                "ok": report.drill.ok,
                "drilled_at": report.drill.drilled_at.to_string(),
                "items_restored": report.drill.items_restored,
                "checked": report.checked.iter().map(|item| json!({
                    "item": item.name,
                    "kind": item.kind,
                    "tables": item.tables,
                    "rows": item.rows,
                })).collect::<Vec<_>>(),
                "not_restored": report.not_restored,
                "problems": report.drill.problems,
                "scratch": report.kept.then(|| report.scratch.display().to_string()),
            });
            printer.stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            ));
        }
        Format::Text => printer.stdout(&drill_text(&report, printer)),
    }
    if report.drill.ok {
        ExitStatus::Success
    } else {
        ExitStatus::Error
    }
}

fn drill_text(report: &DrillReport, printer: &Printer) -> String {
    let mut text = format!("Restore drill of backup set {}:\n", report.set_id);
    for item in &report.checked {
        let what = match item.kind {
            ItemKind::AuthnzSqlite | ItemKind::UserDatabase => format!(
                "integrity ok, {} table(s), {} row(s) as in the manifest",
                item.tables, item.rows
            ),
            ItemKind::Config => "restored byte for byte, parses".to_string(),
            ItemKind::AuthnzPgDump => "restored into the scratch database".to_string(),
            ItemKind::UserFile => "restored byte for byte".to_string(),
        };
        if !report
            .drill
            .problems
            .iter()
            .any(|problem| problem.item == item.name)
        {
            text.push_str(&format!("  {:<24} {what}\n", item.name));
        }
    }
    for note in &report.not_restored {
        text.push_str(&format!("  {note}\n"));
    }
    for problem in &report.drill.problems {
        text.push_str(&format!("  {:<24} {}\n", problem.item, problem.problem));
    }
    if report.drill.ok {
        text.push_str(&format!(
            "{}: {} item(s) restored and checked",
            printer.paint_stdout(Style::Success, "drill passed"),
            report.drill.items_restored
        ));
    } else {
        text.push_str(&format!(
            "{}: {} problem(s)",
            printer.paint_stdout(Style::Error, "DRILL FAILED"),
            report.drill.problems.len()
        ));
    }
    if report.kept {
        text.push_str(&format!(
            "; the scratch copy is kept in {}",
            shown(&report.scratch)
        ));
    }
    text.push_str(". The result is recorded in the set's manifest.\n");
    text
}

fn restore(args: RestoreArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let faults = match super::common::faults(settings, printer) {
        Ok(faults) => faults,
        Err(status) => return status,
    };
    let file = desired_file(args.file.clone());
    runtime().block_on(async {
        let prepared = match super::common::load_and_observe(&file, settings, printer).await {
            Ok(prepared) => prepared,
            Err(status) => return status,
        };
        let request = RestoreRequest {
            set: &args.set,
            only: args.only.map(BackupItem::from),
            server_stopped: args.server_stopped,
        };
        let restore = match ops::restore(&prepared, &file, &request, settings.now()).await {
            Ok(restore) => restore,
            Err(error) => return report_error(error, printer),
        };
        if let Some(url) = &restore.still_answers {
            printer.warning(&format!(
                "{url} still answers although --server-stopped was given; restoring anyway, as asked"
            ));
        }
        let (set, plan) = (restore.set, &restore.plan);
        let mut preview = format!(
            "Restoring backup set {} (created {}, {}) of environment {}:\n",
            set.id,
            set.created_at,
            state_word(set),
            restore.target.environment
        );
        for part in &restore.parts {
            preview.push_str(&format!(
                "  {:<15} {} file(s), {} -> {}\n",
                item_name(part.part),
                part.files,
                size_text(part.size),
                part.destination,
            ));
        }
        preview.push_str(&format!(
            "  ({} in all; what is there now is replaced)\n",
            size_text(restore.total)
        ));
        printer.stderr(&preview);
        print_warnings(&prepared, plan, printer);
        print_plan(plan, PlanFormat::Text, printer);
        if let Err(status) = confirm(
            &format!("Do you want to restore backup set {}?", set.id),
            args.auto_approve,
            settings,
            printer,
        ) {
            return status;
        }
        let status = execute(&prepared, plan, settings, printer, &faults, "restore").await;
        if status == ExitStatus::Success {
            let mut text = format!(
                "Restored backup set {}. The data from before is in {}.",
                set.id,
                restore.safety()
            );
            if prepared.loaded.deployment.start.is_none() {
                text.push_str(" tldw_server was not started (no target.service.start): start it and check its health.");
            }
            if restore.restores_config() {
                text.push_str(" `tldw-ops plan` shows how the restored configuration differs from the desired state.");
            }
            printer.note(&text);
        }
        status
    })
}

fn schedule(args: ScheduleArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let binary = args.binary.or_else(|| std::env::current_exe().ok());
    match ops::schedule(&file, settings, binary) {
        Ok(schedule) => {
            printer.stdout(&render(args.print, &schedule.input()));
            ExitStatus::Success
        }
        Err(error) => report_error(error, printer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_the_way_people_expect() {
        assert_eq!(size_text(812), "812 B");
        assert_eq!(size_text(3_482), "3.4 KiB");
        assert_eq!(size_text(12 * 1024 * 1024), "12.0 MiB");
    }
}
