//! `tldw-ops validate`: snapshots of the diagnostics for invalid specs (exact line and column),
//! the examples, and exit codes.

use std::path::Path;

use crate::common::{fixture, repo, run, tool};

fn validate_json(directory: &Path, file: &str) -> (i32, serde_json::Value) {
    let (code, stdout, _) = run(tool(directory).args(["validate", file, "--format", "json"]));
    (
        code,
        serde_json::from_str(&stdout).expect("validate --format json prints JSON"),
    )
}

/// The diagnostics of `name`.yaml against their reviewed snapshot, as pretty JSON.
fn snapshot(name: &str, actual: &serde_json::Value) {
    // A secret file's mode depends on the checkout's umask, not on the spec.
    let mut actual = actual.clone();
    if let Some(diagnostics) = actual["diagnostics"].as_array_mut() {
        diagnostics.retain(|diagnostic| diagnostic["code"] != "secret.file_mode");
    }
    let text = serde_json::to_string_pretty(&actual).unwrap();
    insta::assert_snapshot!(format!("{name}.diagnostics"), text);
}

/// (code, line, column) of each diagnostic.
fn positions(value: &serde_json::Value) -> Vec<(String, u64, u64)> {
    value["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|diagnostic| {
            (
                diagnostic["code"].as_str().unwrap().to_string(),
                diagnostic["line"].as_u64().unwrap_or(0),
                diagnostic["column"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn check(name: &str, expected: &[(&str, u64, u64)]) {
    let directory = fixture("specs");
    let (code, value) = validate_json(&directory, &format!("{name}.yaml"));
    assert_eq!(code, 3, "{name}.yaml must be invalid (exit 3)");
    let found = positions(&value);
    for (code, line, column) in expected {
        assert!(
            found
                .iter()
                .any(|(found_code, found_line, found_column)| found_code == code
                    && found_line == line
                    && found_column == column),
            "{name}.yaml: expected {code} at {line}:{column}, found {found:?}"
        );
    }
    snapshot(name, &value);
}

#[test]
fn a_misspelled_key_is_reported_at_the_key_with_a_suggestion() {
    check(
        "misspelled-key",
        &[("schema.unknown_key", 5, 3), ("schema.unknown_key", 8, 1)],
    );
    let (_, value) = validate_json(&fixture("specs"), "misspelled-key.yaml");
    let messages: Vec<&str> = value["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|message| message.contains("did you mean `env_file`"))
    );
    assert!(
        messages
            .iter()
            .any(|message| message.contains("did you mean `registration`"))
    );
}

#[test]
fn a_wrong_type_is_reported_at_the_value() {
    check(
        "wrong-type",
        &[
            ("schema.type", 6, 20),
            ("schema.type", 7, 22),
            ("schema.range", 9, 19),
            ("schema.type", 9, 28),
        ],
    );
}

#[test]
fn every_bad_duration_is_reported_at_once() {
    check(
        "bad-duration",
        &[
            ("value.duration", 7, 14),
            ("value.duration", 9, 15),
            ("value.duration", 13, 10),
        ],
    );
}

#[test]
fn an_extends_cycle_prints_the_chain_at_the_entry_that_closes_it() {
    check("extends-cycle", &[("load.extends_cycle", 3, 11)]);
    let (_, value) = validate_json(&fixture("specs"), "extends-cycle.yaml");
    let message = value["diagnostics"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("extends-cycle.yaml -> extends-cycle-base.yaml -> extends-cycle.yaml"),
        "{message}"
    );
}

#[test]
fn a_missing_template_variable_is_named_where_it_is_used() {
    check(
        "missing-template-variable",
        &[("template.undefined", 7, 24)],
    );
}

#[test]
fn a_template_reading_an_undeclared_variable_is_refused_at_its_value() {
    check(
        "undeclared-template-variable",
        &[("template.undeclared", 6, 24)],
    );
}

#[test]
fn a_placeholder_secret_in_production_is_an_error() {
    check(
        "placeholder-secret-in-production",
        &[
            ("policy.secret-strength", 12, 21),
            ("policy.secret-strength", 13, 21),
            ("policy.secret-in-env", 9, 3),
        ],
    );
}

#[test]
fn wildcard_cors_with_credentials_in_production_is_an_error() {
    check(
        "wildcard-cors-with-credentials",
        &[
            ("policy.cors-credentials-wildcard", 14, 21),
            ("policy.cors-no-wildcard", 14, 21),
            ("policy.cors-https-only", 14, 26),
            ("policy.log-level-not-debug", 9, 14),
            ("policy.registration-requires-code", 16, 46),
            ("policy.backups-configured", 21, 11),
        ],
    );
}

#[test]
fn a_duplicate_key_is_an_error_naming_both_lines() {
    check("duplicate-key", &[("yaml.duplicate_key", 8, 3)]);
}

#[test]
fn a_yaml_syntax_error_points_at_its_line() {
    check("yaml-syntax", &[("yaml.syntax", 6, 1)]);
}

#[test]
fn semantic_checks_report_every_problem_at_its_value() {
    check(
        "semantic",
        &[
            ("value.url", 6, 10),
            ("value.token_source", 7, 12),
            ("value.secret_source", 10, 21),
            ("policy.byok-no-rotation", 11, 68),
            ("value.rotation", 12, 54),
            ("value.origin", 14, 21),
            ("value.origin", 14, 48),
            ("value.retention", 18, 15),
            ("value.retention", 19, 36),
            ("value.keep", 23, 18),
            ("waiver.unknown_rule", 25, 13),
        ],
    );
}

#[test]
fn text_output_shows_the_line_with_a_caret() {
    let (code, _, stderr) = run(tool(&fixture("specs")).args(["validate", "misspelled-key.yaml"]));
    assert_eq!(code, 3);
    assert!(stderr.contains("--> misspelled-key.yaml:5:3"), "{stderr}");
    // The line's shape, never its value: any value may be a secret.
    assert!(stderr.contains("5 |   env_fil: <value>"), "{stderr}");
    assert!(!stderr.contains("custom/.env"), "{stderr}");
    assert!(stderr.contains("  |   ^"), "{stderr}");
}

#[test]
fn every_example_validates() {
    let examples = repo().join("examples");
    for file in [
        "quickstart/tldw-ops.yaml",
        "environments/dev.yaml",
        "environments/staging.yaml",
        "environments/prod.yaml",
        "hardened-prod.yaml",
    ] {
        let (code, _, stderr) = run(tool(&examples).args(["validate", file]));
        assert_eq!(code, 0, "{file}: {stderr}");
    }
}

#[test]
fn the_hardened_example_passes_every_rule_without_warnings() {
    let (code, value) = validate_json(&repo().join("examples"), "hardened-prod.yaml");
    assert_eq!(code, 0);
    assert_eq!(value["diagnostics"].as_array().unwrap().len(), 0, "{value}");
}

#[test]
fn a_waiver_turns_a_rule_off_and_is_listed() {
    let directory = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("specs/wildcard-cors-with-credentials.yaml"))
        .unwrap()
        + "waivers:\n  - { rule: log-level-not-debug, reason: \"verbose logs while we chase a bug\" }\n";
    std::fs::write(directory.path().join("prod.yaml"), text).unwrap();
    let (_, stdout, _) =
        run(tool(directory.path()).args(["validate", "prod.yaml", "--format", "json"]));
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let waived = value["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "policy.log-level-not-debug")
        .expect("the waived finding is still listed");
    assert_eq!(waived["severity"], "info");
    assert!(
        waived["message"]
            .as_str()
            .unwrap()
            .starts_with("waived (verbose logs while we chase a bug)")
    );
    let (_, _, stderr) = run(tool(directory.path()).args(["validate", "prod.yaml"]));
    assert!(
        stderr.contains("waived rule `log-level-not-debug`"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_file_is_exit_1_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(tool(directory.path()).args(["validate", "absent.yaml"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("absent.yaml"), "{stderr}");
}

#[test]
fn the_committed_schemas_equal_what_the_binary_prints() {
    for (which, file) in [
        ("desired-state", "tldw-ops.schema.json"),
        ("layer", "tldw-ops.layer.schema.json"),
        ("plan", "plan.schema.json"),
    ] {
        let (code, stdout, _) = run(tool(&repo()).args(["schema", which]));
        assert_eq!(code, 0);
        let committed = std::fs::read_to_string(repo().join("schemas").join(file))
            .unwrap_or_else(|_| panic!("schemas/{file} is committed"));
        assert_eq!(
            stdout, committed,
            "schemas/{file} is out of date: run `tldw-ops schema {which} > schemas/{file}`"
        );
    }
}

#[test]
fn usage_errors_have_their_own_exit_code_never_the_drift_code() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["drift", "--detailed-exitcod"][..],
        &["plna"],
        &["plan", "--format", "yaml-ish"],
        &["history", "--limit", "many"],
        &[],
    ] {
        let (code, stdout, stderr) = run(tool(dir.path()).args(args));
        assert_eq!(code, 64, "{args:?}: {stdout}{stderr}");
        assert!(!stderr.is_empty(), "{args:?} explains itself on stderr");
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let (code, stdout, _) = run(tool(dir.path()).args(args));
        assert_eq!(code, 0, "{args:?}");
        assert!(!stdout.is_empty(), "{args:?} prints to stdout");
    }
}

#[test]
fn one_run_reports_every_stage_s_problems_sorted_by_position() {
    // A template error, an unknown key, a wrong type, a bad duration and an out-of-range
    // retention: before, the template error hid the other four and the retention waited for
    // a third run.
    let secret = "hunter2-s3cr3t-value";
    let pg_secret = "pg-password-read-from-env-0123";
    let expected = [
        ("schema.unknown_key", 6, 3),
        ("schema.type", 8, 14),
        ("value.duration", 9, 14),
        ("template.undeclared", 11, 14),
        ("value.retention", 17, 15),
    ];
    let directory = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("specs/all-stages.yaml"),
        directory.path().join("all-stages.yaml"),
    )
    .unwrap();
    let (code, stdout, stderr) = run(tool(directory.path())
        .args(["validate", "all-stages.yaml", "--format", "json"])
        .env("DB_PASSWORD", secret)
        .env("TLDW_PG_PASSWORD", pg_secret));
    assert_eq!(code, 3, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let found = positions(&value);
    let expected: Vec<(String, u64, u64)> = expected
        .iter()
        .map(|(code, line, column)| (code.to_string(), *line, *column))
        .collect();
    assert_eq!(found, expected, "every problem, in file order");
    for diagnostic in value["diagnostics"].as_array().unwrap() {
        assert_eq!(diagnostic["file"], "all-stages.yaml", "{diagnostic}");
    }

    let (text_code, _, text) = run(tool(directory.path())
        .args(["validate", "all-stages.yaml"])
        .env("DB_PASSWORD", secret)
        .env("TLDW_PG_PASSWORD", pg_secret));
    assert_eq!(text_code, 3);
    for (code, line, column) in &expected {
        assert!(
            text.contains(&format!("error[{code}]"))
                && text.contains(&format!("--> all-stages.yaml:{line}:{column}")),
            "{code} at {line}:{column}: {text}"
        );
    }
    assert!(text.contains("(5 errors, 0 warnings)"), "{text}");

    // plan stops on the same five, with the same exit code, before reading any deployment.
    let (plan_code, _, plan) = run(tool(directory.path())
        .args(["plan", "all-stages.yaml"])
        .env("DB_PASSWORD", secret)
        .env("TLDW_PG_PASSWORD", pg_secret));
    assert_eq!(plan_code, 3, "{plan}");
    for (code, line, column) in &expected {
        assert!(
            plan.contains(&format!("error[{code}]"))
                && plan.contains(&format!("all-stages.yaml:{line}:{column}")),
            "plan: {code} at {line}:{column}: {plan}"
        );
    }
    crate::common::assert_no_secret(
        &[secret, pg_secret],
        &[
            ("validate json", &stdout),
            ("validate", &text),
            ("plan", &plan),
        ],
        &[],
    );
}

#[test]
fn a_value_the_schema_refuses_does_not_hide_the_checks_of_the_rest() {
    // Range and value checks run beside a schema error elsewhere, and the refused value is
    // not judged a second time by them.
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("dev.yaml"),
        "apiVersion: tldw-ops/v1\nenvironment: dev\ntarget: { root: /opt/tldw }\ncors:\n  allowed_origins: [https://ok.example.org, 5]\nretention:\n  sessions: 9000d\n  audit_logs: soon\n",
    )
    .unwrap();
    let (code, value) = validate_json(directory.path(), "dev.yaml");
    assert_eq!(code, 3);
    let codes: Vec<String> = positions(&value)
        .into_iter()
        .map(|(code, _, _)| code)
        .collect();
    assert_eq!(
        codes,
        ["schema.type", "value.retention", "value.duration"],
        "{value}"
    );
}

#[test]
fn a_secret_built_value_where_none_may_go_is_refused_once_and_never_quoted() {
    // The value is refused by the template stage; the later stages skip it instead of
    // judging (and quoting) what it rendered to.
    let secret = "hunter2-s3cr3t-value";
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("dev.yaml"),
        "apiVersion: tldw-ops/v1\nenvironment: dev\ntemplate: { secret: [DB_PASSWORD] }\ntarget:\n  root: /opt/tldw\n  service:\n    restart: [systemctl, restart, tldw]\n    timeout: \"{{ env.DB_PASSWORD }}\"\nretention:\n  audit_logs: 7d\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(tool(directory.path())
        .args(["validate", "dev.yaml", "--format", "json"])
        .env("DB_PASSWORD", secret));
    assert_eq!(code, 3, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let codes: Vec<String> = positions(&value)
        .into_iter()
        .map(|(code, _, _)| code)
        .collect();
    assert_eq!(
        codes,
        ["template.secret_outside_resource", "value.retention"],
        "{value}"
    );
    crate::common::assert_no_secret(&[secret], &[("stdout", &stdout), ("stderr", &stderr)], &[]);
}
