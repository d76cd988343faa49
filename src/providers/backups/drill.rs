//! Restore drills: proving a set can be restored, not only that its bytes are intact.
//!
//! A drill verifies the set first (sizes, sha256, `integrity_check`, a full read of a PostgreSQL
//! dump), which records the rows of every table of each SQLite copy in the manifest. It then
//! restores the set, through the same code as `backup restore`, into a private scratch directory
//! beside the sets (or into a scratch PostgreSQL database the operator names), and checks what
//! came back: `integrity_check` and the rows of every table against the manifest for each
//! database, and a parse of `.env` and config.txt as tldw_server reads them. The live deployment
//! is never touched. The outcome is recorded in the manifest (`drill`), and the scratch copy is
//! removed unless asked to keep it.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::copy;
use super::create::AuthnzSource;
use super::manifest::{
    Drill, ItemKind, Manifest, VerificationProblem, read_manifest, write_manifest,
};
use super::restore::{RestoreTargets, restore_set};
use super::verify::{VerifyOptions, verify_set_with};
use super::{BackupError, DEFAULT_CONCURRENCY, sqlite};
use crate::providers::config_file::document::IniDocument;
use crate::providers::env_file::document::EnvDocument;
use crate::spec::types::BackupItem;

/// Where and how to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The scratch directory is made inside this one (the backup destination, by default: it
    /// is on the disk that has room for the sets).
    pub scratch_parent: PathBuf,
    /// Leave the scratch copy in place for a look (it is removed otherwise).
    pub keep: bool,
    /// A scratch PostgreSQL database to restore an AuthNZ dump into. Without one the dump is
    /// read in full but not restored, and the report says so.
    pub postgres: Option<AuthnzSource>,
    /// Directory holding `pg_restore`; `None` finds it on `PATH`.
    pub pg_bin_dir: Option<PathBuf>,
}

/// What a drill found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct DrillReport {
    pub set_id: String,
    /// As recorded in the manifest.
    pub drill: Drill,
    /// The scratch directory; it still exists only when `kept`.
    pub scratch: PathBuf,
    pub kept: bool,
    /// Each restored item and what was checked on it, in manifest order.
    pub checked: Vec<CheckedItem>,
    /// What was not restored, and why (a PostgreSQL dump without a scratch database).
    pub not_restored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedItem {
    pub name: String,
    pub kind: ItemKind,
    /// For a database: its tables and their rows after the restore.
    pub tables: usize,
    pub rows: u64,
}

/// Drills the set at `set_dir` (see the module documentation). An error means the drill could
/// not run (no room for the scratch directory, a missing tool); a set that does not restore
/// cleanly is a report with `drill.ok == false`, recorded in its manifest.
pub async fn drill_set(
    set_dir: &Path,
    now: Timestamp,
    options: &DrillOptions,
) -> Result<DrillReport, BackupError> {
    let verify = VerifyOptions {
        concurrency: DEFAULT_CONCURRENCY,
        pg_bin_dir: options.pg_bin_dir.clone(),
    };
    let verification = verify_set_with(set_dir, now, &verify).await?;
    let manifest = read_manifest(set_dir)?;
    let scratch =
        options
            .scratch_parent
            .join(format!(".drill-{}-{}", manifest.set_id, std::process::id()));
    let mut report = DrillReport {
        set_id: manifest.set_id.clone(),
        drill: Drill {
            ok: false,
            drilled_at: now,
            items_restored: 0,
            problems: Vec::new(),
        },
        scratch: scratch.clone(),
        kept: false,
        checked: Vec::new(),
        not_restored: Vec::new(),
    };
    if !verification.ok {
        report.drill.problems = verification.problems;
        record(set_dir, &report.drill)?;
        return Ok(report);
    }
    // Never into a directory that is already there: it could be another drill's.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&scratch)
        .map_err(|source| BackupError::CreateDirectory {
            path: scratch.clone(),
            source,
        })?;
    let result = restore_and_check(set_dir, &manifest, &scratch, options, &mut report).await;
    if options.keep {
        report.kept = true;
    } else {
        // A failed removal leaves a hidden directory that prune never touches: say so.
        if let Err(error) = fs::remove_dir_all(&scratch) {
            tracing::warn!(
                "cannot remove the drill's scratch copy {}: {error}",
                scratch.display()
            );
        }
    }
    result?;
    report.drill.ok = report.drill.problems.is_empty();
    record(set_dir, &report.drill)?;
    Ok(report)
}

