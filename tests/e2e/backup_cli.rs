//! Backups as reconciled state, through the real binary: `plan` proposes a set when one is due
//! and deletes what the keep policy releases, `apply` makes, verifies and prunes them (also
//! `apply --only backup`), crashes mid-backup are resumed or rolled back, `backup restore`
//! refuses a running server and brings back identical files and rows after a safety backup,
//! `backup list`/`verify`/`schedule` say what they should, and no secret reaches an output.
//!
//! The sample deployment is the shipped `.env` and config.txt plus a SQLite AuthNZ database and
//! per-user databases in WAL mode, held open by this process as a running server holds them.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::common::{Site, assert_no_secret, run};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

/// The PostgreSQL password, from the environment through a `from_env` secret into the `.env`.
const PG_SECRET: &str = "pg-password-for-the-backup-tests-0123456789";
/// A secret already in the `.env` before tldw-ops runs (unmanaged, so in every set's copy).
const ENV_SECRET: &str = "tldw_already-in-the-env-file-abcdefghijklmnop";
/// The injected clock of the first apply.
const T0: &str = "2026-11-26T03:00:00Z";
const FIRST_SET: &str = "2026-11-26T030000Z";

/// `T0` moved on by `hours`, as `TLDW_OPS_NOW` takes it.
fn at(hours: i64) -> String {
    let start: jiff::Timestamp = T0.parse().unwrap();
    jiff::Timestamp::from_second(start.as_second() + hours * 3_600)
        .unwrap()
        .to_string()
}

fn yaml(service: &str, keep: &str, before_apply: bool, log_level: &str) -> String {
    format!(
        r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
  database: sqlite:///./Databases/users.db
{service}env:
  LOG_LEVEL: {log_level}
secrets:
  values:
    POSTGRES_PASSWORD: {{ from_env: TEST_PG_PASSWORD }}
backup:
  destination: backups
  every: 24h
  keep: {keep}
  verify: true
  before_apply: {before_apply}
"#
    )
}

const KEEP: &str = "{ daily: 3, weekly: 2, monthly: 2 }";

/// The databases of the sample, relative to `site/Databases`, with their row counts.
const DATABASES: [(&str, i64); 5] = [
    ("users.db", 50),
    ("user_databases/1/Media_DB_v2.db", 200),
    ("user_databases/1/ChaChaNotes.db", 20),
    ("user_databases/2/Media_DB_v2.db", 30),
    (
        "user_databases/3/prompts_user_dbs/user_prompts_v2.sqlite",
        10,
    ),
];

type Rows = Vec<(i64, String, String)>;

struct Sample {
    site: Site,
    runtime: tokio::runtime::Runtime,
    /// Open connections, as a running server holds them (so `-wal` and `-shm` exist).
    connections: RefCell<Vec<SqliteConnection>>,
    /// Every stdout and stderr, for the secret scan.
    outputs: RefCell<Vec<String>>,
}

impl Sample {
    fn new(service: &str, keep: &str, before_apply: bool) -> Sample {
        let site = Site::new();
        site.write_yaml("tldw-ops.yaml", &yaml(service, keep, before_apply, "info"));
        site.set_env_text(&site.env_text().replace(
            "SINGLE_USER_API_KEY=CHANGE_ME_TO_SECURE_API_KEY",
            &format!("SINGLE_USER_API_KEY={ENV_SECRET}"),
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let databases = site.path().join("site/Databases");
        let connections = runtime.block_on(async {
            let mut connections = Vec::new();
            for (relative, rows) in DATABASES {
                connections.push(wal_database(&databases.join(relative), rows).await);
            }
            connections
        });
        std::fs::write(
            databases.join("user_databases/1/rag_personalization.json"),
            b"{\"k\": 1}\n",
        )
        .unwrap();
        Sample {
            site,
            runtime,
            connections: RefCell::new(connections),
            outputs: RefCell::new(Vec::new()),
        }
    }

    fn path(&self) -> &Path {
        self.site.path()
    }

    fn command(&self, args: &[&str], now: &str) -> std::process::Command {
        let mut command = self.site.command();
        command
            .args(args)
            .env("TEST_PG_PASSWORD", PG_SECRET)
            .env("TLDW_OPS_NOW", now);
        command
    }

    /// Runs the binary and keeps its outputs for the secret scan.
    fn run(&self, args: &[&str], now: &str) -> (i32, String, String) {
        self.run_command(&mut self.command(args, now))
    }

    fn run_command(&self, command: &mut std::process::Command) -> (i32, String, String) {
        let (code, stdout, stderr) = run(command);
        self.outputs.borrow_mut().push(stdout.clone());
        self.outputs.borrow_mut().push(stderr.clone());
        (code, stdout, stderr)
    }

    fn write_yaml(&self, keep: &str, before_apply: bool, log_level: &str) {
        let service = std::fs::read_to_string(self.path().join("service.yaml")).unwrap_or_default();
        self.site.write_yaml(
            "tldw-ops.yaml",
            &yaml(&service, keep, before_apply, log_level),
        );
    }

    fn location(&self) -> PathBuf {
        self.path().join("backups/dev")
    }

    /// The set ids at the destination, oldest first.
    fn sets(&self) -> Vec<String> {
        let mut sets: Vec<String> = std::fs::read_dir(self.location())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        sets.sort();
        sets
    }

    fn manifest(&self, set: &str) -> Option<serde_json::Value> {
        let text = std::fs::read(self.location().join(set).join("manifest.json")).ok()?;
        Some(serde_json::from_slice(&text).unwrap())
    }

    fn verified(&self, set: &str) -> bool {
        self.manifest(set)
            .is_some_and(|manifest| manifest["verification"]["ok"] == true)
    }

    fn database(&self, relative: &str) -> PathBuf {
        self.path().join("site/Databases").join(relative)
    }

    /// Every row of every database of the deployment.
    fn rows(&self) -> Vec<Rows> {
        DATABASES
            .iter()
            .map(|(relative, _)| self.runtime.block_on(rows(&self.database(relative))))
            .collect()
    }

    /// Every row of every database in a set.
    fn set_rows(&self, set: &str) -> Vec<Rows> {
        let set_dir = self.location().join(set);
        DATABASES
            .iter()
            .map(|(relative, _)| {
                let path = match relative.strip_prefix("user_databases/") {
                    Some(rest) => set_dir.join("user_databases").join(rest),
                    None => set_dir.join("authnz").join(relative),
                };
                self.runtime.block_on(rows(&path))
            })
            .collect()
    }

    /// Writes to every database through the open connections, as users of the server would.
    fn add_rows(&self, count: i64) {
        let mut connections = self.connections.borrow_mut();
        self.runtime.block_on(async {
            for connection in connections.iter_mut() {
                sqlx::query(
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1) \
                     INSERT INTO items (label, payload) SELECT 'later ' || x, randomblob(64) FROM n",
                )
                .bind(count)
                .execute(connection)
                .await
                .unwrap();
            }
        });
    }

    /// Closes every connection, as stopping the server does.
    fn stop_server(&self) {
        let connections: Vec<SqliteConnection> = self.connections.borrow_mut().drain(..).collect();
        self.runtime.block_on(async {
            for connection in connections {
                connection.close().await.unwrap();
            }
        });
    }

    fn history(&self) -> Vec<serde_json::Value> {
        let (code, stdout, stderr) = self.run(&["history", "--format", "json"], T0);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["applies"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn plan_json(&self, now: &str) -> serde_json::Value {
        let (code, stdout, stderr) = self.run(&["plan", "--format", "json"], now);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    }

    /// Ends every test: no secret in anything printed, nor in any file outside the deployment's
    /// `.env`, the checkpoints and the backup sets (which hold secrets by design, mode 0600).
    fn assert_no_secret_anywhere(&self) {
        let outputs = self.outputs.borrow();
        let texts: Vec<(&str, &str)> = outputs
            .iter()
            .map(|text| ("output", text.as_str()))
            .collect();
        assert_no_secret(
            &[PG_SECRET, ENV_SECRET],
            &texts,
            &self.site.files_that_must_not_hold_secrets(),
        );
    }
}

async fn wal_database(path: &Path, rows: i64) -> SqliteConnection {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL, payload BLOB NOT NULL)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1) \
         INSERT INTO items (id, label, payload) SELECT x, 'row ' || x, randomblob(512) FROM n",
    )
    .bind(rows)
    .execute(&mut connection)
    .await
    .unwrap();
    connection
}

