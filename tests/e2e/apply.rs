//! `tldw-ops apply`: journal, checkpoints, rollback at every step, crash recovery, locks,
//! stale plans, health gates, history, and that secrets stay where they belong.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{Site, assert_no_secret, env_value, run};
use crate::plan::{FROM_ENV_SECRET, FROM_FILE_SECRET, command, yaml};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

/// A site whose service is the fake server: restart appends to its marker, the gates are its
/// /health and /internal/ready. Steps: 0 .env, 1 config.txt, 2 restart, 3 health gates.
fn served_site(fake: &FakeTldw) -> Site {
    let restart = crate::common::yaml_words(&fake.restart_command());
    let service = format!(
        "  service:\n    url: {}\n    restart: [{restart}]\n    timeout: 5s\n    health:\n      - {{ path: /health, expect_status: 200, expect_json: {{ status: ok }} }}\n      - {{ path: /internal/ready }}\n",
        fake.url()
    );
    let text = yaml("").replace(
        "target:\n  root: site\n",
        &format!("target:\n  root: site\n{service}"),
    );
    let site = Site::new();
    site.write_yaml("tldw-ops.yaml", &text);
    std::fs::write(
        site.path().join("pepper.txt"),
        format!("{FROM_FILE_SECRET}\n"),
    )
    .unwrap();
    site
}

fn changes(site: &Site) -> serde_json::Value {
    let (code, stdout, stderr) = run(&mut command(site, &["plan", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    plan["changes"].clone()
}

fn history(site: &Site) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = run(&mut command(site, &["history", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    value["applies"].as_array().unwrap().clone()
}

fn converged(site: &Site) {
    let (code, stdout, stderr) = run(&mut command(site, &["plan", "--detailed-exitcode"]));
    assert_eq!(
        code, 0,
        "after a successful apply the plan is empty:\n{stdout}\n{stderr}"
    );
}

#[test]
fn a_successful_apply_restarts_checks_health_and_converges() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("health gates passed"), "{stderr}");
    assert_eq!(fake.restart_count(), 1);
    converged(&site);
    let text = site.env_text();
    assert_eq!(env_value(&text, "LOG_LEVEL").as_deref(), Some("info"));
    assert_eq!(
        env_value(&text, "POSTGRES_PASSWORD").as_deref(),
        Some(FROM_ENV_SECRET)
    );
    assert!(
        env_value(&text, "SINGLE_USER_API_KEY")
            .unwrap()
            .starts_with("tldw_")
    );
    let applies = history(&site);
    assert_eq!(applies.len(), 1);
    assert_eq!(applies[0]["outcome"], "succeeded");
    assert_eq!(applies[0]["health_passed"], true);
    assert_eq!(applies[0]["changes"], 8);
    // A second apply has nothing to do and does not restart.
    let (code, _, _) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0);
    assert_eq!(fake.restart_count(), 1);
}

#[test]
fn a_fault_at_every_step_rolls_back_to_identical_bytes() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    for fault in ["fail", "fail-after"] {
        for step in 0..4 {
            let site = served_site(&fake);
            let env_before = site.env_text();
            let config_before = site.config_text();
            let planned = changes(&site);
            let spec = format!("{fault}:{step}");
            let (code, _, stderr) =
                run(command(&site, &["apply", "--auto-approve"]).env("TLDW_OPS_FAULT", &spec));
            assert_eq!(code, 6, "{spec}: {stderr}");
            assert!(
                stderr.contains(&format!("failed at step {}", step + 1)),
                "{spec}: {stderr}"
            );
            assert_eq!(
                site.env_text(),
                env_before,
                "{spec}: .env restored byte for byte"
            );
            assert_eq!(
                site.config_text(),
                config_before,
                "{spec}: config.txt restored byte for byte"
            );
            let applies = history(&site);
            assert_eq!(
                applies[0]["outcome"], "rolled_back",
                "{spec}: the journal is closed"
            );
            assert_eq!(
                changes(&site),
                planned,
                "{spec}: a new plan equals the original"
            );
        }
    }
}

#[test]
fn a_failed_undo_exits_7_with_instructions_and_an_honest_journal() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let (code, _, stderr) =
        run(command(&site, &["apply", "--auto-approve"])
            .env("TLDW_OPS_FAULT", "fail:2,fail-undo:0"));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("could not be undone"), "{stderr}");
    assert!(stderr.contains("tldw-ops show"), "{stderr}");
    let applies = history(&site);
    assert_eq!(applies[0]["outcome"], "failed");
    let id = applies[0]["id"].as_str().unwrap().to_string();
    let (_, stdout, _) = run(&mut command(&site, &["show", &id, "--format", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let statuses: Vec<&str> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["undo_failed", "undone", "failed"]);
}

#[test]
fn a_health_gate_that_fails_after_restart_rolls_back_and_the_server_is_healthy_again() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.unhealthy_after_restarts(1);
    fake.healthy_again_after_restarts(2);
    let site = served_site(&fake);
    let env_before = site.env_text();
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("health gates did not pass"), "{stderr}");
    assert!(stderr.contains("final health: healthy"), "{stderr}");
    // The restart and health wait of the rollback are said as they start, after the undo lines,
    // not hidden behind the last "undo step" line.
    let undone = stderr.rfind("undo step ").expect("undo lines");
    let restarting = stderr
        .find("restarting tldw_server on the restored files, then waiting for its health")
        .unwrap_or_else(|| panic!("the rollback's restart is announced: {stderr}"));
    assert!(undone < restarting, "{stderr}");
    assert_eq!(fake.restart_count(), 2, "restarted again after the undo");
    assert_eq!(site.env_text(), env_before);
}