async fn restore_and_check(
    set_dir: &Path,
    manifest: &Manifest,
    scratch: &Path,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), BackupError> {
    let authnz = manifest.items.iter().find_map(|item| match item.kind {
        ItemKind::AuthnzSqlite => {
            let file = Path::new(&item.path)
                .file_name()
                .map_or_else(|| "authnz.db".into(), |name| name.to_os_string());
            Some(Some(AuthnzSource::Sqlite(
                scratch.join("authnz").join(file),
            )))
        }
        ItemKind::AuthnzPgDump => Some(options.postgres.clone()),
        _ => None,
    });
    let targets = RestoreTargets {
        authnz: authnz.clone().flatten(),
        user_db_base_dir: Some(scratch.join("user_databases")),
        env_file: Some(scratch.join("config/.env")),
        config_file: Some(scratch.join("config/config.txt")),
        pg_bin_dir: options.pg_bin_dir.clone(),
    };
    copy::create_private_dir_all(&scratch.join("config"))?;
    copy::create_private_dir_all(&scratch.join("authnz"))?;
    let mut restored = Vec::new();
    for part in [
        BackupItem::Authnz,
        BackupItem::UserDatabases,
        BackupItem::Config,
    ] {
        if !manifest
            .items
            .iter()
            .any(|item| item.kind.include_item() == part)
        {
            continue;
        }
        if part == BackupItem::Authnz && matches!(authnz, Some(None)) {
            report.not_restored.push(
                "authnz: the PostgreSQL dump was read in full but not restored (give a scratch \
                 database with --postgres-url to restore it)"
                    .to_string(),
            );
            continue;
        }
        match restore_set(set_dir, &targets, Some(part)).await {
            Ok(done) => restored.extend(done.restored),
            Err(error @ (BackupError::Tool { .. } | BackupError::Write { .. })) => {
                report.drill.problems.push(VerificationProblem {
                    item: part_name(part).to_string(),
                    problem: format!("the restore failed: {error}"),
                });
            }
            Err(error) => return Err(error),
        }
    }
    report.drill.items_restored = restored.len();
    for done in &restored {
        let Some(item) = manifest.items.iter().find(|item| item.name == done.name) else {
            continue;
        };
        let problem = |text: String| VerificationProblem {
            item: item.name.clone(),
            problem: text,
        };
        let mut checked = CheckedItem {
            name: item.name.clone(),
            kind: item.kind,
            tables: 0,
            rows: 0,
        };
        let target = Path::new(&done.target);
        match item.kind {
            ItemKind::AuthnzSqlite | ItemKind::UserDatabase => {
                match sqlite::table_rows(target).await {
                    Ok(found) => {
                        checked.tables = found.len();
                        checked.rows = found.values().sum();
                        match &item.rows {
                            Some(expected) => {
                                report.drill.problems.extend(
                                    row_differences(expected, &found).into_iter().map(problem),
                                );
                            }
                            None => report.drill.problems.push(problem(
                                "the manifest holds no row counts to compare with".to_string(),
                            )),
                        }
                    }
                    Err(found) => report.drill.problems.extend(
                        found
                            .into_iter()
                            .map(|text| problem(format!("after the restore: {text}"))),
                    ),
                }
            }
            ItemKind::Config => {
                let text = match fs::read(target) {
                    Ok(bytes) => String::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string()),
                    Err(error) => Err(format!("cannot be read back: {error}")),
                };
                let parsed = text.and_then(|text| {
                    if item.name == "env_file" {
                        EnvDocument::parse(&text)
                            .map(drop)
                            .map_err(|error| error.to_string())
                    } else {
                        IniDocument::parse(&text)
                            .map(drop)
                            .map_err(|error| error.to_string())
                    }
                });
                if let Err(text) = parsed {
                    report
                        .drill
                        .problems
                        .push(problem(format!("the restored file does not parse: {text}")));
                }
            }
            ItemKind::AuthnzPgDump | ItemKind::UserFile => {}
        }
        report.checked.push(checked);
    }
    Ok(())
}

/// Tables whose rows differ between the manifest and the restored copy, one line each.
fn row_differences(
    expected: &std::collections::BTreeMap<String, u64>,
    found: &std::collections::BTreeMap<String, u64>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (table, rows) in expected {
        match found.get(table) {
            Some(now) if now == rows => {}
            Some(now) => lines.push(format!(
                "table {table}: {rows} row(s) in the set, {now} after the restore"
            )),
            None => lines.push(format!("table {table} is missing after the restore")),
        }
    }
    for table in found.keys().filter(|table| !expected.contains_key(*table)) {
        lines.push(format!(
            "table {table} appears after the restore but is not in the set"
        ));
    }
    lines
}

fn part_name(part: BackupItem) -> &'static str {
    match part {
        BackupItem::Authnz => "authnz",
        BackupItem::UserDatabases => "user_databases",
        BackupItem::Config => "config",
    }
}

fn record(set_dir: &Path, drill: &Drill) -> Result<(), BackupError> {
    let mut manifest = read_manifest(set_dir)?;
    manifest.drill = Some(drill.clone());
    write_manifest(set_dir, &manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs
            .iter()
            .map(|(table, rows)| (table.to_string(), *rows))
            .collect()
    }

    #[test]
    fn row_differences_name_each_table_that_changed_vanished_or_appeared() {
        let expected = counts(&[("media", 200), ("keywords", 5), ("notes", 1)]);
        assert!(row_differences(&expected, &expected).is_empty());
        let found = counts(&[("media", 199), ("notes", 1), ("extra", 3)]);
        assert_eq!(
            row_differences(&expected, &found),
            [
                "table keywords is missing after the restore",
                "table media: 200 row(s) in the set, 199 after the restore",
                "table extra appears after the restore but is not in the set",
            ]
        );
    }
}
