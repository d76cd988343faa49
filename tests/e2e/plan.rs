//! `tldw-ops plan` against real copies of tldw_server's files: exact changes, sources, drift,
//! deletes, formats, exit codes, and that no secret is ever shown.

use crate::common::{CONFIG_PATH, ENV_PATH, Site, assert_no_secret, run};

pub const FROM_ENV_SECRET: &str = "pg-password-from-the-environment-0123456789";
pub const FROM_FILE_SECRET: &str = "pepper-read-from-a-file-abcdefghijklmnopqrstuv";

/// A dev desired state over the shipped files.
pub fn yaml(extra: &str) -> String {
    format!(
        r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
env:
  AUTH_MODE: single_user
  LOG_LEVEL: info
  DISABLE_CORS: false
config:
  Setup:
    setup_completed: true
  AuthNZ:
    rate_limit_per_minute: 120
secrets:
  values:
    SINGLE_USER_API_KEY: {{ generate: {{ format: tldw_api_key }} }}
    POSTGRES_PASSWORD: {{ from_env: TEST_PG_PASSWORD }}
    API_KEY_PEPPER: {{ from_file: pepper.txt }}
cors:
  allowed_origins: [http://localhost:3000]
registration: {{ enabled: false }}
{extra}"#
    )
}

pub fn site(extra: &str) -> Site {
    let site = Site::new();
    site.write_yaml("tldw-ops.yaml", &yaml(extra));
    std::fs::write(
        site.path().join("pepper.txt"),
        format!("{FROM_FILE_SECRET}\n"),
    )
    .unwrap();
    // Private, as a secret file should be (and independent of the umask).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        site.path().join("pepper.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    site
}

pub fn command(site: &Site, args: &[&str]) -> std::process::Command {
    let mut command = site.command();
    command.args(args).env("TEST_PG_PASSWORD", FROM_ENV_SECRET);
    command
}

fn plan_json(site: &Site) -> serde_json::Value {
    let (code, stdout, stderr) = run(&mut command(site, &["plan", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn change<'a>(plan: &'a serde_json::Value, address: &str) -> Option<&'a serde_json::Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["address"] == address)
}

#[test]
fn plan_lists_exactly_the_changes_the_yaml_implies_with_their_sources() {
    let site = site("");
    let plan = plan_json(&site);
    let addresses: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        vec![
            "config.AuthNZ.rate_limit_per_minute",
            "config.Setup.setup_completed",
            "env.ALLOWED_ORIGINS",
            "env.ENABLE_REGISTRATION",
            "env.LOG_LEVEL",
            "secret.API_KEY_PEPPER",
            "secret.POSTGRES_PASSWORD",
            "secret.SINGLE_USER_API_KEY",
        ],
        "AUTH_MODE=single_user and DISABLE_CORS=false already match the shipped .env"
    );
    let rate = change(&plan, "config.AuthNZ.rate_limit_per_minute").unwrap();
    assert_eq!(rate["action"], "update");
    assert_eq!(rate["before"], "60");
    assert_eq!(rate["after"], "120");
    assert_eq!(rate["source"]["file"], "tldw-ops.yaml");
    assert_eq!(rate["source"]["line"], 13);
    assert_eq!(rate["source"]["column"], 28);
    let log_level = change(&plan, "env.LOG_LEVEL").unwrap();
    assert_eq!(log_level["action"], "create");
    assert_eq!(log_level["source"]["line"], 7);
    let key = change(&plan, "secret.SINGLE_USER_API_KEY").unwrap();
    assert_eq!(key["action"], "update");
    assert_eq!(key["reason"], "current value is a placeholder");
    assert_eq!(key["after"], "(generated at apply)");
    assert_eq!(key["sensitive"], true);
    assert!(key["before"].as_str().unwrap().starts_with("fp:"));
    let pepper = change(&plan, "secret.API_KEY_PEPPER").unwrap();
    assert_eq!(pepper["action"], "create");
    assert!(pepper["after"].as_str().unwrap().starts_with("fp:"));
    // Steps: the .env, then config.txt; no restart is configured.
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(steps, vec!["ensure_env_file", "ensure_config_file"]);
    assert_eq!(plan["fingerprints"]["env.LOG_LEVEL"], "absent");
}

#[test]
fn no_secret_value_reaches_any_plan_output() {
    let site = site("");
    let env_before = site.env_text();
    let mut outputs = Vec::new();
    for format in ["text", "json", "markdown"] {
        let (code, stdout, stderr) = run(&mut command(
            &site,
            &["plan", "--format", format, "--diff", "--out", "plan.json"],
        ));
        assert_eq!(code, 0, "{stderr}");
        outputs.push((format, stdout, stderr));
    }
    let texts: Vec<(&str, &str)> = outputs
        .iter()
        .flat_map(|(format, stdout, stderr)| {
            [(*format, stdout.as_str()), (*format, stderr.as_str())]
        })
        .collect();
    // The shipped placeholders are secrets' current values: they must not show either.
    assert_no_secret(
        &[
            FROM_ENV_SECRET,
            FROM_FILE_SECRET,
            "CHANGE_ME_TO_SECURE_API_KEY",
            "CHANGE_ME_TO_SECURE_MCP_JWT_SECRET",
        ],
        &texts,
        &site
            .files_that_must_not_hold_secrets()
            .into_iter()
            .filter(|path| !path.ends_with("pepper.txt"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(site.env_text(), env_before, "plan never writes");
}

#[test]
fn the_diff_masks_secrets_and_shows_real_edits() {
    let site = site("");
    let (code, stdout, _) = run(&mut command(&site, &["plan", "--diff"]));
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("--- a/{ENV_PATH}")), "{stdout}");
    assert!(stdout.contains("+LOG_LEVEL=info"), "{stdout}");
    assert!(stdout.contains(&format!("--- a/{CONFIG_PATH}")), "{stdout}");
    assert!(stdout.contains("-rate_limit_per_minute = 60"), "{stdout}");
    assert!(stdout.contains("+rate_limit_per_minute = 120"), "{stdout}");
    assert!(stdout.contains("(generated at apply)"), "{stdout}");
    assert!(!stdout.contains("CHANGE_ME_TO_SECURE_API_KEY"), "{stdout}");
    assert!(!stdout.contains(FROM_ENV_SECRET));
}

#[test]
fn detailed_exitcode_is_2_with_changes_and_0_without() {
    let site = site("");
    let (code, _, _) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 2);
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("No changes."));
}

#[test]
fn keys_the_yaml_does_not_manage_are_never_touched() {
    let site = site("");
    let plan = plan_json(&site);
    for change in plan["changes"].as_array().unwrap() {
        let address = change["address"].as_str().unwrap();
        assert!(!address.contains("OPENAI"), "{address}");
    }
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let after = site.env_text();
    for line in [
        "OPENAI_API_KEY=",
        "CUSTOM_OPENAI_API_KEY=${OPENAI_API_KEY}",
        "# Auth mode: \"single_user\" (API key) or \"multi_user\" (JWT)",
    ] {
        assert!(after.contains(line), "{line}");
    }
}

#[test]
fn an_edit_outside_tldw_ops_is_planned_as_drift() {
    let site = site("");
    assert_eq!(run(&mut command(&site, &["apply", "--auto-approve"])).0, 0);
    site.set_env_text(&site.env_text().replace("LOG_LEVEL=info", "LOG_LEVEL=debug"));
    let plan = plan_json(&site);
    let log_level = change(&plan, "env.LOG_LEVEL").unwrap();
    assert_eq!(log_level["drift"], true);
    assert_eq!(log_level["before"], "debug");
    let (_, stdout, _) = run(&mut command(&site, &["plan"]));
    assert!(
        stdout.contains("Drift (changed outside tldw-ops"),
        "{stdout}"
    );
    assert!(stdout.contains("1 change reverts drift"), "{stdout}");
}

#[test]
fn a_key_dropped_from_the_yaml_is_deleted_only_if_tldw_ops_managed_it() {
    let site = site("");
    assert_eq!(run(&mut command(&site, &["apply", "--auto-approve"])).0, 0);
    let text = yaml("")
        .replace("  LOG_LEVEL: info\n", "")
        .replace("  DISABLE_CORS: false\n", "");
    site.write_yaml("tldw-ops.yaml", &text);
    let plan = plan_json(&site);
    let deleted: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete")
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, vec!["env.DISABLE_CORS", "env.LOG_LEVEL"]);
    assert_eq!(run(&mut command(&site, &["apply", "--auto-approve"])).0, 0);
    assert!(!site.env_text().contains("LOG_LEVEL="));
    assert!(!site.env_text().contains("DISABLE_CORS="));
    assert!(
        site.env_text().contains("CORS_ALLOW_CREDENTIALS=false"),
        "unmanaged neighbours stay"
    );
}

