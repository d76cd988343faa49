//! `tldw-ops backup {list,verify,drill,restore,schedule}`: look at the backup sets of an
//! environment, verify them, drill a restore into a scratch copy, restore one (journaled as an apply of kind `restore`), and print a systemd timer
//! or cron line that runs the backup part of the reconcile on schedule. Creating and pruning
//! sets is not here: it is part of `plan`/`apply` (and `apply --only backup`).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::apply::execute;
use super::common::{confirm, report_pipeline_error, runtime};
use super::output::Style;
use super::plan::{Format as PlanFormat, print_plan, print_warnings};
use super::{ExitStatus, Printer, desired_file};
use crate::backups::schedule::{ScheduleInput, Scheduler, render};
use crate::backups::{BackupTarget, shown};
use crate::deployment::Deployment;
use crate::kinds::service::server_answers;
use crate::pipeline::{self, PipelineError};
use crate::plan::backups::{
    RestoreInput, item_name, keep_text, next_decisions, release_reason, restore_plan, state_word,
};
use crate::providers::backups::{
    AuthnzSource, DrillOptions, DrillReport, ItemKind, Manifest, SetInfo, VerifyOptions, drill_set,
    list_sets, read_manifest, verify_set_with,
};
use crate::settings::Settings;
use crate::spec::types::BackupItem;
use crate::spec::{CheckError, Checked};

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

/// Loads and checks the desired state and resolves its backup target, without opening the
/// state store (listing, verifying and printing a schedule need none).
fn target_of(
    file: &Path,
    settings: &Settings,
    printer: &Printer,
) -> Result<(Checked, BackupTarget), ExitStatus> {
    let checked = match crate::pipeline::load_checked(file, settings) {
        Ok(checked) if checked.has_errors() => {
            let sources = checked.sources().clone();
            return Err(report_pipeline_error(
                PipelineError::Invalid {
                    diagnostics: checked.diagnostics,
                    sources,
                },
                printer,
            ));
        }
        Ok(checked) => checked,
        Err(CheckError::Invalid {
            diagnostics,
            sources,
        }) => {
            return Err(report_pipeline_error(
                PipelineError::Invalid {
                    diagnostics,
                    sources,
                },
                printer,
            ));
        }
        Err(CheckError::Unreadable(error)) => {
            return Err(report_pipeline_error(
                PipelineError::Unreadable(error),
                printer,
            ));
        }
    };
    match Deployment::from_checked(&checked).backup {
        Some(target) => Ok((checked, target)),
        None => {
            printer.error(&format!("{} has no `backup:` policy", file.display()));
            Err(ExitStatus::Error)
        }
    }
}

fn listed(
    target: &BackupTarget,
    printer: &Printer,
) -> Result<Vec<(SetInfo, Option<Manifest>)>, ExitStatus> {
    list_sets(&target.destination, &target.environment).map_err(|error| {
        printer.error(&format!("cannot list the backup sets: {error}"));
        ExitStatus::Error
    })
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
    let (_, target) = match target_of(&file, settings, printer) {
        Ok(found) => found,
        Err(status) => return status,
    };
    let sets = match listed(&target, printer) {
        Ok(sets) => sets,
        Err(status) => return status,
    };
    let now = settings.now();
    let infos: Vec<SetInfo> = sets.iter().map(|(set, _)| set.clone()).collect();
    let (due, decisions) = next_decisions(&target.policy, &infos, now);
    let policy = &target.policy;
    let every = crate::plan::backup_policy::human_duration(policy.every.as_seconds());
    let age = |set: &SetInfo| {
        now.as_second()
            .saturating_sub(set.created_at.as_second())
            .max(0) as u64
    };
    let location = shown(&target.location());
    match args.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = sets
                .iter()
                .zip(&decisions)
                .map(|((set, manifest), decision)| {
                    json!({
                        "id": set.id,
                        "created_at": set.created_at.to_string(),
                        "age_seconds": age(set),
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
            printer.stdout(&text);
        }
        Format::Text => {
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
                for ((set, _), decision) in sets.iter().zip(&decisions) {
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
                        crate::plan::backup_policy::human_duration(age(set)),
                        size_text(set.size),
                        state_word(set),
                    ));
                }
            }
            match &due {
                Some(reason) => text.push_str(&format!(
                    "\nA new set is due: {reason}. The next apply makes it, then deletes what is \
                     marked above.\n"
                )),
                None => text.push_str("\nNo new set is due.\n"),
            }
            printer.stdout(&text);
        }
    }
    ExitStatus::Success
}

