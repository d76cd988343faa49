//! Plan and apply of what lives in the running server: per-user quotas and retention overrides
//! through the admin API, with rollback, staleness and crash recovery like the file steps.

use std::time::Duration;

use crate::common::{Site, assert_no_secret, run};
use crate::support::fake_tldw::{
    FakeTldw, FakeTldwConfig, quota_path, retention_path, retention_preview_path,
};

const TOKEN: &str = "admin-token-that-must-never-be-printed-0123";

fn fake(users: usize) -> FakeTldw {
    FakeTldw::start(FakeTldwConfig {
        admin_token: TOKEN.to_string(),
        users,
        extra_users: vec![
            ("alice".to_string(), Some(5120)),
            ("bob".to_string(), Some(100)),
        ],
        ..FakeTldwConfig::default()
    })
}

/// A site whose API is the fake. `extra` is appended to the YAML.
fn api_site(fake: &FakeTldw, extra: &str) -> Site {
    let site = Site::new();
    let restart = crate::common::yaml_words(&fake.restart_command());
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
  api:
    url: {url}
    token: {{ from_env: TEST_ADMIN_TOKEN }}
  service:
    restart: [{restart}]
    timeout: 5s
    health:
      - {{ path: /health, expect_json: {{ status: ok }} }}
env:
  LOG_LEVEL: info
quotas:
  enforce: true
  users:
    alice: 20480
    bob: null
retention:
  audit_logs: 365d
  sessions: 30d
{extra}"#,
            url = fake.url()
        ),
    );
    site
}

fn command(site: &Site, args: &[&str]) -> std::process::Command {
    let mut command = site.command();
    command.args(args).env("TEST_ADMIN_TOKEN", TOKEN);
    command
}

fn plan_json(site: &Site) -> serde_json::Value {
    let (code, stdout, stderr) = run(&mut command(site, &["plan", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn addresses(plan: &serde_json::Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn quotas_and_retention_plan_apply_and_converge() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    let plan = plan_json(&site);
    let api_changes: Vec<String> = addresses(&plan)
        .into_iter()
        .filter(|a| a.starts_with("quota.") || a.starts_with("retention."))
        .collect();
    assert_eq!(
        api_changes,
        vec![
            "quota.user.alice",
            "quota.user.bob",
            "retention.audit_logs",
            "retention.sessions"
        ]
    );
    let bob = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "quota.user.bob")
        .unwrap();
    assert_eq!(bob["before"], "100");
    assert_eq!(bob["after"], "unlimited");
    assert_eq!(bob["source"]["line"], 19);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fake.quota("alice"), Some(Some(20480)));
    assert_eq!(fake.quota("bob"), Some(None));
    assert_eq!(fake.retention_days("audit_logs"), Some(365));
    assert_eq!(fake.retention_days("sessions"), Some(30));
    assert!(
        site.env_text().contains("AUDIT_LOG_RETENTION_DAYS=365"),
        "the env default is written too"
    );
    let (code, stdout, _) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_failure_after_some_quota_changes_rolls_them_back() {
    let fake = fake(40);
    let mut users = String::from("quotas:\n  users:\n");
    for index in 1..=40 {
        users.push_str(&format!("    user{index:04}: {}\n", 1000 + index));
    }
    let site = api_site(&fake, "");
    let yaml = std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap();
    let yaml = yaml.replace(
        "quotas:\n  enforce: true\n  users:\n    alice: 20480\n    bob: null\n",
        &users,
    );
    site.write_yaml("tldw-ops.yaml", &yaml);
    let env_before = site.env_text();
    // The last user's PUT fails on every attempt; the other 39 succeed first.
    fake.fail_next("PUT", "/api/v1/admin/storage-quotas/users/40", 500, 4);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("1 of 40 quota changes failed (39 were made and will be undone)"),
        "{stderr}"
    );
    for index in 1..=40 {
        assert_eq!(
            fake.quota(&format!("user{index:04}")),
            Some(Some(5120)),
            "user{index:04} rolled back"
        );
    }
    assert_eq!(site.env_text(), env_before);
    assert_eq!(
        fake.retention_days("audit_logs"),
        Some(180),
        "retention rolled back too"
    );
}

#[test]
fn a_failed_health_gate_rolls_back_quotas_and_retention_too() {
    let fake = fake(3);
    fake.unhealthy_after_restarts(1);
    fake.healthy_again_after_restarts(2);
    let site = api_site(&fake, "");
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    assert_eq!(fake.quota("alice"), Some(Some(5120)));
    assert_eq!(fake.quota("bob"), Some(Some(100)));
    assert_eq!(fake.retention_days("audit_logs"), Some(180));
    assert_eq!(fake.retention_days("sessions"), Some(90));
}

#[test]
fn a_retention_signature_that_expires_before_the_put_is_previewed_again() {
    let fake = FakeTldw::start(FakeTldwConfig {
        admin_token: TOKEN.to_string(),
        extra_users: vec![
            ("alice".to_string(), Some(5120)),
            ("bob".to_string(), Some(100)),
        ],
        signature_ttl: Duration::from_millis(150),
        ..FakeTldwConfig::default()
    });
    // The first PUT arrives after its signature expired; the one after the new preview does not.
    let path = "/api/v1/admin/retention-policies/audit_logs";
    fake.set_delay("PUT", path, Duration::from_millis(500));
    let site = api_site(&fake, "");
    let (code, _, stderr) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while fake.request_count("PUT", path) == 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            fake.set_delay("PUT", path, Duration::ZERO);
        });
        run(&mut command(&site, &["apply", "--auto-approve"]))
    });
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fake.retention_days("audit_logs"), Some(365));
    assert_eq!(
        fake.request_count(
            "POST",
            "/api/v1/admin/retention-policies/audit_logs/preview"
        ),
        2
    );
    assert_eq!(fake.request_count("PUT", path), 2);
}

