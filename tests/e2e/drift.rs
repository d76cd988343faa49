//! `tldw-ops drift`: out-of-band edits found with their likely cause, nothing after an apply,
//! `--adopt` writing observed values into the YAML (in a base layer too) so the plan is empty,
//! what adopt refuses, lock and unfinished-apply rules, and no secret in any output.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{CONFIG_PATH, ENV_PATH, Site, assert_no_secret, env_value, run};
use crate::plan::{FROM_ENV_SECRET, FROM_FILE_SECRET, command, site, yaml};

/// What an entrypoint-style rewrite puts into `.env`; must never be printed.
const ENTRYPOINT_KEY: &str = "Zm9yLXRoZS1lbnRyeXBvaW50LW9ubHktMDEyMzQ1Njc4OQ";

fn apply(site: &Site) {
    let (code, _, stderr) = run(&mut command(site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
}

fn drift_json(site: &Site) -> (i32, serde_json::Value, String) {
    let (code, stdout, stderr) = run(&mut command(site, &["drift", "--format", "json"]));
    let value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));
    (code, value, stderr)
}

fn item<'a>(report: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["address"] == address)
        .unwrap_or_else(|| panic!("{address} not in {report:#}"))
}

/// Replaces `KEY=...` in a `.env` text.
fn set_env(site: &Site, key: &str, value: &str) {
    let text = site.env_text();
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{key}=")) {
                found = true;
                format!("{key}={value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        out.push(format!("{key}={value}"));
    }
    site.set_env_text(&(out.join("\n") + "\n"));
}

fn set_config(site: &Site, from: &str, to: &str) {
    let text = site.config_text();
    assert!(text.contains(from), "{from}");
    site.set_config_text(&text.replacen(from, to, 1));
}

/// Files to scan: everything but the deployment's .env and the secret source file.
fn scanned_files(site: &Site) -> Vec<std::path::PathBuf> {
    let files: Vec<_> = site
        .files_that_must_not_hold_secrets()
        .into_iter()
        .filter(|path| !path.ends_with("pepper.txt"))
        .collect();
    assert!(files.iter().any(|path| path.ends_with("state.db")));
    files
}