async fn rows(path: &Path) -> Rows {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT id, label, hex(payload) FROM items ORDER BY id")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    rows
}

fn deleted_and_created(plan: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let mut deleted = Vec::new();
    let mut created = Vec::new();
    for change in plan["changes"].as_array().unwrap() {
        let Some(id) = change["address"]
            .as_str()
            .unwrap()
            .strip_prefix("backup.set.")
        else {
            continue;
        };
        match change["action"].as_str().unwrap() {
            "delete" => deleted.push(id.to_string()),
            "create" => created.push(id.to_string()),
            other => panic!("a backup set is never {other}d"),
        }
    }
    (deleted, created)
}

/// Starts `args` with a pause fault, waits until it paused, and kills it: what a power loss
/// leaves behind.
fn crash(sample: &Sample, args: &[&str], fault: &str, now: &str) {
    let mut child = sample
        .command(args, now)
        .env("TLDW_OPS_FAULT", fault)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the apply ended before pausing at {fault}"
        );
        sample.outputs.borrow_mut().push(line.clone());
        if line.contains("TLDW_OPS_FAULT: paused") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_due_backup_is_planned_then_made_and_verified_and_the_next_plan_is_empty() {
    let sample = Sample::new("", KEEP, false);
    let (code, stdout, stderr) = sample.run(&["plan", "--detailed-exitcode"], T0);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "  + backup.set.{FIRST_SET}\n      tldw-ops.yaml:11  there is no verified set\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("  1. create_backup backups/dev/{FIRST_SET}\n")),
        "{stdout}"
    );

    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.sets(), [FIRST_SET]);
    assert!(sample.verified(FIRST_SET));
    let manifest = sample.manifest(FIRST_SET).unwrap();
    let names: Vec<&str> = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "authnz",
            "1/ChaChaNotes.db",
            "1/Media_DB_v2.db",
            "1/rag_personalization.json",
            "2/Media_DB_v2.db",
            "3/prompts_user_dbs/user_prompts_v2.sqlite",
            "env_file",
            "config_file",
        ]
    );
    // The sources are live WAL databases; the copies hold every committed row and no sidecar.
    assert!(sample.database("users.db-wal").exists());
    assert_eq!(sample.set_rows(FIRST_SET), sample.rows());
    assert!(
        !sample
            .location()
            .join(FIRST_SET)
            .join("authnz/users.db-wal")
            .exists()
    );

    let (code, stdout, stderr) = sample.run(&["plan", "--detailed-exitcode"], &at(1));
    assert_eq!(code, 0, "converged:\n{stdout}{stderr}");
    // Sets hold the .env and every user's data: a destination others can read is worth a warning.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sample.path().join("backups"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let (_, _, stderr) = sample.run(&["plan"], &at(1));
    assert!(
        stderr.contains("backup destination") && stderr.contains("is readable by other users"),
        "{stderr}"
    );
    let (code, stdout, _) = sample.run(&["plan", "--detailed-exitcode"], &at(24));
    assert_eq!(code, 2);
    assert!(
        stdout.contains("the newest verified set is 24h old and policy says every 24h"),
        "{stdout}"
    );
    sample.assert_no_secret_anywhere();
}