#[test]
fn a_saved_plan_is_stale_when_the_server_changed_a_touched_value() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    let (code, _, _) = run(&mut command(&site, &["plan", "--out", "plan.json"]));
    assert_eq!(code, 0);
    fake.set_retention_days("audit_logs", 200);
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "plan.json", "--auto-approve"],
    ));
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("retention.audit_logs: then fp:"),
        "{stderr}"
    );
    assert_eq!(fake.quota("alice"), Some(Some(5120)), "nothing applied");
}

#[test]
fn an_unknown_username_is_a_plan_error_at_its_line() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    let yaml = std::fs::read_to_string(site.path().join("tldw-ops.yaml"))
        .unwrap()
        .replace("    bob: null\n", "    bob: null\n    carol: 10\n");
    site.write_yaml("tldw-ops.yaml", &yaml);
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("user `carol` does not exist on the server"),
        "{stderr}"
    );
    assert!(stderr.contains("tldw-ops.yaml:20:12"), "{stderr}");
}

#[test]
fn ten_thousand_users_paginate_plan_and_apply() {
    let fake = fake(10_000);
    let mut users = String::from("quotas:\n  users:\n");
    for index in (1..=10_000).step_by(7) {
        users.push_str(&format!("    user{index:04}: {}\n", index % 3000));
    }
    let site = api_site(&fake, "");
    let yaml = std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap();
    let yaml = yaml.replace(
        "quotas:\n  enforce: true\n  users:\n    alice: 20480\n    bob: null\n",
        &users,
    );
    site.write_yaml("tldw-ops.yaml", &yaml);
    let plan = plan_json(&site);
    let quota_changes = addresses(&plan)
        .iter()
        .filter(|a| a.starts_with("quota.user."))
        .count();
    assert_eq!(quota_changes, 1429);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fake.quota("user9997"), Some(Some(9997 % 3000)));
    let (code, _, _) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 0);
}

#[test]
fn a_crash_inside_the_quota_step_is_rolled_back_or_resumed() {
    for resolution in ["rollback", "resume"] {
        let fake = fake(3);
        let site = api_site(&fake, "");
        // Steps: 0 .env, 1 retention audit_logs, 2 retention sessions, 3 quotas, 4 restart, 5 health.
        let mut child = command(&site, &["apply", "--auto-approve"])
            .env("TLDW_OPS_FAULT", "pause:3:after")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("paused") {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            fake.quota("alice"),
            Some(Some(20480)),
            "the quota step acted before the kill"
        );
        if resolution == "rollback" {
            let (code, _, stderr) = run(&mut command(
                &site,
                &["rollback", "--unfinished", "--auto-approve"],
            ));
            assert_eq!(code, 0, "{stderr}");
            assert_eq!(fake.quota("alice"), Some(Some(5120)));
            assert_eq!(fake.quota("bob"), Some(Some(100)));
            assert_eq!(fake.retention_days("audit_logs"), Some(180));
        } else {
            let (code, _, stderr) = run(&mut command(&site, &["apply", "--resume"]));
            assert_eq!(code, 0, "{stderr}");
            let (code, _, _) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
            assert_eq!(code, 0);
        }
    }
}