/// Starts `apply` paused at a step and kills it with SIGKILL there.
fn crash_at(site: &Site, step: u32, point: &str) {
    crate::common::crash_at(command(site, &["apply", "--auto-approve"]), step, point);
}

#[test]
fn after_a_kill_at_any_step_resume_finishes_the_apply() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    for step in 0..4 {
        for point in ["before", "after"] {
            let site = served_site(&fake);
            crash_at(&site, step, point);
            let (code, _, stderr) = run(&mut command(&site, &["plan"]));
            assert_eq!(code, 7, "{step}:{point}: {stderr}");
            assert!(
                stderr.contains("did not finish")
                    && stderr.contains("--resume")
                    && stderr.contains("rollback --unfinished"),
                "{stderr}"
            );
            let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
            assert_eq!(code, 7, "{step}:{point}: {stderr}");
            let (code, _, stderr) = run(&mut command(&site, &["apply", "--resume"]));
            assert_eq!(code, 0, "{step}:{point}: {stderr}");
            converged(&site);
            let applies = history(&site);
            assert_eq!(applies.len(), 1, "{step}:{point}");
            assert_eq!(applies[0]["outcome"], "succeeded", "{step}:{point}");
        }
    }
}

#[test]
fn after_a_kill_at_any_step_rollback_unfinished_restores_the_original_bytes() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    for step in 0..4 {
        for point in ["before", "after"] {
            let site = served_site(&fake);
            let env_before = site.env_text();
            let config_before = site.config_text();
            let planned = changes(&site);
            crash_at(&site, step, point);
            let (code, _, stderr) = run(&mut command(
                &site,
                &["rollback", "--unfinished", "--auto-approve"],
            ));
            assert_eq!(code, 0, "{step}:{point}: {stderr}");
            assert_eq!(site.env_text(), env_before, "{step}:{point}");
            assert_eq!(site.config_text(), config_before, "{step}:{point}");
            let applies = history(&site);
            assert_eq!(applies[0]["outcome"], "abandoned", "{step}:{point}");
            assert_eq!(changes(&site), planned, "{step}:{point}");
        }
    }
}