fn plan_is_empty(site: &Site) {
    let (code, stdout, stderr) = run(&mut command(site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 0, "the plan is empty:\n{stdout}\n{stderr}");
}

#[test]
fn no_drift_after_an_apply_exits_0() {
    let site = site("");
    apply(&site);
    let (code, stdout, stderr) = run(&mut command(&site, &["drift"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("No drift in dev"), "{stdout}");
    let (code, report, _) = drift_json(&site);
    assert_eq!(code, 0);
    assert_eq!(report["drift"], serde_json::json!([]));
}

#[test]
fn addresses_never_applied_are_not_drift() {
    let site = site("");
    // Nothing applied yet: the plan has changes, drift has nothing to say.
    let (code, report, stderr) = drift_json(&site);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["drift"], serde_json::json!([]));
    let (code, stdout, _) = run(&mut command(&site, &["drift"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("tldw-ops has applied nothing here yet"),
        "{stdout}"
    );
}

#[test]
fn out_of_band_edits_are_drift_with_their_likely_cause_and_exit_2() {
    let site = site("");
    apply(&site);
    set_env(&site, "LOG_LEVEL", "debug");
    set_env(&site, "SINGLE_USER_API_KEY", ENTRYPOINT_KEY);
    set_config(&site, "setup_completed = true", "setup_completed = false");
    set_config(
        &site,
        "rate_limit_per_minute = 120",
        "rate_limit_per_minute = 90",
    );
    let (code, report, stderr) = drift_json(&site);
    assert_eq!(code, 2, "{stderr}");
    let addresses: Vec<&str> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        vec![
            "config.AuthNZ.rate_limit_per_minute",
            "config.Setup.setup_completed",
            "env.LOG_LEVEL",
            "secret.SINGLE_USER_API_KEY",
        ]
    );
    let log_level = item(&report, "env.LOG_LEVEL");
    assert_eq!(log_level["sensitive"], false);
    assert_eq!(log_level["last_applied"], "info");
    assert_eq!(log_level["observed"], "debug");
    assert_eq!(
        log_level["likely_cause"],
        "edited by hand or by another tool"
    );
    assert_eq!(log_level["source"]["file"], "tldw-ops.yaml");
    assert_eq!(log_level["source"]["line"], 7);
    assert_eq!(log_level["source"]["column"], 14);
    let key = item(&report, "secret.SINGLE_USER_API_KEY");
    assert_eq!(key["sensitive"], true);
    assert!(key["last_applied"].as_str().unwrap().starts_with("fp:"));
    assert!(key["observed"].as_str().unwrap().starts_with("fp:"));
    assert_ne!(key["last_applied"], key["observed"]);
    assert!(
        key["likely_cause"]
            .as_str()
            .unwrap()
            .starts_with("the tldw Docker entrypoint"),
        "{key}"
    );
    assert!(
        item(&report, "config.Setup.setup_completed")["likely_cause"]
            .as_str()
            .unwrap()
            .contains("setup wizard")
    );
    assert_eq!(
        item(&report, "config.AuthNZ.rate_limit_per_minute")["last_applied"],
        "120"
    );
    let (code, text, stderr) = run(&mut command(&site, &["drift"]));
    assert_eq!(code, 2);
    assert!(text.contains("~ env.LOG_LEVEL"), "{text}");
    assert!(text.contains("last applied: \"info\""), "{text}");
    assert!(text.contains("now:          \"debug\""), "{text}");
    assert!(
        text.contains("the tldw Docker entrypoint, which rewrites SINGLE_USER_API_KEY"),
        "{text}"
    );
    assert_no_secret(
        &[ENTRYPOINT_KEY, FROM_ENV_SECRET, FROM_FILE_SECRET],
        &[
            ("drift text", &text),
            ("drift stderr", &stderr),
            ("drift json", &report.to_string()),
        ],
        &scanned_files(&site),
    );
}

#[test]
fn a_removed_key_and_a_registration_rewrite_are_drift() {
    let site = site("");
    let text = yaml("").replace(
        "  AuthNZ:\n    rate_limit_per_minute: 120\n",
        "  AuthNZ:\n    rate_limit_per_minute: 120\n    enable_registration: false\n",
    );
    site.write_yaml("tldw-ops.yaml", &text);
    apply(&site);
    set_config(
        &site,
        "enable_registration = false",
        "enable_registration = true",
    );
    let env = site
        .env_text()
        .lines()
        .filter(|line| !line.starts_with("LOG_LEVEL="))
        .collect::<Vec<_>>()
        .join("\n");
    site.set_env_text(&(env + "\n"));
    let (code, report, _) = drift_json(&site);
    assert_eq!(code, 2);
    let registration = item(&report, "config.AuthNZ.enable_registration");
    assert!(
        registration["likely_cause"]
            .as_str()
            .unwrap()
            .contains("registration settings"),
        "{registration}"
    );
    assert_eq!(
        item(&report, "env.LOG_LEVEL")["observed"],
        serde_json::Value::Null
    );
}

#[test]
fn drift_respects_the_lock_and_an_unfinished_apply() {
    let site = site("");
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
    let (code, _, stderr) = run(&mut command(&site, &["drift"]));
    assert_eq!(code, 5, "{stderr}");
    first.kill().unwrap();
    first.wait().unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["drift"]));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("apply --resume"), "{stderr}");
}

/// A desired state with comments, flow and block styles, for adopt to keep byte for byte.
const COMMENTED: &str = r#"# yaml-language-server: $schema=../schemas/tldw-ops.schema.json
# The dev environment.
apiVersion: tldw-ops/v1
environment: dev
target:
  root: site   # the install