fn verify(args: VerifyArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let (_, target) = match target_of(&file, settings, printer) {
        Ok(found) => found,
        Err(status) => return status,
    };
    let sets = match listed(&target, printer) {
        Ok(sets) => sets,
        Err(status) => return status,
    };
    let selected: Vec<&SetInfo> = match &args.set {
        Some(id) => match sets.iter().find(|(set, _)| set.id == *id) {
            Some((set, _)) => vec![set],
            None => {
                printer.error(&format!(
                    "no backup set {id} in {} (see `tldw-ops backup list`)",
                    shown(&target.location())
                ));
                return ExitStatus::Error;
            }
        },
        None => sets.iter().map(|(set, _)| set).collect(),
    };
    if selected.is_empty() {
        printer.note(&format!("no backup sets in {}", shown(&target.location())));
        return ExitStatus::Success;
    }
    let mut failed = 0;
    let runtime = runtime();
    for set in selected {
        if !set.complete {
            printer.stdout(&format!(
                "{}  incomplete: it has no manifest (an interrupted backup, or one still running)\n",
                set.id
            ));
            if args.set.is_some() {
                failed += 1;
            }
            continue;
        }
        let result = runtime.block_on(verify_set_with(
            &target.set_dir(&set.id),
            settings.now(),
            &VerifyOptions::default(),
        ));
        match result {
            Ok(verification) if verification.ok => printer.stdout(&format!(
                "{}  {} ({} items)\n",
                set.id,
                printer.paint_stdout(Style::Success, "verified"),
                verification.items_checked
            )),
            Ok(verification) => {
                failed += 1;
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
            Err(error) => {
                failed += 1;
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
    let (_, target) = match target_of(&file, settings, printer) {
        Ok(found) => found,
        Err(status) => return status,
    };
    let postgres = match args
        .postgres_url
        .as_deref()
        .map(|url| scratch_database(url, &target))
    {
        Some(Ok(source)) => Some(source),
        Some(Err(message)) => {
            printer.error(&message);
            return ExitStatus::Error;
        }
        None => None,
    };
    let sets = match listed(&target, printer) {
        Ok(sets) => sets,
        Err(status) => return status,
    };
    let set = match &args.set {
        Some(id) => sets.iter().map(|(set, _)| set).find(|set| set.id == *id),
        None => sets
            .iter()
            .rev()
            .map(|(set, _)| set)
            .find(|set| set.complete),
    };
    let Some(set) = set else {
        printer.error(&match &args.set {
            Some(id) => format!(
                "no backup set {id} in {} (see `tldw-ops backup list`)",
                shown(&target.location())
            ),
            None => format!("no complete backup set in {}", shown(&target.location())),
        });
        return ExitStatus::Error;
    };
    if !set.complete {
        printer.error(&format!(
            "backup set {} is incomplete: it has no manifest (an interrupted backup, or one still running)",
            set.id
        ));
        return ExitStatus::Error;
    }
    let options = DrillOptions {
        scratch_parent: target.destination.join(&target.environment),
        keep: args.keep,
        postgres,
        pg_bin_dir: None,
    };
    let result = runtime().block_on(drill_set(
        &target.set_dir(&set.id),
        settings.now(),
        &options,
    ));
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            printer.error(&format!("could not drill backup set {}: {error}", set.id));
            return ExitStatus::Error;
        }
    };
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

/// The scratch database of `--postgres-url`: refused when it is the deployment's own AuthNZ
/// database, since a drill replaces every table in it, and when the URL holds a password.
fn scratch_database(url: &str, target: &BackupTarget) -> Result<AuthnzSource, String> {
    if crate::secrets::url_has_password(url) {
        return Err(
            "--postgres-url must not hold a password (it would show in the process list): \
                    give it in PGPASSWORD or ~/.pgpass"
                .to_string(),
        );
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("--postgres-url `{url}` is not a postgres:// URL"));
    }
    if let crate::backups::AuthnzLocation::Postgres(live) = &target.authnz
        && same_database(url, live)
    {
        return Err(
            "--postgres-url names the deployment's own AuthNZ database; a drill replaces every \
             table of the database it is given, so give a scratch one"
                .to_string(),
        );
    }
    Ok(AuthnzSource::Postgres {
        url: url.to_string(),
        password: None,
    })
}

/// Whether two PostgreSQL URLs name one database: host, port (5432 by default) and database
/// name, ignoring the user, the password and the parameters.
fn same_database(left: &str, right: &str) -> bool {
    fn parts(url: &str) -> Option<(String, String, String)> {
        let rest = url.split_once("://")?.1;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host_port.ends_with(']') => {
                (host.to_string(), port.to_string())
            }
            _ => (host_port.to_string(), "5432".to_string()),
        };
        let database = path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        Some((host.to_ascii_lowercase(), port, database))
    }
    match (parts(left), parts(right)) {
        (Some(left), Some(right)) => left == right,
        _ => left == right,
    }
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
        let deployment = &prepared.loaded.deployment;
        let (Some(target), Some(observation)) = (&deployment.backup, &prepared.backups) else {
            printer.error(&format!("{} has no `backup:` policy", file.display()));
            return ExitStatus::Error;
        };
        let Some(set) = observation.sets.iter().find(|set| set.id == args.set) else {
            printer.error(&format!(
                "no backup set {} in {} (see `tldw-ops backup list`)",
                args.set, observation.location
            ));
            return ExitStatus::Error;
        };
        let manifest = match read_manifest(&target.set_dir(&set.id)) {
            Ok(manifest) => manifest,
            Err(error) => {
                printer.error(&format!("backup set {} cannot be restored: {error}", set.id));
                return ExitStatus::Error;
            }
        };
        if set.verified == Some(false) {
            printer.error(&format!(
                "backup set {} failed verification and is not restored (`tldw-ops backup verify {}` shows why)",
                set.id, set.id
            ));
            return ExitStatus::Error;
        }
        let only = args.only.map(BackupItem::from);
        let items: Vec<_> = manifest
            .items
            .iter()
            .filter(|item| only.is_none_or(|only| item.kind.include_item() == only))
            .collect();
        if items.is_empty() {
            printer.error(&format!(
                "backup set {} holds nothing of {}",
                set.id,
                only.map(item_name).unwrap_or("anything")
            ));
            return ExitStatus::Error;
        }
        // Restore only while the server is stopped.
        let stop = if args.server_stopped {
            if let Some(url) = server_answers(&deployment.health).await {
                printer.warning(&format!(
                    "{url} still answers although --server-stopped was given; restoring anyway, as asked"
                ));
            }
            None
        } else if let Some(stop) = &deployment.stop {
            Some(stop.as_slice())
        } else if deployment.health.is_empty() {
            printer.error(
                "cannot tell whether tldw_server is stopped: no health gates are configured. \
                 Stop it and pass --server-stopped, or configure target.service.stop and start.",
            );
            return ExitStatus::Error;
        } else if let Some(url) = server_answers(&deployment.health).await {
            printer.error(&format!(
                "tldw_server still answers at {url}; a restore needs it stopped. Stop it and pass \
                 --server-stopped, or configure target.service.stop and target.service.start."
            ));
            return ExitStatus::Error;
        } else {
            None
        };
        let now = settings.now();
        let base = pipeline::make_plan(&prepared, now);
        let plan = restore_plan(
            base,
            &RestoreInput {
                set_id: &set.id,
                only,
                sets: &observation.sets,
                now,
                location: &observation.location,
                stop,
                start: deployment.start.as_deref(),
                health: &deployment.health,
                smoke: &deployment.smoke,
                source: observation.source.as_ref(),
            },
        );
        let mut preview = format!(
            "Restoring backup set {} (created {}, {}) of environment {}:\n",
            set.id,
            set.created_at,
            state_word(set),
            target.environment
        );
        let total: u64 = items.iter().map(|item| item.size).sum();
        for part in [BackupItem::Authnz, BackupItem::UserDatabases, BackupItem::Config] {
            let of_part: Vec<_> = items.iter().filter(|item| item.kind.include_item() == part).collect();
            if of_part.is_empty() {
                continue;
            }
            let destination = match part {
                BackupItem::Authnz => match &target.authnz {
                    crate::backups::AuthnzLocation::Sqlite(path) => shown(path),
                    crate::backups::AuthnzLocation::Postgres(_) => "the PostgreSQL AuthNZ database".to_string(),
                },
                BackupItem::UserDatabases => shown(&target.user_db_base_dir),
                BackupItem::Config => format!("{} and {}", shown(&target.env_file), shown(&target.config_file)),
            };
            preview.push_str(&format!(
                "  {:<15} {} file(s), {} -> {destination}\n",
                item_name(part),
                of_part.len(),
                size_text(of_part.iter().map(|item| item.size).sum()),
            ));
        }
        preview.push_str(&format!("  ({} in all; what is there now is replaced)\n", size_text(total)));
        printer.stderr(&preview);
        print_warnings(&prepared, &plan, printer);
        print_plan(&plan, PlanFormat::Text, printer);
        if let Err(status) = confirm(
            &format!("Do you want to restore backup set {}?", set.id),
            args.auto_approve,
            settings,
            printer,
        ) {
            return status;
        }
        let status = execute(&prepared, &plan, settings, printer, &faults, "restore").await;
        if status == ExitStatus::Success {
            let safety = plan
                .steps
                .first()
                .and_then(|step| step.addresses.first())
                .cloned()
                .unwrap_or_default();
            let mut text = format!(
                "Restored backup set {}. The data from before is in {safety}.",
                set.id
            );
            if deployment.start.is_none() {
                text.push_str(" tldw_server was not started (no target.service.start): start it and check its health.");
            }
            if only.is_none_or(|only| only == BackupItem::Config) {
                text.push_str(" `tldw-ops plan` shows how the restored configuration differs from the desired state.");
            }
            printer.note(&text);
        }
        status
    })
}