#[test]
fn a_kill_while_the_restart_command_blocks_is_resumed() {
    let site = Site::new();
    let marker = site.path().join("release");
    let text = yaml("").replace(
        "target:\n  root: site\n",
        &format!(
            "target:\n  root: site\n  service:\n    restart: [sh, -c, \"echo restarting >&2; while [ ! -f {} ]; do sleep 0.05; done\"]\n    timeout: 20s\n",
            marker.display()
        ),
    );
    site.write_yaml("tldw-ops.yaml", &text);
    std::fs::write(site.path().join("pepper.txt"), FROM_FILE_SECRET).unwrap();
    let mut child = command(&site, &["apply", "--auto-approve"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("[2/3] ensure_config_file") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(&marker, "go").unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--resume"]));
    assert_eq!(code, 0, "{stderr}");
    converged(&site);
}

#[test]
fn a_second_concurrent_apply_exits_5_naming_the_holder() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let mut first = command(&site, &["apply", "--auto-approve"])
        .env("TLDW_OPS_FAULT", "pause:0:before")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
    }
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    assert!(stderr.contains("still running"), "{stderr}");
    let (code, _, _) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 5, "plan also sees the running apply");
    let (code, stdout, _) = run(&mut command(&site, &["state", "list"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("pid {}", first.id())),
        "state list names the holder: {stdout}"
    );
    let (code, _, stderr) = run(&mut command(&site, &["state", "unlock"]));
    assert_eq!(code, 1, "unlock needs --force");
    assert!(stderr.contains("--force"), "{stderr}");
    let (code, _, stderr) = run(&mut command(&site, &["state", "unlock", "--force"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("cleared the lock of dev held by apply"),
        "{stderr}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The killed apply left its journal open: everything refuses until it is settled.
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 7, "{stderr}");
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--resume"]));
    assert_eq!(code, 0, "{stderr}");
    converged(&site);
}

#[test]
fn concurrent_applies_never_interleave_their_writes() {
    let site = crate::plan::site("");
    let children: Vec<Child> = (0..4)
        .map(|_| {
            command(&site, &["apply", "--auto-approve"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    // One wins; the others find the lock taken (5) or, when they got it after the winner,
    // that their plan went stale (4) — never a second write of freshly generated secrets.
    assert!(
        codes.iter().all(|code| [0, 4, 5].contains(code)),
        "{codes:?}"
    );
    assert!(codes.contains(&0), "{codes:?}");
    converged(&site);
    let text = site.env_text();
    assert_eq!(text.matches("LOG_LEVEL=").count(), 1);
    assert_eq!(text.matches("SINGLE_USER_API_KEY=").count(), 1);
}

#[test]
fn a_saved_plan_is_refused_when_a_touched_address_moved_and_applied_when_others_did() {
    let site = crate::plan::site("");
    let (code, _, _) = run(&mut command(&site, &["plan", "--out", "plan.json"]));
    assert_eq!(code, 0);
    let original = site.env_text();
    // An untouched key changes: the plan still applies.
    site.set_env_text(
        &original.replace("OPENAI_API_KEY=\n", "OPENAI_API_KEY=\n# edited by hand\n"),
    );
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "plan.json", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        site.env_text().contains("# edited by hand"),
        "the unrelated edit is kept"
    );
    converged(&site);

    let site = crate::plan::site("");
    run(&mut command(&site, &["plan", "--out", "plan.json"]));
    site.set_env_text(&site.env_text().replace(
        "ALLOWED_ORIGINS=http://localhost:3000,",
        "ALLOWED_ORIGINS=http://localhost:3001,",
    ));
    let before = site.env_text();
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "plan.json", "--auto-approve"],
    ));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("env.ALLOWED_ORIGINS: then fp:"), "{stderr}");
    assert!(stderr.contains("A fresh plan follows"), "{stderr}");
    assert!(
        stderr.contains("tldw-ops plan for environment dev"),
        "{stderr}"
    );
    assert_eq!(site.env_text(), before, "nothing applied");
}

#[test]
fn a_saved_plan_is_refused_when_the_yaml_changed() {
    let site = crate::plan::site("");
    run(&mut command(&site, &["plan", "--out", "plan.json"]));
    site.write_yaml(
        "tldw-ops.yaml",
        &yaml("").replace("LOG_LEVEL: info", "LOG_LEVEL: warning"),
    );
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "plan.json", "--auto-approve"],
    ));
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("the desired state now resolves differently"),
        "{stderr}"
    );
}