env:
  # Verbosity of the server.
  LOG_LEVEL: info    # keep quiet
  AUTH_MODE: single_user
  UVICORN_WORKERS: 2
config:
  AuthNZ:
    rate_limit_per_minute: 120 # per user
secrets:
  values:
    POSTGRES_PASSWORD: { from_env: TEST_PG_PASSWORD }
cors:
  allowed_origins:
    - http://localhost:3000   # the web UI
registration: { enabled: false, require_code: true }
quotas:
  enforce: false
retention:
  audit_logs: 180d
"#;

#[test]
fn adopt_writes_observed_values_at_their_source_and_the_plan_is_then_empty() {
    let site = Site::new();
    site.write_yaml("tldw-ops.yaml", COMMENTED);
    apply(&site);
    set_env(&site, "LOG_LEVEL", "warning");
    set_env(&site, "UVICORN_WORKERS", "012");
    set_env(
        &site,
        "ALLOWED_ORIGINS",
        "http://localhost:3000,https://tldw.example.org",
    );
    set_env(&site, "ENABLE_REGISTRATION", "true");
    set_env(&site, "USAGE_QUOTAS_ENABLED", "true");
    set_env(&site, "AUDIT_LOG_RETENTION_DAYS", "365");
    set_config(
        &site,
        "rate_limit_per_minute = 120",
        "rate_limit_per_minute = 90",
    );
    let (code, report, _) = drift_json(&site);
    assert_eq!(code, 2);
    assert_eq!(report["drift"].as_array().unwrap().len(), 7);
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &[
            "drift",
            "--adopt",
            "env.LOG_LEVEL",
            "env.UVICORN_WORKERS",
            "env.ALLOWED_ORIGINS",
            "env.ENABLE_REGISTRATION",
            "env.USAGE_QUOTAS_ENABLED",
            "env.AUDIT_LOG_RETENTION_DAYS",
            "config.AuthNZ.rate_limit_per_minute",
        ],
    ));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("adopted env.LOG_LEVEL = \"warning\" at tldw-ops.yaml:9:14"),
        "{stderr}"
    );
    let expected = COMMENTED
        .replace(
            "LOG_LEVEL: info    # keep quiet",
            "LOG_LEVEL: warning    # keep quiet",
        )
        .replace("UVICORN_WORKERS: 2", "UVICORN_WORKERS: '012'")
        .replace(
            "    - http://localhost:3000   # the web UI\n",
            "    - http://localhost:3000   # the web UI\n    - https://tldw.example.org\n",
        )
        .replace(
            "registration: { enabled: false, require_code: true }",
            "registration: { enabled: true, require_code: true }",
        )
        .replace("  enforce: false", "  enforce: true")
        .replace("audit_logs: 180d", "audit_logs: 365d")
        .replace(
            "rate_limit_per_minute: 120 # per user",
            "rate_limit_per_minute: 90 # per user",
        );
    let written = std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap();
    assert_eq!(written, expected);
    plan_is_empty(&site);
    // The state is unchanged until the next apply; drift knows these now match the YAML.
    let (code, report, _) = drift_json(&site);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["matches_desired"].as_array().unwrap().len(), 7);
    apply(&site);
    let (code, report, _) = drift_json(&site);
    assert_eq!(code, 0);
    assert_eq!(
        report["matches_desired"],
        serde_json::json!([]),
        "apply recorded the adopted values"
    );
    assert_eq!(
        env_value(&site.env_text(), "UVICORN_WORKERS").as_deref(),
        Some("012")
    );
}