#[test]
fn the_effective_registration_settings_are_compared_with_the_desired_ones() {
    let fake = fake(3);
    let site = api_site(
        &fake,
        "registration: { enabled: true, require_code: true }\n",
    );
    let (_, _, stderr) = run(&mut command(&site, &["plan"]));
    assert!(
        stderr.contains("the server reports enable_registration = false"),
        "{stderr}"
    );
    assert!(
        stderr.contains("takes effect after the restart"),
        "{stderr}"
    );
}

#[test]
fn the_admin_token_never_reaches_any_output_or_the_state() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    let mut texts = Vec::new();
    for args in [
        vec!["plan", "--out", "plan.json"],
        vec!["-vvv", "apply", "--auto-approve"],
        vec!["history", "--format", "json"],
        vec!["plan", "--format", "markdown"],
    ] {
        let (_, stdout, stderr) = run(&mut command(&site, &args));
        texts.push(stdout);
        texts.push(stderr);
    }
    // A refused token is named by URL, never by value.
    let (code, _, stderr) = run(site
        .command()
        .args(["plan"])
        .env("TEST_ADMIN_TOKEN", "wrong-token-also-secret-987654"));
    assert_eq!(code, 1);
    assert!(stderr.contains("the token was refused"), "{stderr}");
    assert!(!stderr.contains("wrong-token-also-secret-987654"));
    let refs: Vec<(&str, &str)> = texts.iter().map(|text| ("output", text.as_str())).collect();
    assert_no_secret(&[TOKEN], &refs, &site.files_that_must_not_hold_secrets());
}

#[test]
fn rolling_back_an_earlier_apply_restores_its_quotas_and_retention() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    let env_before = site.env_text();
    assert_eq!(run(&mut command(&site, &["apply", "--auto-approve"])).0, 0);
    assert_eq!(fake.quota("alice"), Some(Some(20480)));
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["rollback", "--last", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("quota.user.alice: \"20480\" -> \"5120\""),
        "{stdout}"
    );
    assert_eq!(fake.quota("alice"), Some(Some(5120)));
    assert_eq!(fake.quota("bob"), Some(Some(100)));
    assert_eq!(fake.retention_days("audit_logs"), Some(180));
    assert_eq!(site.env_text(), env_before);
}

#[test]
fn a_retention_value_moved_between_plan_and_put_is_stale_naming_its_address() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    let env_before = site.env_text();
    // Someone sets `sessions` to 45 while its PUT is on the way: the signature binds 90, so the
    // server refuses it as invalid, and the fresh preview from the planned 90 is stale.
    let path = "/api/v1/admin/retention-policies/sessions";
    fake.set_delay("PUT", path, Duration::from_millis(400));
    let (code, _, stderr) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while fake.request_count("PUT", path) == 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            fake.set_retention_days("sessions", 45);
            fake.set_delay("PUT", path, Duration::ZERO);
        });
        run(&mut command(&site, &["apply", "--auto-approve"]))
    });
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("retention.sessions: retention policy `sessions` moved on the server"),
        "{stderr}"
    );
    assert!(stderr.contains("the server now has 45"), "{stderr}");
    // Everything this apply changed is back; the meddler's value is left alone.
    assert_eq!(fake.retention_days("audit_logs"), Some(180));
    assert_eq!(fake.retention_days("sessions"), Some(45));
    assert_eq!(fake.quota("alice"), Some(Some(5120)));
    assert_eq!(fake.quota("bob"), Some(Some(100)));
    assert_eq!(site.env_text(), env_before);
}