#[test]
fn apply_only_backup_makes_the_set_and_nothing_else_and_records_no_managed_state() {
    let sample = Sample::new("", KEEP, true);
    let env_before = sample.site.env_text();
    let (code, stdout, stderr) = sample.run(&["plan", "--only", "backup"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("env.LOG_LEVEL"), "{stdout}");
    let (code, _, stderr) = sample.run(&["apply", "--only", "backup", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.sets(), [FIRST_SET]);
    assert_eq!(sample.site.env_text(), env_before, "nothing else changed");
    let applies = sample.history();
    assert_eq!(applies[0]["kind"], "backup");
    // The rest is still to do, and the backup is not (before_apply takes a checkpoint with it).
    let plan = sample.plan_json(&at(1));
    let addresses: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["address"].as_str().unwrap())
        .collect();
    assert!(addresses.contains(&"env.LOG_LEVEL"), "{addresses:?}");
    let create = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["address"] == "backup.set.2026-11-26T040000Z")
        .expect("before_apply asks for a checkpoint");
    assert_eq!(
        create["reason"],
        "before_apply: a checkpoint of the data before this apply"
    );
    // --only backup has nothing to do: the checkpoint belongs to an apply that changes things.
    let (code, stdout, _) =
        sample.run(&["plan", "--only", "backup", "--detailed-exitcode"], &at(1));
    assert_eq!(code, 0, "{stdout}");
    // A backup-only plan saved for later is applied as one: no managed state is recorded.
    let (code, _, stderr) =
        sample.run(&["plan", "--only", "backup", "--out", "plan.json"], &at(24));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sample.run(&["apply", "plan.json", "--auto-approve"], &at(24));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.history()[0]["kind"], "backup");
    assert_eq!(sample.sets(), [FIRST_SET, "2026-11-27T030000Z"]);
    assert_eq!(sample.site.env_text(), env_before);
    sample.assert_no_secret_anywhere();
}

#[test]
fn moving_the_clock_past_the_keep_windows_prunes_exactly_what_the_policy_releases() {
    let sample = Sample::new("", "{ daily: 100 }", false);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    // A set every two days for 80 days, kept by a generous policy.
    for day in (2..=80).step_by(2) {
        let (code, _, stderr) = sample.run(
            &["apply", "--only", "backup", "--auto-approve"],
            &at(day * 24),
        );
        assert_eq!(code, 0, "day {day}: {stderr}");
    }
    assert_eq!(sample.sets().len(), 41);

    // Then the policy shrinks; an hour after the last set nothing is due, so prune decides over
    // exactly the sets there are.
    sample.write_yaml(KEEP, false, "info");
    let now = at(80 * 24 + 1);
    let listed = tldw_ops::providers::backups::list_sets(&sample.path().join("backups"), "dev")
        .unwrap()
        .into_iter()
        .map(|(set, _)| set)
        .collect::<Vec<_>>();
    let keep = tldw_ops::spec::types::Keep {
        last: None,
        daily: Some(3),
        weekly: Some(2),
        monthly: Some(2),
    };
    let decisions = tldw_ops::providers::backups::prune(&listed, &keep, now.parse().unwrap());
    let released: Vec<String> = decisions
        .iter()
        .filter(|decision| !decision.is_kept())
        .map(|decision| decision.id.clone())
        .collect();
    let kept: Vec<String> = decisions
        .iter()
        .filter(|decision| decision.is_kept())
        .map(|decision| decision.id.clone())
        .collect();
    assert!(kept.len() >= 3 && kept.len() <= 7, "{kept:?}");

    let plan = sample.plan_json(&now);
    let (deleted, created) = deleted_and_created(&plan);
    assert!(created.is_empty());
    assert_eq!(deleted, released);
    for change in plan["changes"].as_array().unwrap() {
        assert_eq!(
            change["reason"], "outside keep daily 3 / weekly 2 / monthly 2",
            "{change}"
        );
    }
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["kind"], "prune_backups");

    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], &now);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.sets(), kept, "apply deleted exactly those");
    let (code, stdout, _) = sample.run(&["plan", "--detailed-exitcode"], &now);
    assert_eq!(code, 0, "{stdout}");
    sample.assert_no_secret_anywhere();
}