#[test]
fn a_hand_edited_saved_plan_is_refused_before_anything_runs() {
    let site = crate::plan::site("");
    run(&mut command(&site, &["plan", "--out", "plan.json"]));
    let path = site.path().join("plan.json");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        saved.contains("\"info\""),
        "the plan sets LOG_LEVEL to info"
    );
    let before = site.env_text();
    // The value shows twice: as the change's `after` and as the step's operation.
    let last = saved.rfind("\"info\"").unwrap();
    assert_ne!(last, saved.find("\"info\"").unwrap());
    let steps_edited = format!("{}\"debug\"{}", &saved[..last], &saved[last + 6..]);
    for (what, edited) in [
        ("changes", saved.replacen("\"info\"", "\"debug\"", 1)),
        ("steps", steps_edited),
        (
            "creation time",
            saved.replacen("\"created_at\": \"", "\"created_at\": \"not a time ", 1),
        ),
    ] {
        assert_ne!(edited, saved, "{what}: the edit took");
        std::fs::write(&path, &edited).unwrap();
        let (code, _, stderr) = run(&mut command(
            &site,
            &["apply", "plan.json", "--auto-approve"],
        ));
        assert_eq!(code, 4, "{what}: {stderr}");
        assert!(stderr.contains(&format!("saved plan's {what}")), "{stderr}");
        assert!(!stderr.contains("step 0"), "nothing started: {stderr}");
        assert_eq!(site.env_text(), before, "nothing applied");
    }
    std::fs::write(&path, &saved).unwrap();
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "plan.json", "--auto-approve"],
    ));
    assert_eq!(code, 0, "the unedited plan applies: {stderr}");
}

#[test]
fn without_a_terminal_apply_refuses_unless_auto_approved() {
    let site = crate::plan::site("");
    let before = site.env_text();
    let (code, _, stderr) = run(&mut command(&site, &["apply"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("--auto-approve"), "{stderr}");
    assert_eq!(site.env_text(), before);
}

#[test]
fn rollback_of_an_earlier_apply_restores_its_before_state_as_a_new_apply() {
    let site = crate::plan::site("");
    let env_before = site.env_text();
    let config_before = site.config_text();
    assert_eq!(run(&mut command(&site, &["apply", "--auto-approve"])).0, 0);
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["rollback", "--last", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("env.LOG_LEVEL"), "{stdout}");
    assert_eq!(site.env_text(), env_before);
    assert_eq!(site.config_text(), config_before);
    let applies = history(&site);
    assert_eq!(applies[0]["kind"], "rollback");
    assert_eq!(applies[0]["outcome"], "succeeded");
}

#[test]
fn no_secret_reaches_outputs_logs_plans_or_the_state_database() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let mut texts: Vec<(String, String)> = Vec::new();
    for args in [
        vec!["plan", "--out", "plan.json"],
        vec!["plan", "--format", "markdown", "--diff"],
        vec!["-vvv", "apply", "--auto-approve"],
        vec!["-vvv", "--log-format", "json", "plan"],
        vec!["history"],
        vec!["history", "--format", "json"],
        vec!["state", "list", "--format", "json"],
    ] {
        let (_, stdout, stderr) = run(&mut command(&site, &args));
        texts.push((format!("{args:?} stdout"), stdout));
        texts.push((format!("{args:?} stderr"), stderr));
    }
    let id = history(&site)[0]["id"].as_str().unwrap().to_string();
    for format in ["text", "json"] {
        let (_, stdout, stderr) = run(&mut command(&site, &["show", &id, "--format", format]));
        texts.push((format!("show {format}"), stdout));
        texts.push((format!("show {format} stderr"), stderr));
    }
    let env = site.env_text();
    let generated = env_value(&env, "SINGLE_USER_API_KEY").unwrap();
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    let files: Vec<_> = site
        .files_that_must_not_hold_secrets()
        .into_iter()
        .filter(|path| !path.ends_with("pepper.txt"))
        .collect();
    assert!(
        files.iter().any(|path| path.ends_with("state.db")),
        "the state database is scanned"
    );
    assert_no_secret(
        &[
            FROM_ENV_SECRET,
            FROM_FILE_SECRET,
            &generated,
            "CHANGE_ME_TO_SECURE_API_KEY",
        ],
        &refs,
        &files,
    );
    // The checkpoints that do hold secrets are private.
    use std::os::unix::fs::PermissionsExt;
    let checkpoints = site.path().join(".tldw-ops/checkpoints");
    for entry in std::fs::read_dir(&checkpoints).unwrap().flatten() {
        assert_eq!(
            std::fs::metadata(entry.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
            assert_eq!(
                std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

/// A 100 KiB tmpfs, unmounted when dropped. `None` when this process may not mount.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=100k", "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallDisk { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

#[test]
fn a_full_disk_leaves_the_file_unchanged_and_says_so() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!(
            "note: cannot mount a small tmpfs here (not root?); the full-disk test did not run"
        );
        return;
    };
    let config_dir = disk.path.join("site/tldw_Server_API/Config_Files");
    std::fs::create_dir_all(&config_dir).unwrap();
    let shipped = std::fs::read(crate::common::fixture("tldw_server/config.txt")).unwrap();
    std::fs::write(config_dir.join("config.txt"), &shipped).unwrap();
    std::fs::write(config_dir.join(".env"), "A=1\n").unwrap();
    std::fs::write(
        disk.path.join("tldw-ops.yaml"),
        "apiVersion: tldw-ops/v1\nenvironment: dev\ntarget:\n  root: site\nconfig:\n  Setup: { setup_completed: true }\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(crate::common::tool(&disk.path).args([
        "--state",
        &state.path().join("state.db").display().to_string(),
        "apply",
        "--auto-approve",
    ]));
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("the original file is unchanged"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(config_dir.join("config.txt")).unwrap(),
        shipped
    );
    let leftovers: Vec<_> = std::fs::read_dir(&config_dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no temporary file is left: {leftovers:?}"
    );
}

#[test]
fn two_environments_that_write_the_same_files_exclude_each_other() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    // A second environment, with its own state store, over the same deployment.
    let other = std::fs::read_to_string(site.path().join("tldw-ops.yaml"))
        .unwrap()
        .replace("environment: dev", "environment: staging");
    std::fs::create_dir_all(site.path().join("other")).unwrap();
    std::fs::write(
        site.path().join("other/staging.yaml"),
        other.replace("root: site", "root: ../site"),
    )
    .unwrap();
    std::fs::write(
        site.path().join("other/pepper.txt"),
        format!("{FROM_FILE_SECRET}\n"),
    )
    .unwrap();
    let mut first = command(&site, &["apply", "--auto-approve"])
        .env("TLDW_OPS_FAULT", "pause:0:before")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
    }
    let env_before = site.env_text();
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "other/staging.yaml", "--auto-approve"],
    ));
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("another tldw-ops apply is writing files in"),
        "{stderr}"
    );
    assert_eq!(
        site.env_text(),
        env_before,
        "the second apply wrote nothing"
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn temporary_files_an_interrupted_apply_left_are_removed_by_the_next_one() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let directory = site.path().join("site/tldw_Server_API/Config_Files");
    let leftover = directory.join("..env.tldw-ops.4000000000.tmp");
    std::fs::write(&leftover, "SECRET=half-written\n").unwrap();
    let unrelated = directory.join("notes.tmp");
    std::fs::write(&unrelated, "keep me").unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(!leftover.exists(), "the leftover temporary file is gone");
    assert!(unrelated.exists(), "files that are not tldw-ops's stay");
}