#[test]
fn a_policy_the_server_reports_as_null_plans_from_its_default() {
    let fake = FakeTldw::start(FakeTldwConfig {
        admin_token: TOKEN.to_string(),
        extra_users: vec![
            ("alice".to_string(), Some(5120)),
            ("bob".to_string(), Some(100)),
        ],
        retention_null: vec!["audit_logs".to_string(), "sessions".to_string()],
        ..FakeTldwConfig::default()
    });
    let site = api_site(&fake, "");
    let yaml = std::fs::read_to_string(site.path().join("tldw-ops.yaml"))
        .unwrap()
        .replace("audit_logs: 365d", "audit_logs: 180d");
    site.write_yaml("tldw-ops.yaml", &yaml);
    let plan = plan_json(&site);
    let changes = addresses(&plan);
    assert!(
        !changes.contains(&"retention.audit_logs".to_string()),
        "null is audit_logs' default, 180 days: {changes:?}"
    );
    let sessions = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "retention.sessions")
        .unwrap();
    assert_eq!(sessions["before"], "90", "{sessions}");
    assert_eq!(sessions["after"], "30");
}

#[test]
fn a_persistent_failure_at_any_api_sub_operation_rolls_back_to_the_original_state() {
    let probe = fake(3);
    let alice = probe.user_id("alice").unwrap();
    let bob = probe.user_id("bob").unwrap();
    drop(probe);
    let cases = [
        ("PUT", quota_path(alice)),
        ("PUT", quota_path(bob)),
        ("POST", retention_preview_path("audit_logs")),
        ("PUT", retention_path("audit_logs")),
        ("POST", retention_preview_path("sessions")),
        ("PUT", retention_path("sessions")),
    ];
    for (method, path) in cases {
        let fake = fake(3);
        assert_eq!(fake.user_id("alice"), Some(alice));
        let site = api_site(&fake, "");
        let env_before = site.env_text();
        fake.fail_persistently(method, &path, 503);
        let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
        assert_eq!(code, 6, "{method} {path}: {stderr}");
        assert!(!stderr.contains("undo failed"), "{method} {path}: {stderr}");
        assert!(
            stderr.contains("unchanged (never took effect, or back already)"),
            "the undo reports the sub-operation it skipped: {stderr}"
        );
        assert_eq!(fake.quota("alice"), Some(Some(5120)), "{method} {path}");
        assert_eq!(fake.quota("bob"), Some(Some(100)), "{method} {path}");
        assert_eq!(
            fake.retention_days("audit_logs"),
            Some(180),
            "{method} {path}"
        );
        assert_eq!(fake.retention_days("sessions"), Some(90), "{method} {path}");
        assert_eq!(site.env_text(), env_before, "{method} {path}");
        // The undo never wrote the sub-operation that never took effect again.
        let writes = fake
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count();
        assert_eq!(
            writes, 4,
            "{method} {path}: one attempt and three retries, no undo"
        );
        fake.clear_persistent_fault(method, &path);
        let (code, _, stderr) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
        assert_eq!(code, 2, "the whole change is still to do: {stderr}");
    }
}

#[test]
fn an_undo_leaves_a_value_someone_else_changed_since_and_says_so() {
    let fake = fake(3);
    fake.unhealthy_after_restarts(1);
    fake.healthy_again_after_restarts(2);
    let site = api_site(&fake, "");
    // The health gate fails after the restart; meanwhile someone sets alice's quota by hand.
    let marker = fake.restart_marker();
    let (code, stdout, stderr) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !marker.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            fake.set_quota("alice", Some(7777));
        });
        run(&mut command(&site, &["apply", "--auto-approve"]))
    });
    assert_eq!(code, 6, "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "left as changed since this apply: quota.user.alice (now 7777; this apply wrote 20480)"
        ),
        "{stderr}"
    );
    assert_eq!(fake.quota("alice"), Some(Some(7777)));
    assert_eq!(
        fake.quota("bob"),
        Some(Some(100)),
        "bob still held what the apply wrote"
    );
}

#[test]
fn an_admin_api_response_over_the_size_limit_fails_the_plan_naming_the_url_and_the_limit() {
    let fake = fake(3);
    let site = api_site(&fake, "");
    fake.oversize_next("GET", "/api/v1/admin/retention-policies", 9 << 20, 1);
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "GET {}/api/v1/admin/retention-policies: the response is larger than 8 MiB",
            fake.url()
        )),
        "{stderr}"
    );
}