#[test]
fn before_apply_takes_the_backup_first_and_a_failed_later_step_rolls_files_back_but_keeps_it() {
    let sample = Sample::new("", KEEP, true);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    sample.write_yaml(KEEP, true, "debug");
    let now = at(1);
    let (code, stdout, _) = sample.run(&["plan", "--detailed-exitcode"], &now);
    assert_eq!(code, 2);
    assert!(
        stdout.contains(
            "  + backup.set.2026-11-26T040000Z\n      tldw-ops.yaml:11  before_apply: a checkpoint of the data before this apply\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("  1. create_backup backups/dev/2026-11-26T040000Z\n  2. ensure_env_file"),
        "{stdout}"
    );

    let env_before = sample.site.env_text();
    let config_before = sample.site.config_text();
    let (code, _, stderr) = sample.run_command(
        sample
            .command(&["apply", "--auto-approve"], &now)
            .env("TLDW_OPS_FAULT", "fail:1"),
    );
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("backup set 2026-11-26T040000Z kept: it is a safety copy of the data"),
        "{stderr}"
    );
    assert_eq!(sample.site.env_text(), env_before);
    assert_eq!(sample.site.config_text(), config_before);
    assert_eq!(sample.sets(), [FIRST_SET, "2026-11-26T040000Z"]);
    assert!(sample.verified("2026-11-26T040000Z"));
    assert_eq!(sample.history()[0]["outcome"], "rolled_back");

    // Without the fault the same change goes through, with a checkpoint of its own.
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], &at(2));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = sample.run(&["plan", "--detailed-exitcode"], &at(2));
    assert_eq!(code, 0, "{stdout}");
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_crash_mid_backup_leaves_an_incomplete_set_that_resume_finishes() {
    let sample = Sample::new("", KEEP, false);
    crash(&sample, &["apply", "--auto-approve"], "pause:0:before", T0);
    assert_eq!(sample.sets(), [FIRST_SET]);
    assert!(sample.manifest(FIRST_SET).is_none(), "incomplete");
    let (code, _, stderr) = sample.run(&["plan"], T0);
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("apply --resume"), "{stderr}");
    let (code, stdout, stderr) = sample.run(&["backup", "list"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("incomplete  incomplete but younger than a day"),
        "{stdout}"
    );

    let (code, _, stderr) = sample.run(&["apply", "--resume"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert!(sample.verified(FIRST_SET));
    assert_eq!(sample.set_rows(FIRST_SET), sample.rows());
    let (code, stdout, _) = sample.run(&["plan", "--detailed-exitcode"], T0);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(sample.history()[0]["outcome"], "succeeded");

    // A crash after the set was made but before the journal said so keeps that set.
    crash(
        &sample,
        &["apply", "--only", "backup", "--auto-approve"],
        "pause:0:after",
        &at(24),
    );
    let (code, _, stderr) = sample.run(&["apply", "--resume"], &at(24));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.sets(), [FIRST_SET, "2026-11-27T030000Z"]);
    assert!(sample.verified("2026-11-27T030000Z"));
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_crash_mid_backup_is_undone_by_rollback_unfinished_which_removes_the_partial_set() {
    let sample = Sample::new("", KEEP, false);
    let env_before = sample.site.env_text();
    crash(&sample, &["apply", "--auto-approve"], "pause:0:before", T0);
    let (code, stdout, stderr) = sample.run(&["rollback", "--unfinished", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("removed the incomplete backup set {FIRST_SET}")),
        "{stderr}"
    );
    assert!(sample.sets().is_empty());
    assert_eq!(sample.site.env_text(), env_before);
    assert_eq!(sample.history()[0]["outcome"], "abandoned");
    let (code, _, _) = sample.run(&["plan", "--detailed-exitcode"], T0);
    assert_eq!(code, 2, "the backup is still due");
    sample.assert_no_secret_anywhere();
}

#[test]
fn an_orphaned_incomplete_set_is_reported_then_deleted_once_a_day_old() {
    let sample = Sample::new("", KEEP, false);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    // What a backup killed outside any journal leaves: items, no manifest.
    let orphan = sample.location().join("2026-11-26T120000Z");
    std::fs::create_dir_all(orphan.join("user_databases/1")).unwrap();
    std::fs::write(orphan.join("user_databases/1/Media_DB_v2.db"), b"partial").unwrap();

    let (code, stdout, stderr) = sample.run(&["plan", "--detailed-exitcode"], &at(10));
    assert_eq!(code, 0, "young: may still be running\n{stdout}");
    assert!(
        stderr.contains("backup set 2026-11-26T120000Z is incomplete (it has no manifest)"),
        "{stderr}"
    );
    let plan = sample.plan_json(&at(34));
    assert_eq!(
        deleted_and_created(&plan),
        (
            vec!["2026-11-26T120000Z".to_string()],
            vec!["2026-11-27T130000Z".to_string()]
        )
    );
    assert_eq!(
        plan["changes"][0]["reason"],
        "incomplete, left by an interrupted backup"
    );
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], &at(34));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.sets(), [FIRST_SET, "2026-11-27T130000Z"]);
    sample.assert_no_secret_anywhere();
}

#[test]
fn restore_refuses_a_server_that_answers_and_with_server_stopped_brings_back_identical_data() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let service = format!(
        "  service:\n    url: {}\n    timeout: 5s\n    health:\n      - {{ path: /health }}\n",
        fake.url()
    );
    let sample = Sample::new(&service, KEEP, false);
    let env_then = sample.site.env_text();
    let config_then = sample.site.config_text();
    let rows_then = sample.rows();
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");

    // Life goes on: users write, someone edits the files.
    sample.add_rows(25);
    std::fs::write(
        sample.path().join(crate::common::CONFIG_PATH),
        format!("{config_then}\n[Extra]\nedited = yes\n"),
    )
    .unwrap();
    let env_now = sample.site.env_text();
    let config_now = sample.site.config_text();
    let rows_now = sample.rows();
    assert_ne!(rows_now, rows_then);

    let now = at(1);
    let (code, _, stderr) = sample.run(&["backup", "restore", FIRST_SET, "--auto-approve"], &now);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "tldw_server still answers at {}/health",
            fake.url()
        )),
        "{stderr}"
    );
    assert_eq!(
        sample.sets(),
        [FIRST_SET],
        "nothing was done, not even a safety set"
    );
    assert_eq!(sample.rows(), rows_now);

    sample.stop_server();
    // Without a terminal to confirm on, only --auto-approve restores.
    let (code, _, stderr) = sample.run(&["backup", "restore", FIRST_SET, "--server-stopped"], &now);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no terminal to confirm on"), "{stderr}");
    assert_eq!(sample.sets(), [FIRST_SET]);
    let (code, stdout, stderr) = sample.run(
        &[
            "backup",
            "restore",
            FIRST_SET,
            "--server-stopped",
            "--auto-approve",
        ],
        &now,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("still answers although --server-stopped"),
        "{stderr}"
    );
    assert!(stderr.contains("authnz          1 file(s)"), "{stderr}");
    assert_eq!(sample.site.env_text(), env_then, ".env byte for byte");
    assert_eq!(
        sample.site.config_text(),
        config_then,
        "config.txt byte for byte"
    );
    assert_eq!(sample.rows(), rows_then, "every row of every database");
    assert!(!sample.database("users.db-wal").exists());

    // The safety set holds what was there just before.
    let safety = "2026-11-26T040000Z";
    assert_eq!(sample.sets(), [FIRST_SET, safety]);
    assert!(sample.verified(safety));
    assert_eq!(sample.set_rows(safety), rows_now);
    assert_eq!(
        std::fs::read_to_string(sample.location().join(safety).join("config/.env")).unwrap(),
        env_now
    );
    assert_eq!(
        std::fs::read_to_string(sample.location().join(safety).join("config/config.txt")).unwrap(),
        config_now
    );
    let applies = sample.history();
    assert_eq!(applies[0]["kind"], "restore");
    assert_eq!(applies[0]["outcome"], "succeeded");
    let id = applies[0]["id"].as_str().unwrap().to_string();
    let (code, stdout, _) = sample.run(&["show", &id], &now);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("1. create_backup") && stdout.contains("2. restore_backup"),
        "{stdout}"
    );
    // The restored .env predates the first apply: the plan puts the desired values back.
    let plan = sample.plan_json(&now);
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|change| change["address"] == "env.LOG_LEVEL")
    );
    sample.assert_no_secret_anywhere();
}

