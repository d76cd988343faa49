//! Smoke gates (`target.service.smoke`): requests that prove the server works, run after the
//! health gates. A failing one rolls the apply back byte for byte, like a failed health gate,
//! and the API token they may carry never shows and never leaves the API's origin.

use crate::common::{Site, assert_no_secret, run};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

const TOKEN: &str = "smoke-admin-token-that-must-never-be-printed-77";
const USERS: &str = "/api/v1/admin/users";

fn fake() -> FakeTldw {
    FakeTldw::start(FakeTldwConfig {
        admin_token: TOKEN.to_string(),
        ..FakeTldwConfig::default()
    })
}

/// A site that changes one `.env` value and gates it on `smoke` (YAML list items).
fn site(fake: &FakeTldw, smoke: &str, service_url: Option<&str>) -> Site {
    let site = Site::new();
    let restart = crate::common::yaml_words(&fake.restart_command());
    let service_url = service_url
        .map(|url| format!("    url: {url}\n"))
        .unwrap_or_default();
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
{service_url}    restart: [{restart}]
    timeout: 5s
    health:
      - {{ path: /health, expect_json: {{ status: ok }} }}
    smoke:
{smoke}
env:
  LOG_LEVEL: debug
"#,
            url = fake.url()
        ),
    );
    site
}

const USERS_GATE: &str = "      - { name: admin users, path: \"/api/v1/admin/users?page=1&limit=1\", auth: api, expect_json: { page: 1 }, retries: 1, timeout: 2s }";

fn command(site: &Site, args: &[&str]) -> std::process::Command {
    let mut command = site.command();
    command.args(args).env("TEST_ADMIN_TOKEN", TOKEN);
    command
}