fn schedule(args: ScheduleArgs, settings: &Settings, printer: &Printer) -> ExitStatus {
    let file = desired_file(args.file);
    let (checked, target) = match target_of(&file, settings, printer) {
        Ok(found) => found,
        Err(status) => return status,
    };
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let binary = match args.binary.or_else(|| std::env::current_exe().ok()) {
        Some(binary) => absolute(&binary),
        None => {
            printer.error("cannot tell where this binary is; pass --binary");
            return ExitStatus::Error;
        }
    };
    let file = absolute(&file);
    let state = settings.state.as_deref().map(|state| {
        if state.contains("://") {
            state.to_string()
        } else {
            absolute(Path::new(state)).display().to_string()
        }
    });
    let variables = checked
        .spec
        .secrets
        .iter()
        .flat_map(|secrets| secrets.values.values())
        .filter_map(|secret| secret.from_env.clone())
        .collect();
    let deployment = checked.spec.deployment.as_deref().unwrap_or("default");
    printer.stdout(&render(
        args.print,
        &ScheduleInput {
            environment: &target.environment,
            deployment,
            every: target.policy.every.as_std(),
            binary: &binary,
            file: &file,
            state: state.as_deref(),
            variables,
        },
    ));
    ExitStatus::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_postgres_urls_name_one_database_by_host_port_and_name_alone() {
        let live = "postgres://tldw:secret@DB.example.org:5432/tldw_users?sslmode=require";
        for same in [
            "postgres://other@db.example.org/tldw_users",
            "postgresql://db.example.org:5432/tldw_users",
        ] {
            assert!(same_database(same, live), "{same}");
        }
        for other in [
            "postgres://tldw@db.example.org:5433/tldw_users",
            "postgres://tldw@db.example.org/tldw_drill",
            "postgres://tldw@scratch.example.org/tldw_users",
        ] {
            assert!(!same_database(other, live), "{other}");
        }
    }

    #[test]
    fn sizes_read_the_way_people_expect() {
        assert_eq!(size_text(812), "812 B");
        assert_eq!(size_text(3_482), "3.4 KiB");
        assert_eq!(size_text(12 * 1024 * 1024), "12.0 MiB");
    }
}