#[test]
fn a_symlinked_env_file_is_written_through_and_stays_a_link() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let env = site.path().join(crate::common::ENV_PATH);
    let real = site.path().join("site/real.env");
    std::fs::rename(&env, &real).unwrap();
    std::os::unix::fs::symlink(&real, &env).unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let link = std::fs::symlink_metadata(&env).unwrap();
    assert!(link.file_type().is_symlink(), "the .env is still a link");
    let written = std::fs::read_to_string(&real).unwrap();
    assert!(written.contains("LOG_LEVEL=info"), "{written}");
    converged(&site);
}

#[test]
fn state_list_calls_a_killed_apply_interrupted_and_says_how_to_go_on() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    crash_at(&site, 1, "before");
    let (code, stdout, stderr) = run(&mut command(&site, &["state", "list"]));
    assert_eq!(code, 0, "{stderr}");
    let row = stdout
        .lines()
        .find(|line| line.starts_with("dev "))
        .unwrap_or_else(|| panic!("no row for dev: {stdout}"));
    assert!(
        row.contains("interrupted (apply --resume or rollback --unfinished)"),
        "{stdout}"
    );
    assert!(!row.contains(" running "), "{stdout}");
    // The header's columns line up with the row's.
    let header = stdout.lines().next().unwrap();
    let apply_id = &history(&site)[0]["id"];
    assert_eq!(
        header.find("LAST APPLY"),
        row.find(apply_id.as_str().unwrap()),
        "{stdout}"
    );
}

