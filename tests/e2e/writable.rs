//! Whatever apply would refuse to write, `validate` and `plan` refuse first, at the YAML line
//! (issue 10, items 3 and 4): values no `.env` quoting or config.txt option carries back
//! unchanged, config.txt keys configparser would merge, and sections it would keep apart.

use crate::common::{Site, assert_no_secret, run};

const HEADER: &str = "apiVersion: tldw-ops/v1\nenvironment: dev\ntarget:\n  root: site\n";

/// (code, line, column, message) of one diagnostic.
type Found = (String, u64, u64, String);

/// Every diagnostic `validate --format json` reports.
fn diagnostics(site: &Site) -> (i32, Vec<Found>, String) {
    let (code, stdout, stderr) = run(site.command().args(["validate", "--format", "json"]));
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("JSON diagnostics");
    let found = value["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|diagnostic| {
            (
                diagnostic["code"].as_str().unwrap().to_string(),
                diagnostic["line"].as_u64().unwrap_or(0),
                diagnostic["column"].as_u64().unwrap_or(0),
                diagnostic["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, found, stderr)
}

/// Every class of value the `.env` writer refuses, written as the YAML would hold it.
const ENV_CLASSES: &[(&str, &str)] = &[
    ("line feed", r#""one\ntwo""#),
    ("carriage return", r#""one\rtwo""#),
    ("unicode line separator", r#""one\u2028two""#),
    ("vertical tab", r#""one\vtwo""#),
    ("next line", r#""one\Ntwo""#),
    ("NUL", r#""one\0two""#),
    ("interpolation", r#""pre${HOME}post""#),
    ("both quote kinds with a space", r#""it's \"quoted\"""#),
    ("backslash before whitespace", r#""back\\ slash""#),
    (
        "template that makes interpolation",
        r#""{{ '$' ~ '{' }}HOME}""#,
    ),
    (
        "template that makes a line break",
        r#""{{ 'a' }}\n{{ 'b' }}""#,
    ),
];

#[test]
fn every_value_class_the_env_writer_refuses_is_refused_by_validate_at_its_line() {
    for (class, yaml) in ENV_CLASSES {
        let site = Site::new();
        site.write_yaml(
            "tldw-ops.yaml",
            &format!("{HEADER}env:\n  LOG_LEVEL: info\n  CUSTOM_VALUE: {yaml}\n"),
        );
        let (code, found, _) = diagnostics(&site);
        assert_eq!(code, 3, "{class}: {found:?}");
        assert!(
            found
                .iter()
                .any(|(code, line, column, _)| code == "value.unwritable"
                    && *line == 7
                    && *column == 17),
            "{class}: expected value.unwritable at 7:17, found {found:?}"
        );
        // The plan refuses it too, before anything is written.
        let before = site.env_text();
        let (code, _, stderr) = run(site.command().arg("plan"));
        assert_eq!(code, 3, "{class}: {stderr}");
        let (code, _, stderr) = run(site.command().args(["apply", "--auto-approve"]));
        assert_eq!(code, 3, "{class}: {stderr}");
        assert_eq!(site.env_text(), before, "{class}: nothing is written");
    }
}

#[test]
fn the_values_the_writer_can_carry_pass() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{HEADER}env:\n  A_SPACE: \"two words\"\n  A_QUOTE: \"it's\"\n  A_BACKSLASH: 'C:\\dir'\n  \
             A_DOLLAR: \"$HOME\"\n"
        ),
    );
    let (code, found, stderr) = diagnostics(&site);
    assert_eq!(code, 0, "{found:?} {stderr}");
    let (code, _, stderr) = run(site.command().args(["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn config_values_configparser_would_change_are_refused_at_their_line() {
    for (class, yaml) in [
        ("leading space", r#"" padded""#),
        ("trailing tab", r#""padded\t""#),
        ("line feed", r#""one\ntwo""#),
        ("no-break space at the end", r#""padded\u00a0""#),
    ] {
        let site = Site::new();
        site.write_yaml(
            "tldw-ops.yaml",
            &format!("{HEADER}config:\n  Server:\n    custom_option: {yaml}\n"),
        );
        let (code, found, _) = diagnostics(&site);
        assert_eq!(code, 3, "{class}: {found:?}");
        assert!(
            found
                .iter()
                .any(|(code, line, column, _)| code == "value.unwritable"
                    && *line == 7
                    && *column == 20),
            "{class}: expected value.unwritable at 7:20, found {found:?}"
        );
    }
}

#[test]
fn a_secret_value_the_writer_would_refuse_is_refused_without_showing_it() {
    let site = Site::new();
    let secret = "Sup3rSecretValue-with-a\nline-break-0123456789";
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{HEADER}secrets:\n  values:\n    JWT_SECRET_KEY:\n      from_env: TEST_JWT_SOURCE\n"
        ),
    );
    let (code, stdout, stderr) = run(site
        .command()
        .env("TEST_JWT_SOURCE", secret)
        .args(["validate", "--format", "json"]));
    assert_eq!(code, 3, "{stdout} {stderr}");
    assert!(stdout.contains("value.unwritable"), "{stdout}");
    assert!(stdout.contains("JWT_SECRET_KEY"), "{stdout}");
    let (code, plan_out, plan_err) = run(site.command().env("TEST_JWT_SOURCE", secret).arg("plan"));
    assert_eq!(code, 3, "{plan_err}");
    assert_no_secret(
        &["Sup3rSecretValue", "line-break-0123456789"],
        &[
            ("validate stdout", &stdout),
            ("validate stderr", &stderr),
            ("plan stdout", &plan_out),
            ("plan stderr", &plan_err),
        ],
        &site.files_that_must_not_hold_secrets(),
    );
}

#[test]
fn config_keys_configparser_would_merge_are_an_error_naming_both_lines() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{HEADER}config:\n  Server:\n    Foo: a\n    foo: b\n"),
    );
    let (code, found, _) = diagnostics(&site);
    assert_eq!(code, 3, "{found:?}");
    let (_, line, column, message) = found
        .iter()
        .find(|(code, ..)| code == "value.config_duplicate")
        .unwrap_or_else(|| panic!("no value.config_duplicate in {found:?}"));
    // BTreeMap order: `Foo` sorts before `foo`, so `foo` is the second.
    assert_eq!((*line, *column), (8, 5), "{message}");
    assert!(
        message.contains("`Foo`") && message.contains(":7:5"),
        "{message}"
    );
}

#[test]
fn a_section_that_differs_from_tldws_only_by_case_is_an_error_with_a_suggestion() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{HEADER}config:\n  setup:\n    setup_completed: true\n"),
    );
    let (code, _, stderr) = run(site.command().arg("validate"));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("value.config_section") && stderr.contains("did you mean `Setup`"),
        "{stderr}"
    );
    let before = site.config_text();
    let (code, _, _) = run(site.command().args(["apply", "--auto-approve"]));
    assert_eq!(code, 3);
    assert_eq!(site.config_text(), before);
}

#[test]
fn a_near_miss_of_a_stock_section_is_a_warning_with_a_suggestion() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{HEADER}config:\n  Servr:\n    custom_option: x\n"),
    );
    let (code, found, _) = diagnostics(&site);
    assert_eq!(code, 0, "{found:?}");
    assert!(
        found
            .iter()
            .any(|(code, line, _, _)| code == "value.config_section" && *line == 6),
        "{found:?}"
    );
}

#[test]
fn a_section_of_the_deployment_differing_only_by_case_stops_the_plan() {
    let site = Site::new();
    let mut text = site.config_text();
    text.push_str("\n[my-plugin]\nenabled = true\n");
    site.set_config_text(&text);
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{HEADER}config:\n  My-Plugin:\n    enabled: false\n"),
    );
    let (code, _, stderr) = run(site.command().arg("validate"));
    assert_eq!(
        code, 0,
        "validate cannot know the deployment's sections: {stderr}"
    );
    let (code, _, stderr) = run(site.command().arg("plan"));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("value.config_section") && stderr.contains("did you mean `my-plugin`"),
        "{stderr}"
    );
    let (code, _, _) = run(site.command().args(["apply", "--auto-approve"]));
    assert_eq!(code, 3);
    assert_eq!(site.config_text(), text, "nothing is written");
}

#[test]
fn a_secret_file_others_can_read_gets_a_warning_at_its_source() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let secret_file = site.path().join("jwt.secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef0123456789\n").unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{HEADER}secrets:\n  values:\n    JWT_SECRET_KEY:\n      from_file: jwt.secret\n"),
    );
    let (code, found, _) = diagnostics(&site);
    assert_eq!(code, 0, "{found:?}");
    let warning = found
        .iter()
        .find(|(code, ..)| code == "secret.file_mode")
        .unwrap_or_else(|| panic!("no secret.file_mode warning in {found:?}"));
    assert_eq!((warning.1, warning.2), (8, 18), "{warning:?}");
    assert!(warning.3.contains("0644"), "{warning:?}");
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, found, _) = diagnostics(&site);
    assert!(
        !found.iter().any(|(code, ..)| code == "secret.file_mode"),
        "{found:?}"
    );
}