/// A stand-in for tldw_server whose stop and start commands are files: it listens on its port
/// (answering 200, or 503 while `unhealthy` exists) until `stopped` exists, then refuses
/// connections until `stopped` is gone.
struct Switchable {
    port: u16,
    directory: PathBuf,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Switchable {
    fn start(directory: &Path) -> Switchable {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let quit = Arc::new(AtomicBool::new(false));
        let thread = {
            let (directory, quit) = (directory.to_path_buf(), quit.clone());
            std::thread::spawn(move || {
                listener.set_nonblocking(true).unwrap();
                let mut listener = Some(listener);
                while !quit.load(Ordering::SeqCst) {
                    let stopped = directory.join("stopped").exists();
                    if stopped {
                        listener = None;
                    } else if listener.is_none() {
                        listener = TcpListener::bind(("127.0.0.1", port)).ok();
                        if let Some(listener) = &listener {
                            listener.set_nonblocking(true).unwrap();
                        }
                    }
                    match listener.as_ref().map(TcpListener::accept) {
                        Some(Ok((mut stream, _))) => {
                            stream.set_nonblocking(false).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_secs(1)))
                                .unwrap();
                            let mut buffer = [0u8; 2048];
                            let _ = stream.read(&mut buffer);
                            let status = if directory.join("unhealthy").exists() {
                                "503 Service Unavailable"
                            } else {
                                "200 OK"
                            };
                            let _ = stream.write_all(
                                format!(
                                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                                )
                                .as_bytes(),
                            );
                        }
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Switchable {
            port,
            directory: directory.to_path_buf(),
            quit,
            thread: Some(thread),
        }
    }

    fn service(&self) -> String {
        let stopped = self.directory.join("stopped");
        format!(
            "  service:\n    url: http://127.0.0.1:{}\n    stop: [sh, -c, \"echo stop >> {log}; touch {stopped}\"]\n    start: [sh, -c, \"echo start >> {log}; rm -f {stopped}\"]\n    timeout: 3s\n    health:\n      - {{ path: /health }}\n",
            self.port,
            log = self.directory.join("service.log").display(),
            stopped = stopped.display(),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("service.log")).unwrap_or_default()
    }
}

impl Drop for Switchable {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn switchable_sample() -> (Sample, Switchable, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let server = Switchable::start(directory.path());
    let sample = Sample::new(&server.service(), KEEP, false);
    std::fs::write(sample.path().join("service.yaml"), server.service()).unwrap();
    (sample, server, directory)
}

#[test]
fn restore_stops_the_server_restores_starts_it_and_checks_its_health() {
    let (sample, server, _directory) = switchable_sample();
    let rows_then = sample.rows();
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    sample.add_rows(10);
    sample.stop_server();

    let (code, stdout, stderr) = sample.run(
        &[
            "backup",
            "restore",
            FIRST_SET,
            "--only",
            "authnz",
            "--auto-approve",
        ],
        &at(1),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let steps: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            line.split_once(". ")
                .is_some_and(|(number, _)| number.parse::<u32>().is_ok())
        })
        .collect();
    assert_eq!(steps.len(), 5, "{stdout}");
    assert!(steps[1].contains("stop_service") && steps[2].contains("restore_backup"));
    assert!(steps[3].contains("start_service") && steps[4].contains("health_gate"));
    assert_eq!(server.log(), "stop\nstart\n");
    // Only the AuthNZ database came back.
    let rows = sample.rows();
    assert_eq!(rows[0], rows_then[0]);
    assert_ne!(rows[1], rows_then[1]);
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_restore_whose_health_gate_fails_puts_the_safety_set_back() {
    let (sample, server, directory) = switchable_sample();
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    sample.add_rows(10);
    sample.stop_server();
    let rows_before = sample.rows();
    let config_before = sample.site.config_text();
    std::fs::write(directory.path().join("unhealthy"), "").unwrap();

    let (code, _, stderr) = sample.run(&["backup", "restore", FIRST_SET, "--auto-approve"], &at(1));
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("put back the data from before the restore: safety set 2026-11-26T040000Z"),
        "{stderr}"
    );
    assert_eq!(sample.rows(), rows_before);
    assert_eq!(sample.site.config_text(), config_before);
    // stop, start (then the gate failed), and in reverse: stop, start.
    assert_eq!(server.log(), "stop\nstart\nstop\nstart\n");
    assert_eq!(sample.history()[0]["outcome"], "rolled_back");
    sample.assert_no_secret_anywhere();
}

#[test]
fn backup_list_says_why_each_set_is_kept_and_verify_catches_a_corrupt_set() {
    let sample = Sample::new("", "{ daily: 2, weekly: 1 }", false);
    for (hours, args) in [
        (0, vec!["apply", "--auto-approve"]),
        (24, vec!["apply", "--only", "backup", "--auto-approve"]),
        (48, vec!["apply", "--only", "backup", "--auto-approve"]),
    ] {
        let (code, _, stderr) = sample.run(&args, &at(hours));
        assert_eq!(code, 0, "{stderr}");
    }
    let sets = sample.sets();
    assert_eq!(sets, ["2026-11-27T030000Z", "2026-11-28T030000Z"]);

    let (code, stdout, stderr) = sample.run(&["backup", "list"], &at(49));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Policy: every 24h, keep daily 2 / weekly 1, verify on"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|line| line.starts_with("2026-11-27T030000Z"))
        .unwrap();
    assert!(
        line.contains(" 25h ") && line.ends_with("verified    daily 2026-11-27"),
        "{line}"
    );
    assert!(
        stdout.contains("verified    daily 2026-11-28, weekly 2026-W48, newest verified"),
        "{stdout}"
    );
    assert!(stdout.contains("No new set is due."), "{stdout}");
    // A day later a set is due, and the one it pushes out is named.
    let (code, stdout, _) = sample.run(&["backup", "list", "--format", "json"], &at(72));
    assert_eq!(code, 0);
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        listing["due"],
        "the newest verified set is 24h old and policy says every 24h"
    );
    assert_eq!(
        listing["sets"][0]["release"],
        "outside keep daily 2 / weekly 1"
    );
    assert_eq!(listing["sets"][1]["kept_by"][0], "daily 2026-11-28");

    let (code, stdout, _) = sample.run(&["backup", "verify"], &at(49));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout.matches("verified (8 items)").count(), 2, "{stdout}");

    // Damage one copy in the newest set.
    let damaged = sample
        .location()
        .join("2026-11-28T030000Z/user_databases/1/Media_DB_v2.db");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0xff;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let (code, stdout, stderr) = sample.run(&["backup", "verify", "2026-11-28T030000Z"], &at(49));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("2026-11-28T030000Z  FAILED")
            && stdout.contains("1/Media_DB_v2.db: sha256 is"),
        "{stdout}"
    );
    let (_, stdout, _) = sample.run(&["backup", "list"], &at(49));
    assert!(
        stdout.contains("failed      deleted by the next apply: failed verification"),
        "{stdout}"
    );
    // The plan reports it, does not count it (a set is due again) and deletes it.
    let (code, stdout, stderr) = sample.run(&["plan", "--detailed-exitcode"], &at(49));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("backup set 2026-11-28T030000Z failed verification"),
        "{stderr}"
    );
    assert!(
        stdout.contains("  - backup.set.2026-11-28T030000Z\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  + backup.set.2026-11-28T040000Z\n"),
        "{stdout}"
    );
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_saved_plan_goes_stale_when_a_set_it_deletes_is_gone() {
    let sample = Sample::new("", "{ daily: 1 }", false);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sample.run(&["plan", "--out", "plan.json"], &at(24));
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_dir_all(sample.location().join(FIRST_SET)).unwrap();
    let (code, _, stderr) = sample.run(&["apply", "plan.json", "--auto-approve"], &at(24));
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains(&format!("backup.set.{FIRST_SET}: then")),
        "{stderr}"
    );
    sample.assert_no_secret_anywhere();
}