#[test]
fn adopt_edits_the_base_file_that_declares_the_value() {
    let site = Site::new();
    let base = "# Shared by every environment.\nenv:\n  # how loud\n  LOG_LEVEL: info\n  AUTH_MODE: single_user\n";
    site.write_yaml("base.yaml", base);
    let dev = "extends: base.yaml\napiVersion: tldw-ops/v1\nenvironment: dev\ntarget:\n  root: site\nenv:\n  UVICORN_WORKERS: 1\n";
    site.write_yaml("dev.yaml", dev);
    let (code, _, stderr) = run(&mut command(
        &site,
        &["apply", "dev.yaml", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stderr}");
    set_env(&site, "LOG_LEVEL", "debug");
    let (code, stdout, stderr) = run(&mut command(&site, &["drift", "dev.yaml"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.contains("declared at:  base.yaml:4:14"), "{stdout}");
    let (code, _, stderr) = run(&mut command(
        &site,
        &["drift", "dev.yaml", "--adopt", "env.LOG_LEVEL"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("base.yaml is a shared layer"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(site.path().join("base.yaml")).unwrap(),
        base.replace("LOG_LEVEL: info", "LOG_LEVEL: debug")
    );
    assert_eq!(
        std::fs::read_to_string(site.path().join("dev.yaml")).unwrap(),
        dev
    );
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["plan", "dev.yaml", "--detailed-exitcode"],
    ));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[test]
fn adopt_refuses_secrets_templates_unmappable_text_and_unknown_addresses() {
    let site = Site::new();
    let text = COMMENTED
        .replace(
            "environment: dev\n",
            "environment: dev\ntemplate: { variables: [TEST_DOMAIN] }\n",
        )
        .replace(
            "  UVICORN_WORKERS: 2\n",
            "  UVICORN_WORKERS: 2\n  PUBLIC_WEB_BASE_URL: \"https://{{ env.TEST_DOMAIN }}\"\n  REDIS_URL: redis://cache:6379/0\n",
        );
    site.write_yaml("tldw-ops.yaml", &text);
    let tool = |args: &[&str]| {
        let mut command = command(&site, args);
        command.env("TEST_DOMAIN", "tldw.example.org");
        command
    };
    let (code, _, stderr) = run(&mut tool(&["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    set_env(&site, "POSTGRES_PASSWORD", ENTRYPOINT_KEY);
    set_env(&site, "PUBLIC_WEB_BASE_URL", "https://other.example.org");
    set_env(&site, "ALLOWED_ORIGINS", "[\"http://localhost:3000\"]");
    set_env(&site, "ENABLE_REGISTRATION", "True");
    set_env(
        &site,
        "REDIS_URL",
        &format!("redis://:{ENTRYPOINT_KEY}@cache:6379/0"),
    );
    for (address, expected) in [
        (
            "secret.POSTGRES_PASSWORD",
            "its YAML holds a reference (from_env: TEST_PG_PASSWORD)",
        ),
        (
            "env.PUBLIC_WEB_BASE_URL",
            "is produced by a template at tldw-ops.yaml:13:24",
        ),
        (
            "env.ALLOWED_ORIGINS",
            "it is a JSON list; tldw-ops writes ALLOWED_ORIGINS comma-separated",
        ),
        ("env.ENABLE_REGISTRATION", "`True` is not `true` or `false`"),
        (
            "env.REDIS_URL",
            "holds a sensitive value; tldw-ops never writes it into YAML",
        ),
        ("env.NOT_DECLARED", "is not declared in the desired state"),
        ("nonsense", "is not an address"),
    ] {
        let (code, stdout, stderr) = run(&mut tool(&["drift", "--adopt", address]));
        assert_eq!(code, 1, "{address}: {stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{address}: {stderr}");
        assert!(stderr.contains("nothing was adopted"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap(),
            text,
            "{address}: the YAML is untouched"
        );
        assert_no_secret(
            &[ENTRYPOINT_KEY, FROM_ENV_SECRET],
            &[("stdout", &stdout), ("stderr", &stderr)],
            &scanned_files(&site),
        );
    }
    // One refusal stops the others too.
    let (code, _, _) = run(&mut tool(&[
        "drift",
        "--adopt",
        "env.ENABLE_REGISTRATION",
        "secret.POSTGRES_PASSWORD",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap(),
        text
    );
    let (code, report, stderr) = {
        let (code, stdout, stderr) = run(&mut tool(&["drift", "--format", "json"]));
        (code, stdout, stderr)
    };
    assert_eq!(code, 2, "{stderr}");
    assert_no_secret(
        &[ENTRYPOINT_KEY, FROM_ENV_SECRET],
        &[("drift json", &report), ("stderr", &stderr)],
        &[],
    );
    let _ = (ENV_PATH, CONFIG_PATH);
}

const API_TOKEN: &str = "admin-token-for-the-drift-tests-0123456789";

#[test]
fn quota_and_retention_changes_through_the_admin_api_are_drift_and_can_be_adopted() {
    use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};
    let fake = FakeTldw::start(FakeTldwConfig {
        admin_token: API_TOKEN.to_string(),
        users: 2,
        extra_users: vec![("alice".to_string(), Some(5120))],
        ..FakeTldwConfig::default()
    });
    let site = Site::new();
    let text = format!(
        "apiVersion: tldw-ops/v1\nenvironment: dev\ntarget:\n  root: site\n  api:\n    url: {}\n    token: {{ from_env: TEST_ADMIN_TOKEN }}\nquotas:\n  users:\n    alice: 2048   # the team lead\nretention:\n  sessions: 30d\n",
        fake.url()
    );
    site.write_yaml("tldw-ops.yaml", &text);
    let tool = |args: &[&str]| {
        let mut command = site.command();
        command.args(args).env("TEST_ADMIN_TOKEN", API_TOKEN);
        command
    };
    let (code, _, stderr) = run(&mut tool(&["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&mut tool(&["drift"]));
    assert_eq!(code, 0, "{stderr}");
    fake.set_quota("alice", Some(4096));
    fake.set_retention_days("sessions", 45);
    let (code, stdout, stderr) = run(&mut tool(&["drift", "--format", "json"]));
    assert_eq!(code, 2, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let quota = item(&report, "quota.user.alice");
    assert_eq!(quota["last_applied"], "2048");
    assert_eq!(quota["observed"], "4096");
    assert_eq!(
        quota["likely_cause"],
        "changed through the admin API or web UI (storage quotas)"
    );
    assert_eq!(item(&report, "retention.sessions")["observed"], "45");
    let (code, _, stderr) = run(&mut tool(&[
        "drift",
        "--adopt",
        "quota.user.alice",
        "retention.sessions",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap(),
        text.replace("alice: 2048   #", "alice: 4096   #")
            .replace("sessions: 30d", "sessions: 45d")
    );
    let (code, stdout, stderr) = run(&mut tool(&["plan", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let planned: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned,
        vec!["env.SESSION_LOG_RETENTION_DAYS"],
        "the adopted addresses plan nothing; the .env follows the new retention"
    );
    assert_no_secret(
        &[API_TOKEN],
        &[("plan", &stdout), ("stderr", &stderr)],
        &site.files_that_must_not_hold_secrets(),
    );
}

#[test]
fn drift_holds_a_production_env_edited_by_hand_to_the_policy() {
    let site = site("");
    apply(&site);
    // The running deployment is production; someone turned on the key banner and a test switch.
    set_env(&site, "tldw_production", "true");
    set_env(&site, "SHOW_API_KEY_ON_STARTUP", "true");
    set_env(&site, "TEST_MODE", "1");
    let (code, report, stderr) = drift_json(&site);
    assert_eq!(code, 2, "{stderr}");
    let rules: Vec<&str> = report["policy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"show-api-key-on-startup"), "{rules:?}");
    assert!(rules.contains(&"test-switches"), "{rules:?}");
    assert!(
        rules.contains(&"secret-strength"),
        "the template's CHANGE_ME placeholders: {rules:?}"
    );
    let (_, text, _) = run(&mut command(&site, &["drift"]));
    assert!(
        text.contains("Policy (the running deployment breaks these production rules)"),
        "{text}"
    );
    assert!(!text.contains("CHANGE_ME"), "{text}");
}
