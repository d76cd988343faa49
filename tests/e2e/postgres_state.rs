//! The whole command line against one shared PostgreSQL state database: plan, apply, history,
//! show, state list/unlock/migrate, rollback and resume, locks between concurrent applies, and
//! that no secret value reaches the database. Checkpoints stay on the host beside the YAML.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::common::{assert_no_secret, env_value, run};
use crate::environments::{Environments, PG_PASSWORD, postgres};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

fn history(environments: &Environments, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["history", "--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&mut environments.command(&all));
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    value["applies"].as_array().unwrap().clone()
}

fn converged(environments: &Environments, file: &str) {
    let (code, stdout, stderr) =
        run(&mut environments.command(&["plan", file, "--detailed-exitcode"]));
    assert_eq!(code, 0, "nothing left to do:\n{stdout}\n{stderr}");
}

/// Starts an apply that pauses at step 0 with its lock held, and waits until it says so.
fn paused_apply(environments: &Environments, file: &str) -> Child {
    let mut child = environments
        .command(&["apply", file, "--auto-approve"])
        .env("TLDW_OPS_FAULT", "pause:0:before")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the paused apply ended early"
        );
    }
    child
}

#[test]
fn plan_apply_history_show_and_rollback_work_against_postgres_state() {
    let Some((_, url)) = postgres("cli_state") else {
        return;
    };
    let environments = Environments::new(Some(url.clone()));
    environments.add("dev", "", None);
    let before = environments.env_text("dev");
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "dev.yaml", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    converged(&environments, "dev.yaml");
    assert!(
        !environments.path().join(".tldw-ops/state.db").exists(),
        "no SQLite state is created when state is in PostgreSQL"
    );
    let checkpoints = environments.path().join(".tldw-ops/checkpoints");
    assert_eq!(
        std::fs::read_dir(&checkpoints).unwrap().count(),
        1,
        "the before-images stay on the host, beside the YAML"
    );

    let applies = history(&environments, &[]);
    assert_eq!(applies.len(), 1);
    assert_eq!(applies[0]["environment"], "dev");
    assert_eq!(applies[0]["outcome"], "succeeded");
    let id = applies[0]["id"].as_str().unwrap().to_string();
    let (code, stdout, stderr) = run(&mut environments.command(&["show", &id, "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["steps"].as_array().unwrap().len(), 2);
    let checkpoint = shown["steps"][0]["checkpoint_path"].as_str().unwrap();
    assert!(
        checkpoint.starts_with(&checkpoints.display().to_string()),
        "the database holds the checkpoint's path: {checkpoint}"
    );

    let (code, stdout, stderr) = run(&mut environments.command(&[
        "rollback",
        "--last",
        "--file",
        "dev.yaml",
        "--auto-approve",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(environments.env_text("dev"), before);
    let applies = history(&environments, &["--environment", "dev"]);
    assert_eq!(applies[0]["kind"], "rollback");
    assert_eq!(applies[0]["outcome"], "succeeded");
}

#[test]
fn a_second_apply_of_one_environment_on_postgres_exits_5_and_resume_finishes_the_first() {
    let Some((_, url)) = postgres("cli_lock") else {
        return;
    };
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = Environments::new(Some(url));
    environments.add("staging", "", Some(&fake));
    let mut first = paused_apply(&environments, "staging.yaml");

    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "staging.yaml", "--auto-approve"]));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    assert!(stderr.contains("still running"), "{stderr}");
    let (code, stdout, _) = run(&mut environments.command(&["state", "list"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("pid {}", first.id())),
        "state list names the holder: {stdout}"
    );
    let (code, _, stderr) =
        run(&mut environments.command(&["state", "unlock", "--environment", "staging", "--force"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("cleared the lock of staging"), "{stderr}");

    first.kill().unwrap();
    first.wait().unwrap();
    let (code, _, stderr) = run(&mut environments.command(&["plan", "staging.yaml"]));
    assert_eq!(code, 7, "the interrupted apply blocks new ones: {stderr}");
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "--resume", "--file", "staging.yaml"]));
    assert_eq!(code, 0, "{stderr}");
    converged(&environments, "staging.yaml");
    assert_eq!(history(&environments, &[])[0]["outcome"], "succeeded");
}

#[test]
fn an_interrupted_apply_on_postgres_is_undone_by_rollback_unfinished() {
    let Some((_, url)) = postgres("cli_unfinished") else {
        return;
    };
    let environments = Environments::new(Some(url));
    environments.add("dev", "", None);
    let before = environments.env_text("dev");
    let mut child = environments
        .command(&["apply", "dev.yaml", "--auto-approve"])
        .env("TLDW_OPS_FAULT", "pause:0:after")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(
        environments.env_text("dev"),
        before,
        "step 0 wrote the .env"
    );
    let (code, stdout, stderr) = run(&mut environments.command(&[
        "rollback",
        "--unfinished",
        "--file",
        "dev.yaml",
        "--auto-approve",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(environments.env_text("dev"), before);
    assert_eq!(history(&environments, &[])[0]["outcome"], "abandoned");
}

#[test]
fn two_environments_apply_in_parallel_on_one_postgres_database() {
    let Some((_, url)) = postgres("cli_parallel") else {
        return;
    };
    let environments = Environments::new(Some(url));
    for name in ["dev", "staging", "qa"] {
        environments.add(name, "", None);
    }
    // While dev holds its lock, staging applies: locks are per environment.
    let mut dev = paused_apply(&environments, "dev.yaml");
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "staging.yaml", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    dev.kill().unwrap();
    dev.wait().unwrap();
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "--resume", "--file", "dev.yaml"]));
    assert_eq!(code, 0, "{stderr}");

    // And two started at the same moment both finish.
    environments.add(
        "prod",
        "waivers: [{ rule: production-flag, reason: a test deployment }]\n",
        None,
    );
    let children: Vec<Child> = ["qa.yaml", "prod.yaml"]
        .iter()
        .map(|file| {
            environments
                .command(&["apply", file, "--auto-approve"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for file in ["dev.yaml", "staging.yaml", "qa.yaml", "prod.yaml"] {
        converged(&environments, file);
    }

    let (code, stdout, stderr) = run(&mut environments.command(&["state", "list"]));
    assert_eq!(code, 0, "{stderr}");
    for name in ["dev", "staging", "qa", "prod"] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(&format!("{name} "))),
            "state list shows {name}:\n{stdout}"
        );
    }
    let (_, stdout, _) = run(&mut environments.command(&["state", "list", "--format", "json"]));
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["environments"].as_array().unwrap().len(), 4);
}

#[test]
fn state_migrate_copies_sqlite_history_into_postgres_once() {
    let Some((_, url)) = postgres("cli_migrate") else {
        return;
    };
    // A team that started on SQLite beside the YAML.
    let environments = Environments::new(None);
    environments.add("dev", "", None);
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "dev.yaml", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let sqlite_history = history(&environments, &["--file", "dev.yaml"]);
    assert_eq!(sqlite_history.len(), 1);

    let (code, stdout, stderr) = run(&mut environments.command(&[
        "state",
        "migrate",
        "--from",
        ".tldw-ops/state.db",
        "--to",
        &url,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("environments     1 new"), "{stdout}");
    assert!(
        stdout.contains("applies          1 apply with 2 steps"),
        "{stdout}"
    );

    let (code, stdout, stderr) =
        run(&mut environments.command(&["history", "--state", &url, "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let migrated: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(migrated["applies"].as_array().unwrap(), &sqlite_history);

    // Idempotent: a second run copies nothing.
    let (code, stdout, stderr) = run(&mut environments.command(&[
        "state",
        "migrate",
        "--from",
        "sqlite://.tldw-ops/state.db",
        "--to",
        &url,
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["copied"]["applies"], 0);
    assert_eq!(report["copied"]["applies_already_present"], 1);
    assert_eq!(report["copied"]["salt_copied"], false);

    // With the salt and managed set copied, PostgreSQL state sees the environment converged.
    let (code, stdout, stderr) = run(&mut environments.command(&[
        "plan",
        "dev.yaml",
        "--state",
        &url,
        "--detailed-exitcode",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // A mistyped source is an error, not an empty history.
    let (code, _, stderr) =
        run(&mut environments.command(&["state", "migrate", "--from", "nowhere.db", "--to", &url]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no state store at nowhere.db"), "{stderr}");
    assert!(!environments.path().join("nowhere.db").exists());
}

#[test]
fn no_secret_value_reaches_the_postgres_tables() {
    let Some((cluster, url)) = postgres("cli_secrets") else {
        return;
    };
    let environments = Environments::new(Some(url.clone()));
    environments.add("dev", "", None);
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "dev.yaml", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let generated = env_value(&environments.env_text("dev"), "SINGLE_USER_API_KEY").unwrap();
    assert!(generated.starts_with("tldw_"));
    let database = url.rsplit('/').next().unwrap();
    let dump = std::process::Command::new(cluster.bin_dir().join("pg_dump"))
        .args(["--data-only", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", "postgres", "-d", database])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8(dump.stdout).unwrap();
    assert!(
        dump.contains("ensure_env_file"),
        "the dump holds the journal (sanity check of the scan)"
    );
    assert_no_secret(
        &[PG_PASSWORD, &generated, "CHANGE_ME_TO_SECURE_API_KEY"],
        &[("pg_dump --data-only", &dump)],
        &[],
    );
}