#[test]
fn backup_schedule_prints_a_systemd_service_and_timer_and_a_cron_line() {
    let sample = Sample::new("", KEEP, false);
    let directory = sample.path().display().to_string();
    for scheduler in ["systemd", "cron"] {
        let (code, stdout, stderr) = sample.run(
            &[
                "backup",
                "schedule",
                "--print",
                scheduler,
                "--binary",
                "/usr/local/bin/tldw-ops",
            ],
            T0,
        );
        assert_eq!(code, 0, "{stderr}");
        // The units name the deployment's directory, a fresh temporary one on every run.
        let shown = stdout.replace(&directory, "<DIR>");
        insta::assert_snapshot!(format!("backup_schedule_{scheduler}"), shown);
    }
}

#[test]
fn a_postgres_authnz_database_is_dumped_and_restored_with_the_password_kept_out_of_sight() {
    let Some(cluster) = crate::support::pg::shared() else {
        return;
    };
    const URL_PASSWORD: &str = "url-password-never-shown-0123456789";
    let url = cluster.fresh_database("cli_backup");
    let database = url.rsplit('/').next().unwrap().to_string();
    cluster.psql(
        &database,
        "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, username TEXT UNIQUE NOT NULL); \
         INSERT INTO users (username) SELECT 'user' || n FROM generate_series(1, 300) n;",
    );
    let content = || {
        cluster.psql(
            &database,
            "SELECT count(*) || ' ' || md5(string_agg(u::text, ',' ORDER BY id)) FROM users u",
        )
    };
    let original = content();
    let sample = Sample::new("", KEEP, false);
    let with_password = url.replace("postgres@", &format!("postgres:{URL_PASSWORD}@"));
    sample.site.write_yaml(
        "tldw-ops.yaml",
        &yaml("", KEEP, false, "info").replace("sqlite:///./Databases/users.db", &with_password),
    );
    let path = path_with(cluster);
    let (code, stdout, stderr) = sample.run_command(
        sample
            .command(&["apply", "--auto-approve"], T0)
            .env("PATH", &path),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(sample.verified(FIRST_SET));
    let manifest =
        std::fs::read_to_string(sample.location().join(FIRST_SET).join("manifest.json")).unwrap();
    assert!(manifest.contains("authnz/authnz.pgdump"), "{manifest}");
    assert!(!manifest.contains(URL_PASSWORD) && !manifest.contains(PG_SECRET));

    cluster.psql(&database, "DELETE FROM users WHERE id % 3 = 0");
    assert_ne!(content(), original);
    let (code, stdout, stderr) = sample.run_command(
        sample
            .command(
                &[
                    "backup",
                    "restore",
                    FIRST_SET,
                    "--only",
                    "authnz",
                    "--server-stopped",
                    "--auto-approve",
                ],
                &at(1),
            )
            .env("PATH", &path),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(content(), original);
    for output in sample.outputs.borrow().iter() {
        assert!(!output.contains(URL_PASSWORD), "{output}");
    }
    sample.assert_no_secret_anywhere();
}

#[test]
fn same_day_applies_keep_the_sets_taken_before_each_of_the_last_three() {
    let sample = Sample::new("", KEEP, true);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    // Four more applies within the same UTC day, each with a change (and so a set before it).
    for (hour, level) in [(1, "debug"), (2, "warning"), (3, "info"), (4, "debug")] {
        sample.write_yaml(KEEP, true, level);
        let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], &at(hour));
        assert_eq!(code, 0, "{hour}: {stderr}");
    }
    // daily 3 alone would keep one set of the day; `last` (3 by default with before_apply)
    // keeps the sets taken before each of the three latest applies.
    let sets = sample.sets();
    assert_eq!(sets.len(), 3, "{sets:?}");
    assert_eq!(
        sets,
        [
            "2026-11-26T050000Z",
            "2026-11-26T060000Z",
            "2026-11-26T070000Z"
        ],
        "{sets:?}"
    );
    let (code, stdout, _) = sample.run(&["backup", "list"], &at(4));
    assert_eq!(code, 0);
    assert!(stdout.contains("last 3"), "{stdout}");
    // Saying so keeps fewer.
    sample.write_yaml("{ last: 1, daily: 3 }", true, "warning");
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], &at(5));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sample.sets().len(), 1, "{:?}", sample.sets());
    sample.assert_no_secret_anywhere();
}