#[test]
fn the_plan_ends_with_the_smoke_gate_after_the_health_gate() {
    let fake = fake();
    let site = site(&fake, USERS_GATE, None);
    let (code, stdout, stderr) = run(&mut command(&site, &["plan", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kinds = crate::common::step_kinds(&plan);
    assert_eq!(
        kinds,
        ["ensure_env_file", "restart", "health_gate", "smoke_gate"]
    );
    let smoke = &plan["steps"][3];
    assert_eq!(smoke["target"], "admin users");
    assert_eq!(smoke["operations"][0]["op"], "smoke");
    assert_eq!(smoke["operations"][0]["auth"], true);
    assert_eq!(smoke["operations"][0]["retries"], 1);
    assert_eq!(smoke["operations"][0]["timeout_ms"], 2000);
    let (code, markdown, _) = run(&mut command(&site, &["plan", "--format", "markdown"]));
    assert_eq!(code, 0);
    assert!(
        markdown.contains("**smoke gate**: a failure rolls the apply back"),
        "{markdown}"
    );
    assert_no_secret(
        &[TOKEN],
        &[("stdout", &stdout), ("markdown", &markdown)],
        &[],
    );
}

#[test]
fn a_passing_smoke_gate_sends_the_api_token_and_the_apply_succeeds() {
    let fake = fake();
    let site = site(&fake, USERS_GATE, None);
    let (code, stdout, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    // The fake answers 401 without the admin token, so a pass proves it was sent.
    assert_eq!(fake.request_count("GET", USERS), 1);
    assert!(site.env_text().contains("LOG_LEVEL=debug"));
    assert_no_secret(
        &[TOKEN],
        &[("stdout", &stdout), ("stderr", &stderr)],
        &site.files_that_must_not_hold_secrets(),
    );
}

#[test]
fn a_failing_smoke_gate_is_retried_then_rolls_the_files_back_byte_for_byte() {
    let fake = fake();
    let site = site(&fake, USERS_GATE, None);
    let before = site.env_text();
    // Both attempts of the apply's gate fail; the server answers again once rolled back.
    fake.fail_next("GET", USERS, 500, 2);
    let (code, stdout, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("smoke gate `admin users` failed after 2 attempts"),
        "{stderr}"
    );
    assert!(stderr.contains("status 500, expected 200"), "{stderr}");
    // One try and one retry, then the rollback's own run of the gates on the restored file.
    assert_eq!(fake.request_count("GET", USERS), 3);
    assert!(stderr.contains("final health: healthy"), "{stderr}");
    assert_eq!(site.env_text(), before, "the .env is back byte for byte");
    // The rollback restarted the server on the restored file.
    assert_eq!(fake.restart_count(), 2);
    let (code, history, _) = run(&mut command(&site, &["history", "--format", "json"]));
    assert_eq!(code, 0);
    assert!(history.contains("rolled_back"), "{history}");
    assert_no_secret(
        &[TOKEN],
        &[
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("history", &history),
        ],
        &site.files_that_must_not_hold_secrets(),
    );
}

#[test]
fn an_authenticated_field_that_differs_is_named_without_its_value() {
    let fake = fake();
    let gate = "      - { name: admin users, path: \"/api/v1/admin/users?page=1&limit=1\", auth: api, expect_json: { limit: 7 }, retries: 0 }";
    let site = site(&fake, gate, None);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("field `limit` does not hold the expected value"),
        "{stderr}"
    );
    assert!(!stderr.contains("is 1, expected 7"), "{stderr}");
}

#[test]
fn validate_refuses_to_send_the_token_to_another_origin_or_without_an_api() {
    let fake = fake();
    let site = site(&fake, USERS_GATE, Some("http://127.0.0.1:9"));
    let (code, _, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("which is another origin than `target.api.url`"),
        "{stderr}"
    );
    assert!(stderr.contains("tldw-ops.yaml:"), "{stderr}");
    assert_eq!(fake.request_count("GET", USERS), 0);

    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
  service:
    url: {url}
    smoke:
{USERS_GATE}
"#,
            url = fake.url()
        ),
    );
    let (code, _, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("`auth: api` sends `target.api`'s token, but there is no `target.api`"),
        "{stderr}"
    );
}

#[test]
fn a_smoke_gate_that_still_fails_after_the_rollback_is_reported_in_the_final_health() {
    let fake = fake();
    let site = site(&fake, USERS_GATE, None);
    let before = site.env_text();
    fake.fail_persistently("GET", USERS, 503);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    assert_eq!(site.env_text(), before);
    assert!(stderr.contains("final health: UNHEALTHY"), "{stderr}");
    assert!(stderr.contains("status 503, expected 200"), "{stderr}");
}

#[test]
fn show_credits_each_undone_step_with_its_own_time_not_the_wait_until_its_undo() {
    let fake = fake();
    let site = site(&fake, USERS_GATE, None);
    fake.fail_persistently("GET", USERS, 500);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 6, "{stderr}");
    let (_, history, _) = run(&mut command(&site, &["history", "--format", "json"]));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let id = history["applies"][0]["id"].as_str().unwrap().to_string();
    let (code, shown, stderr) = run(&mut command(&site, &["show", &id, "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let seconds = |step: &serde_json::Value| {
        let at =
            |field: &str| -> jiff::Timestamp { step[field].as_str().unwrap().parse().unwrap() };
        at("finished_at")
            .duration_since(at("started_at"))
            .as_secs_f64()
    };
    let steps = shown["steps"].as_array().unwrap();
    let env = steps
        .iter()
        .find(|step| step["kind"] == "ensure_env_file")
        .unwrap();
    let smoke = steps
        .iter()
        .find(|step| step["kind"] == "smoke_gate")
        .unwrap();
    assert_eq!(env["status"], "undone");
    // The smoke gate waited a second between its two attempts; the .env edit took milliseconds
    // and is not charged with that wait, nor with the undo after it.
    assert!(seconds(smoke) >= 1.0, "{smoke}");
    assert!(seconds(env) < 0.5, "{env}");
}