#[test]
fn a_missing_file_is_planned_as_create_and_an_unreadable_one_is_an_error() {
    let site = site("");
    std::fs::remove_file(site.path().join(ENV_PATH)).unwrap();
    let plan = plan_json(&site);
    assert_eq!(change(&plan, "env.AUTH_MODE").unwrap()["action"], "create");
    std::fs::create_dir(site.path().join(ENV_PATH)).unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 1);
    assert!(stderr.contains(".env is a directory"), "{stderr}");
    std::fs::remove_dir(site.path().join(ENV_PATH)).unwrap();
    std::fs::write(site.path().join(ENV_PATH), [b'A', b'=', 0xff, b'\n']).unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 1);
    assert!(stderr.contains(".env is not UTF-8"), "{stderr}");
}

#[test]
fn an_invalid_spec_stops_plan_with_exit_3() {
    let site = site("bogus_section: 1\n");
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 3);
    assert!(stderr.contains("unknown key `bogus_section`"), "{stderr}");
}

#[test]
fn a_loose_env_file_mode_is_a_warning() {
    let site = site("");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        site.path().join(ENV_PATH),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (_, _, stderr) = run(&mut command(&site, &["plan"]));
    assert!(stderr.contains("has mode 0644"), "{stderr}");
}

#[test]
fn markdown_stays_under_the_comment_limit_and_says_when_it_cut() {
    let site = Site::new();
    let mut extra = String::from("env:\n");
    for index in 0..3000 {
        extra.push_str(&format!(
            "  GENERATED_SETTING_{index:05}: \"a value long enough to add up quickly {index}\"\n"
        ));
    }
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("apiVersion: tldw-ops/v1\nenvironment: dev\ntarget:\n  root: site\n{extra}"),
    );
    let (code, stdout, stderr) = run(site.command().args(["plan", "--format", "markdown"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.len() < 60_000, "{} characters", stdout.len());
    assert!(
        stdout.contains("not shown to keep this comment under 60000 characters"),
        "{}",
        &stdout[..500]
    );
    assert!(stdout.contains("Plan: 3000 to create"));
}

/// The salt the golden plans' state store gets (`TLDW_OPS_SALT`), so their salted
/// fingerprints, state id and desired hash are the same on every run.
const GOLDEN_SALT: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00123456789abcdeffedcba9876543210";
/// The clock of the golden plans (`TLDW_OPS_NOW`), for the saved plan's `created_at`.
const GOLDEN_NOW: &str = "2026-11-26T03:00:00Z";

/// [`command`] with the injected salt and clock, and `state` as `TLDW_OPS_STATE` when given:
/// its output needs no normalising.
fn golden_command(site: &Site, state: Option<&str>, args: &[&str]) -> std::process::Command {
    let mut command = command(site, args);
    command
        .env("TLDW_OPS_SALT", GOLDEN_SALT)
        .env("TLDW_OPS_NOW", GOLDEN_NOW);
    if let Some(state) = state {
        command.env("TLDW_OPS_STATE", state);
    }
    command
}

/// The golden plan in every rendering (text, JSON, Markdown, and the diff), by snapshot name,
/// against the state store `state` (SQLite beside the YAML when `None`).
fn golden_plans(state: Option<&str>) -> Vec<(&'static str, String)> {
    let site = site("");
    // Some drift and a delete make every part of the output appear. The apply creates the
    // store, so it is the run that needs the injected salt.
    let (code, _, stderr) = run(&mut golden_command(
        &site,
        state,
        &["apply", "--auto-approve"],
    ));
    assert_eq!(code, 0, "{stderr}");
    site.set_env_text(&site.env_text().replace("LOG_LEVEL=info", "LOG_LEVEL=debug"));
    site.write_yaml(
        "tldw-ops.yaml",
        &yaml("")
            .replace("  DISABLE_CORS: false\n", "")
            .replace("rate_limit_per_minute: 120", "rate_limit_per_minute: 90"),
    );
    let mut plans = Vec::new();
    for (format, name) in [
        ("text", "plan_text"),
        ("json", "plan_json"),
        ("markdown", "plan_markdown"),
    ] {
        let (code, stdout, stderr) = run(&mut golden_command(
            &site,
            state,
            &["plan", "--format", format],
        ));
        assert_eq!(code, 0, "{stderr}");
        plans.push((name, stdout));
    }
    let (code, stdout, stderr) = run(&mut golden_command(&site, state, &["plan", "--diff"]));
    assert_eq!(code, 0, "{stderr}");
    let diff = &stdout[stdout.find("--- a/").expect("a diff")..];
    plans.push(("plan_diff", diff.to_string()));
    plans
}

#[test]
fn rendered_plans_match_their_snapshots_in_all_three_formats() {
    for (name, rendered) in golden_plans(None) {
        insta::assert_snapshot!(name, rendered);
    }
}

#[test]
fn a_postgres_state_store_renders_the_same_plans_as_sqlite() {
    // Both stores take the injected salt in the same code (`SqlStore::ensure_salt`).
    let Some((_, url)) = crate::environments::postgres("golden_plan") else {
        return;
    };
    for (name, rendered) in golden_plans(Some(&url)) {
        insta::assert_snapshot!(name, rendered);
    }
}

#[test]
fn the_markdown_comment_shows_the_steps_the_warnings_and_the_masked_diff() {
    let site = site("");
    site.write_yaml(
        "tldw-ops.yaml",
        &yaml("").replace(
            "  root: site\n",
            "  root: site\n  service:\n    url: http://127.0.0.1:9\n    restart: [systemctl, restart, tldw]\n    \
             health:\n      - { path: /health, expect_status: 200 }\n",
        ),
    );
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["plan", "--format", "markdown", "--diff"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("<!-- tldw-ops plan: dev -->\n### tldw-ops plan: `dev`"),
        "{stdout}"
    );
    let steps = &stdout[stdout.find("**Steps**").expect("the steps are shown")..];
    assert!(
        steps.contains("restart systemctl restart tldw — **restarts tldw_server**"),
        "{steps}"
    );
    assert!(
        steps.contains("health_gate") && steps.contains("**health gate**"),
        "{steps}"
    );
    // A pepper file others can read: the warning reaches the reviewer.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        site.path().join("pepper.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["plan", "--format", "markdown", "--diff"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("**Warnings**"), "{stdout}");
    assert!(stdout.contains("[secret.file_mode]"), "{stdout}");
    let diff = &stdout[stdout.find("```diff").expect("--diff adds the diff")..];
    assert!(
        diff.contains("--- a/site/tldw_Server_API/Config_Files/.env"),
        "{diff}"
    );
    assert!(diff.contains("+API_KEY_PEPPER='(sensitive) fp:"), "{diff}");
    assert_no_secret(
        &[FROM_ENV_SECRET, FROM_FILE_SECRET],
        &[("markdown", &stdout), ("stderr", &stderr)],
        &site
            .files_that_must_not_hold_secrets()
            .into_iter()
            .filter(|path| !path.ends_with("pepper.txt"))
            .collect::<Vec<_>>(),
    );
    // Whole lines only, under the cap, even when the diff is large.
    assert!(stdout.len() < 60_000);
}

#[test]
fn the_restart_command_is_shown_quoted_as_a_shell_would_need_it() {
    let site = site("");
    site.write_yaml(
        "tldw-ops.yaml",
        &yaml("").replace(
            "  root: site\n",
            "  root: site\n  service:\n    restart: [sh, -c, \"date -u >> restarts.log\"]\n",
        ),
    );
    let (code, stdout, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("restart sh -c 'date -u >> restarts.log'"),
        "{stdout}"
    );
}

#[test]
fn interpolation_in_keys_this_file_does_not_manage_is_not_a_warning() {
    let site = site("");
    // The stock template has `${...}` in four provider keys nobody here manages.
    assert!(site.env_text().contains("CUSTOM_OPENAI_API_KEY=${"));
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("${...}"), "{stderr}");
    // A managed key whose current value holds one is worth a line.
    site.write_yaml(
        "tldw-ops.yaml",
        &yaml("").replace(
            "  LOG_LEVEL: info\n",
            "  LOG_LEVEL: info\n  CUSTOM_OPENAI_API_KEY: none\n",
        ),
    );
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("${...}"))
        .collect();
    assert_eq!(warnings.len(), 1, "said once: {stderr}");
    assert!(
        warnings[0].contains("CUSTOM_OPENAI_API_KEY (line 100) holds a ${...} reference")
            && !warnings[0].contains("BEDROCK_API_KEY"),
        "{stderr}"
    );
}