#[test]
fn history_text_shows_the_plan_hash_and_durations_as_people_say_them() {
    let site = crate::plan::site("");
    assert_eq!(run(&mut command(&site, &["apply", "--auto-approve"])).0, 0);
    let record = &history(&site)[0];
    let hash = record["plan_hash"].as_str().unwrap();
    let (code, stdout, stderr) = run(&mut command(&site, &["history"]));
    assert_eq!(code, 0, "{stderr}");
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.contains(" PLAN "), "{header}");
    let row = lines.next().unwrap();
    assert!(row.contains(&hash[..12]), "{row}");
    assert_eq!(
        header.find(" PLAN ").map(|at| at + 1),
        row.find(&hash[..12]),
        "the hash sits under its heading: {stdout}"
    );
    assert!(
        !stdout.contains(&format!("{hash} ")),
        "the table shows a short hash"
    );

    let id = record["id"].as_str().unwrap();
    let (code, shown, stderr) = run(&mut command(&site, &["show", id]));
    assert_eq!(code, 0, "{stderr}");
    assert!(shown.contains(&format!("  plan     {hash}\n")), "{shown}");
    for line in shown.lines().filter(|line| line.contains("] ")) {
        let took = line.rsplit("] ").next().unwrap();
        assert!(
            took.ends_with(" ms") || took.ends_with(" s") || took.contains('m'),
            "a step duration reads as elapsed_text writes it: {line}"
        );
    }
}

/// The state database and its WAL companions, as a no-op command must leave them.
/// A file's name, and its bytes and mtime when it exists.
type FileState = (String, Option<(Vec<u8>, std::time::SystemTime)>);

fn state_files(site: &Site) -> Vec<FileState> {
    ["state.db", "state.db-wal", "state.db-shm"]
        .iter()
        .map(|name| {
            let path = site.path().join(".tldw-ops").join(name);
            let found = std::fs::read(&path)
                .ok()
                .map(|bytes| (bytes, std::fs::metadata(&path).unwrap().modified().unwrap()));
            (name.to_string(), found)
        })
        .collect()
}

#[test]
fn a_no_op_plan_only_reads_the_state_database() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let site = served_site(&fake);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    // Apply closes the store cleanly: the journal is checkpointed and no -wal is left.
    assert_eq!(state_files(&site)[1].1, None, "apply left a -wal behind");
    read_only_commands_leave_the_state_as_it_was(&site);
    checkpoint_and_close(&site);
    assert_eq!(
        state_files(&site)[1].1,
        None,
        "the -wal is gone after a clean close"
    );
    read_only_commands_leave_the_state_as_it_was(&site);
}

/// Copies the WAL into the database and closes it, as the last process to close it does.
fn checkpoint_and_close(site: &Site) {
    let path = site.path().join(".tldw-ops/state.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
}

fn read_only_commands_leave_the_state_as_it_was(site: &Site) {
    let before = state_files(site);
    assert!(before[0].1.is_some(), "apply left a state database");
    // A second apart, so a rewrite within the filesystem's mtime granularity would show.
    std::thread::sleep(Duration::from_millis(1100));
    for args in [
        &["plan", "--detailed-exitcode"][..],
        &["drift"][..],
        &["history", "--format", "json"][..],
        &["state", "list"][..],
        &["secrets", "status"][..],
    ] {
        let (code, stdout, stderr) = run(&mut command(site, args));
        assert_eq!(code, 0, "{args:?}:\n{stdout}\n{stderr}");
        let after = state_files(site);
        // The -shm is SQLite's shared-memory index, not data: a reader of a WAL database
        // records its read mark there. It must not appear or vanish, but may be rewritten.
        let comparable = |files: &[FileState]| {
            files
                .iter()
                .map(|(name, found)| {
                    if name.ends_with("-shm") {
                        (
                            name.clone(),
                            found.as_ref().map(|_| (Vec::new(), std::time::UNIX_EPOCH)),
                        )
                    } else {
                        (name.clone(), found.clone())
                    }
                })
                .collect::<Vec<_>>()
        };
        let summary = |files: &[FileState]| {
            files
                .iter()
                .map(|(name, found)| {
                    format!("{name}: {:?}", found.as_ref().map(|(b, t)| (b.len(), t)))
                })
                .collect::<Vec<_>>()
        };
        assert!(
            comparable(&after) == comparable(&before),
            "{args:?} changed the state database or left -wal/-shm files behind: {:?} -> {:?}",
            summary(&before),
            summary(&after)
        );
    }
}