/// `PATH` with the cluster's client tools first: pg_dump and pg_restore are found on it.
fn path_with(cluster: &crate::support::pg::PgCluster) -> String {
    #[allow(clippy::disallowed_methods)]
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", cluster.bin_dir().display())
}

/// The hidden scratch directories drills leave in the location (none unless `--keep`).
fn scratch_dirs(sample: &Sample) -> Vec<PathBuf> {
    std::fs::read_dir(sample.location())
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(".drill-"))
        })
        .collect()
}

#[test]
fn a_drill_restores_the_newest_set_into_a_scratch_copy_checks_every_table_and_leaves_the_deployment_alone()
 {
    let sample = Sample::new("", KEEP, false);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sample.run(&["apply", "--only", "backup", "--auto-approve"], &at(24));
    assert_eq!(code, 0, "{stderr}");
    let newest = "2026-11-27T030000Z";
    assert_eq!(sample.sets(), [FIRST_SET, newest]);
    // The server goes on writing after the backup: the drill checks the set, not the live data.
    sample.add_rows(7);
    let live_rows = sample.rows();
    let env_before = sample.site.env_text();
    let config_before = std::fs::read(sample.path().join(crate::common::CONFIG_PATH)).ok();

    let (code, stdout, stderr) = sample.run(&["backup", "drill"], &at(25));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("Restore drill of backup set {newest}:\n")),
        "{stdout}"
    );
    for (name, rows) in [
        ("authnz", 50),
        ("1/Media_DB_v2.db", 200),
        ("1/ChaChaNotes.db", 20),
        ("2/Media_DB_v2.db", 30),
        ("3/prompts_user_dbs/user_prompts_v2.sqlite", 10),
    ] {
        let line = stdout
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(
            line.ends_with(&format!(
                "integrity ok, 1 table(s), {rows} row(s) as in the manifest"
            )),
            "{line}"
        );
    }
    assert!(
        stdout.contains("env_file")
            && stdout.contains("config_file")
            && stdout.contains("restored byte for byte, parses"),
        "{stdout}"
    );
    assert!(
        stdout.contains("drill passed: 8 item(s) restored and checked."),
        "{stdout}"
    );
    let manifest = sample.manifest(newest).unwrap();
    assert_eq!(manifest["drill"]["ok"], true, "{manifest}");
    assert_eq!(manifest["drill"]["items_restored"], 8);
    assert_eq!(manifest["drill"]["drilled_at"], at(25));
    let media = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == "1/Media_DB_v2.db")
        .unwrap();
    assert_eq!(media["rows"], serde_json::json!({"items": 200}));
    // The older set was not drilled; nothing is left behind; the deployment is as it was.
    assert!(sample.manifest(FIRST_SET).unwrap().get("drill").is_none());
    assert!(scratch_dirs(&sample).is_empty());
    assert_eq!(sample.rows(), live_rows);
    assert_eq!(sample.site.env_text(), env_before);
    assert_eq!(
        std::fs::read(sample.path().join(crate::common::CONFIG_PATH)).ok(),
        config_before
    );

    // A named set, kept for a look, and the JSON form.
    let (code, stdout, stderr) = sample.run(
        &["backup", "drill", FIRST_SET, "--keep", "--format", "json"],
        &at(26),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["set"], FIRST_SET);
    assert_eq!(report["ok"], true);
    assert_eq!(report["checked"].as_array().unwrap().len(), 8);
    assert_eq!(report["problems"], serde_json::json!([]));
    let kept = scratch_dirs(&sample);
    assert_eq!(kept.len(), 1);
    assert_eq!(report["scratch"], kept[0].display().to_string());
    let restored = sample
        .runtime
        .block_on(rows(&kept[0].join("user_databases/1/Media_DB_v2.db")));
    assert_eq!(restored, sample.set_rows(FIRST_SET)[1]);
    assert_eq!(restored.len(), 200);
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_drill_of_a_damaged_set_fails_names_the_damage_and_records_it() {
    let sample = Sample::new("", KEEP, false);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    let damaged = sample
        .location()
        .join(FIRST_SET)
        .join("user_databases/2/Media_DB_v2.db");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0xff;
    }
    std::fs::write(&damaged, bytes).unwrap();

    let (code, stdout, stderr) = sample.run(&["backup", "drill", FIRST_SET], &at(1));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("2/Media_DB_v2.db") && stdout.contains("sha256 is"),
        "{stdout}"
    );
    assert!(stdout.contains("DRILL FAILED: "), "{stdout}");
    let manifest = sample.manifest(FIRST_SET).unwrap();
    assert_eq!(manifest["drill"]["ok"], false);
    assert_eq!(manifest["drill"]["items_restored"], 0);
    assert!(scratch_dirs(&sample).is_empty());

    // No such set, and an unknown one, are errors that say where to look.
    let (code, _, stderr) = sample.run(&["backup", "drill", "2026-01-01T000000Z"], &at(1));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no backup set 2026-01-01T000000Z in") && stderr.contains("backup list"),
        "{stderr}"
    );
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_drill_never_restores_into_the_live_postgres_database_nor_takes_a_password_in_a_url() {
    const URL_PASSWORD: &str = "drill-url-password-never-shown-42";
    let sample = Sample::new("", KEEP, false);
    sample.site.write_yaml(
        "tldw-ops.yaml",
        &yaml("", KEEP, false, "info").replace(
            "sqlite:///./Databases/users.db",
            "postgres://tldw:live-password@DB.example.org:5432/tldw_users",
        ),
    );
    for (url, expected) in [
        (
            "postgres://someone@db.example.org/tldw_users".to_string(),
            "names the deployment's own AuthNZ database",
        ),
        (
            format!("postgres://tldw:{URL_PASSWORD}@scratch.example.org/drill"),
            "must not hold a password",
        ),
        (
            "mysql://scratch.example.org/drill".to_string(),
            "is not a postgres:// URL",
        ),
    ] {
        let (code, stdout, stderr) =
            sample.run(&["backup", "drill", "--postgres-url", &url], &at(1));
        assert_eq!(code, 1, "{url}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains(URL_PASSWORD) && !stdout.contains(URL_PASSWORD));
        assert!(!stderr.contains("live-password"), "{stderr}");
    }
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_drill_restores_a_postgres_dump_into_the_scratch_database_it_is_given() {
    let Some(cluster) = crate::support::pg::shared() else {
        return;
    };
    let live = cluster.fresh_database("drill_live");
    let live_name = live.rsplit('/').next().unwrap().to_string();
    cluster.psql(
        &live_name,
        "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, username TEXT UNIQUE NOT NULL); \
         INSERT INTO users (username) SELECT 'user' || n FROM generate_series(1, 120) n;",
    );
    let scratch = cluster.fresh_database("drill_scratch");
    let scratch_name = scratch.rsplit('/').next().unwrap().to_string();
    let sample = Sample::new("", KEEP, false);
    sample.site.write_yaml(
        "tldw-ops.yaml",
        &yaml("", KEEP, false, "info").replace("sqlite:///./Databases/users.db", &live),
    );
    let path = path_with(cluster);
    let (code, stdout, stderr) = sample.run_command(
        sample
            .command(&["apply", "--auto-approve"], T0)
            .env("PATH", &path),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Without a scratch database the dump is read but not restored, and the report says so.
    let (code, stdout, stderr) = sample.run_command(
        sample
            .command(&["backup", "drill"], &at(1))
            .env("PATH", &path),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("authnz: the PostgreSQL dump was read in full but not restored"),
        "{stdout}"
    );
    let (code, stdout, stderr) = sample.run_command(
        sample
            .command(&["backup", "drill", "--postgres-url", &scratch], &at(2))
            .env("PATH", &path),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("restored into the scratch database"),
        "{stdout}"
    );
    assert_eq!(
        cluster
            .psql(&scratch_name, "SELECT count(*) FROM users")
            .trim(),
        "120"
    );
    assert_eq!(
        cluster
            .psql(&live_name, "SELECT count(*) FROM users")
            .trim(),
        "120"
    );
    sample.assert_no_secret_anywhere();
}

#[test]
fn a_destination_others_can_read_is_warned_about_once_per_run() {
    use std::os::unix::fs::PermissionsExt;
    let sample = Sample::new("", KEEP, true);
    let destination = sample.path().join("backups");
    std::fs::create_dir_all(&destination).unwrap();
    std::fs::set_permissions(&destination, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The plan, the set taken before the apply and the scheduled set all see the destination;
    // before, the plan's warning came again as a log line from each set created.
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert!(!sample.sets().is_empty(), "a set was made");
    assert_eq!(
        stderr.matches("is readable by other users").count(),
        1,
        "{stderr}"
    );
    let (code, _, stderr) = sample.run(&["plan"], T0);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.matches("is readable by other users").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn every_drill_is_in_the_history_as_it_ended_and_leaves_nothing_unfinished() {
    let sample = Sample::new("", KEEP, false);
    let (code, _, stderr) = sample.run(&["apply", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = sample.run(&["backup", "drill"], &at(1));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let damaged = sample
        .location()
        .join(FIRST_SET)
        .join("user_databases/2/Media_DB_v2.db");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let (code, _, _) = sample.run(&["backup", "drill", FIRST_SET], &at(2));
    assert_eq!(code, 1);

    let (code, history, stderr) = sample.run(&["history", "--format", "json"], &at(3));
    assert_eq!(code, 0, "{stderr}");
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let applies = history["applies"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = applies
        .iter()
        .map(|apply| {
            (
                apply["kind"].as_str().unwrap(),
                apply["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("drill", "failed"),
            ("drill", "succeeded"),
            ("apply", "succeeded")
        ],
        "{history}"
    );
    let failed = applies[0]["message"].as_str().unwrap();
    assert!(
        failed.starts_with(&format!("restore drill of backup set {FIRST_SET} FAILED: "))
            && failed.contains("2/Media_DB_v2.db"),
        "{failed}"
    );
    let passed = applies[1]["message"].as_str().unwrap();
    assert!(passed.contains("item(s) restored and checked"), "{passed}");
    // A drill is recorded as it ended: nothing is left unfinished for plan to stop at (the
    // damaged set does get replaced: it failed verification).
    let (code, stdout, stderr) = sample.run(&["plan", "--detailed-exitcode"], &at(3));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stderr.contains("did not finish"), "{stderr}");
    assert!(stdout.contains("failed verification"), "{stdout}");
    sample.assert_no_secret_anywhere();
}
