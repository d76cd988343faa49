//! Hostile input (issue 11): a desired-state file may come from a pull request, and a saved plan,
//! a `.env` or a layer from anywhere. Templates see only declared variables and never print a
//! secret; every file is read bounded and only when it is a regular file; YAML tags, aliases
//! that expand without bound and non-UTF-8 text are refused at file:line:col.

use std::time::{Duration, Instant};

use crate::common::{ENV_PATH, Site, assert_no_secret, run};

const TOKEN: &str = "admin-token-9f8e7d6c5b4a39281706";
const DB_PASSWORD: &str = "db-password-from-ci-5a4b3c2d1e0f";

fn header(extra: &str) -> String {
    format!("apiVersion: tldw-ops/v1\nenvironment: dev\n{extra}target:\n  root: site\n")
}

fn command(site: &Site, args: &[&str]) -> std::process::Command {
    let mut command = site.command();
    command
        .args(args)
        .env("TLDW_ADMIN_TOKEN", TOKEN)
        .env("TLDW_OPS_VAR_DB_PASSWORD", DB_PASSWORD)
        .env("TLDW_OPS_VAR_DOMAIN", "tldw.example.org");
    command
}

#[test]
fn a_template_reading_the_admin_token_is_refused_unless_declared_and_then_masked_everywhere() {
    let site = Site::new();
    let body = "env:\n  LOG_LEVEL: info\n  PUBLIC_WEB_BASE_URL: \"https://x/{{ env.TLDW_ADMIN_TOKEN }}\"\n";
    site.write_yaml("tldw-ops.yaml", &format!("{}{body}", header("")));
    let mut texts: Vec<(String, String)> = Vec::new();
    // Undeclared: refused where it is used, naming the variable and how to declare it.
    let (code, stdout, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("template.undeclared"), "{stderr}");
    assert!(stderr.contains("env.TLDW_ADMIN_TOKEN"), "{stderr}");
    assert!(stderr.contains("tldw-ops.yaml:7:24"), "{stderr}");
    assert!(stderr.contains("template:"), "{stderr}");
    texts.push(("undeclared stdout".into(), stdout));
    texts.push(("undeclared stderr".into(), stderr));

    // Declared, in a variable and a config value built from a declared secret: the plan
    // shows fingerprints, never the values.
    let declared = format!(
        "{}{body}config:\n  Setup:\n    setup_completed: true\n  Database:\n    backup_label: \"label-{{{{ env.TLDW_OPS_VAR_DB_PASSWORD }}}}\"\n",
        header(
            "template:\n  variables: [TLDW_ADMIN_TOKEN]\n  prefix: TLDW_OPS_VAR_\n  secret: [TLDW_OPS_VAR_DB_PASSWORD]\n"
        )
    );
    site.write_yaml("tldw-ops.yaml", &declared);
    for args in [
        vec!["validate"],
        vec!["plan"],
        vec!["plan", "--format", "json"],
        vec!["plan", "--out", "plan.json"],
        vec!["plan", "--format", "markdown", "--diff"],
        vec!["-vvv", "apply", "--auto-approve"],
        vec!["plan", "--detailed-exitcode"],
        vec!["history", "--format", "json"],
    ] {
        let (code, stdout, stderr) = run(&mut command(&site, &args));
        assert!(
            [0, 2].contains(&code),
            "{args:?} exited {code}: {stdout}\n{stderr}"
        );
        if args == ["plan"] {
            assert!(stdout.contains("env.PUBLIC_WEB_BASE_URL"), "{stdout}");
            assert!(stdout.contains("(sensitive) fp:"), "{stdout}");
            assert!(stdout.contains("config.Database.backup_label"), "{stdout}");
        }
        if args == ["plan", "--detailed-exitcode"] {
            assert_eq!(code, 0, "converged after apply: {stdout}");
        }
        texts.push((format!("{args:?} stdout"), stdout));
        texts.push((format!("{args:?} stderr"), stderr));
    }
    // Apply wrote the real values into the deployment, and only there.
    assert!(site.env_text().contains(TOKEN));
    assert!(site.config_text().contains(DB_PASSWORD));
    let files: Vec<_> = site
        .files_that_must_not_hold_secrets()
        .into_iter()
        .filter(|path| !path.ends_with("config.txt"))
        .collect();
    for expected in ["plan.json", "state.db", "tldw-ops.yaml"] {
        assert!(
            files.iter().any(|path| path.ends_with(expected)),
            "{expected} is scanned"
        );
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    assert_no_secret(&[TOKEN, DB_PASSWORD], &refs, &files);
}

#[test]
fn env_cannot_be_printed_or_iterated_whole() {
    let site = Site::new();
    for (template, code) in [
        ("{{ env }}", "template.env_whole"),
        ("{{ env | string }}", "template.env_whole"),
        (
            "{% for k, v in env|items %}{{ k }}={{ v }} {% endfor %}",
            "template.unsupported",
        ),
        (
            "{% for k in env %}{{ k }} {% endfor %}",
            "template.unsupported",
        ),
    ] {
        let text = format!(
            "{}env:\n  X: \"{template}\"\n",
            header("template: { prefix: TLDW_ }\n")
        );
        site.write_yaml("tldw-ops.yaml", &text);
        let (status, stdout, stderr) = run(&mut command(&site, &["validate"]));
        assert_eq!(status, 3, "{template}: {stdout}\n{stderr}");
        assert!(stderr.contains(code), "{template}: {stderr}");
        assert!(stderr.contains("tldw-ops.yaml:7:6"), "{template}: {stderr}");
        for needle in [TOKEN, DB_PASSWORD, "TLDW_OPS_VAR_DOMAIN", "HOME="] {
            assert!(!stdout.contains(needle), "{template}: {stdout}");
            assert!(!stderr.contains(needle), "{template}: {stderr}");
        }
    }
}

fn billion_laughs() -> String {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let items = vec![format!("*a{}", level - 1); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text
}

#[test]
fn a_billion_laughs_is_refused_quickly() {
    let site = Site::new();
    site.write_yaml("tldw-ops.yaml", &billion_laughs());
    let started = Instant::now();
    let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
    let elapsed = started.elapsed();
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("load.limit"), "{stderr}");
    assert!(stderr.contains("MAX_YAML_NODES"), "{stderr}");
    assert!(stderr.contains("tldw-ops.yaml:"), "{stderr}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn extends_and_from_file_of_dev_zero_are_refused_naming_the_file() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("extends: /dev/zero\n{}", header("")),
    );
    let started = Instant::now();
    let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("load.limit"), "{stderr}");
    assert!(
        stderr.contains("/dev/zero is a character device, not a regular file"),
        "{stderr}"
    );
    assert!(stderr.contains("tldw-ops.yaml:1:10"), "{stderr}");

    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{}secrets:\n  values:\n    API_KEY_PEPPER: {{ from_file: /dev/zero }}\n",
            header("")
        ),
    );
    // validate refuses it as plan does, at the `from_file` value, not only at plan time.
    for verb in ["validate", "plan"] {
        let (code, stdout, stderr) = run(&mut command(&site, &[verb]));
        assert_eq!(code, 3, "{verb}: {stdout}\n{stderr}");
        assert!(
            stderr.contains(
                "error[secret.file_refused]: secret file refused: /dev/zero is a character device, not a regular file"
            ),
            "{verb}: {stderr}"
        );
        assert!(stderr.contains("tldw-ops.yaml:"), "{verb}: {stderr}");
    }
    // A FIFO would block a reader for ever: refused by its type, never opened.
    let fifo = site.path().join("pepper.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{}secrets:\n  values:\n    API_KEY_PEPPER: {{ from_file: pepper.fifo }}\n",
            header("")
        ),
    );
    let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("pepper.fifo is a FIFO, not a regular file"),
        "{stderr}"
    );
    // A secret file over the limit names the limit.
    std::fs::write(site.path().join("pepper.txt"), vec![b'p'; 64 * 1024 + 1]).unwrap();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{}secrets:\n  values:\n    API_KEY_PEPPER: {{ from_file: pepper.txt }}\n",
            header("")
        ),
    );
    for verb in ["validate", "plan"] {
        let (code, stdout, stderr) = run(&mut command(&site, &[verb]));
        assert_eq!(code, 3, "{verb}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("pepper.txt is larger than the limit of 64 KiB"),
            "{verb}: {stderr}"
        );
    }
    // An absent file is not an error for validate: CI runners often lack the secrets.
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{}secrets:\n  values:\n    API_KEY_PEPPER: {{ from_file: absent.txt }}\n",
            header("")
        ),
    );
    let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn an_oversized_env_file_is_refused_naming_the_file_and_the_limit() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{}env:\n  LOG_LEVEL: info\n", header("")),
    );
    let env = std::fs::OpenOptions::new()
        .append(true)
        .open(site.path().join(ENV_PATH))
        .unwrap();
    env.set_len(8 * 1024 * 1024 + 1).unwrap();
    let (code, stdout, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(".env is larger than the limit of 8 MiB"),
        "{stderr}"
    );
}

#[test]
fn an_oversized_saved_plan_is_refused_naming_the_limit() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{}env:\n  LOG_LEVEL: info\n", header("")),
    );
    let plan = std::fs::File::create(site.path().join("plan.json")).unwrap();
    plan.set_len(32 * 1024 * 1024 + 1).unwrap();
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["apply", "plan.json", "--auto-approve"],
    ));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("plan.json is larger than the limit of 32 MiB"),
        "{stderr}"
    );
}

#[test]
fn yaml_tags_are_refused_at_their_location() {
    let site = Site::new();
    for (value, tag) in [
        ("!secret hunter2-pasted-value", "!secret"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!str 12", "!!str"),
    ] {
        site.write_yaml(
            "tldw-ops.yaml",
            &format!("{}env:\n  LOG_LEVEL: {value}\n", header("")),
        );
        let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
        assert_eq!(code, 3, "{value}: {stdout}\n{stderr}");
        assert!(stderr.contains("yaml.tag"), "{stderr}");
        assert!(stderr.contains(&format!("`{tag}`")), "{stderr}");
        assert!(stderr.contains("tldw-ops.yaml:6:14"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn non_utf8_yaml_is_refused_at_the_line_and_column_of_the_first_bad_byte() {
    let site = Site::new();
    let mut bytes = header("").into_bytes();
    bytes.extend_from_slice(b"env:\n  LOG_LEVEL: inf\xff\n");
    std::fs::write(site.path().join("tldw-ops.yaml"), bytes).unwrap();
    let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("load.not_utf8"), "{stderr}");
    assert!(stderr.contains("tldw-ops.yaml:6:17"), "{stderr}");
    assert!(stderr.contains("line 6, column 17"), "{stderr}");
}

#[test]
fn a_yaml_syntax_error_never_echoes_the_line_value() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            "{}env:\n  JWT_SECRET_KEY: \"s3cr3t-pasted-{{unterminated\n  LOG_LEVEL: [info\n",
            header("")
        ),
    );
    let (code, stdout, stderr) = run(&mut command(&site, &["validate"]));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("yaml.syntax"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}

#[test]
fn the_actor_falls_back_to_the_uid_name_without_user_or_logname() {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{}env:\n  LOG_LEVEL: info\n", header("")),
    );
    let (code, _, stderr) = run(command(&site, &["apply", "--auto-approve"])
        .env_remove("USER")
        .env_remove("LOGNAME"));
    assert_eq!(code, 0, "{stderr}");
    let (_, stdout, _) = run(&mut command(&site, &["history", "--format", "json"]));
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let user = value["applies"][0]["user"].as_str().unwrap().to_string();
    let expected = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    assert_ne!(user, "unknown");
    assert_eq!(user, expected);
}

#[test]
fn the_test_hooks_are_honoured_by_this_test_build() {
    // The e2e binary is built with `test-hooks`; a release build ignores the variables (the
    // settings unit tests hold that half).
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{}env:\n  LOG_LEVEL: debug\n", header("")),
    );
    let (code, stdout, stderr) =
        run(command(&site, &["apply", "--auto-approve"]).env("TLDW_OPS_FAULT", "fail:0"));
    assert_eq!(code, 6, "{stdout}\n{stderr}");
}

#[test]
fn the_salt_and_apply_id_hooks_are_honoured_by_this_test_build() {
    // `.ci/hooks-compiled-out` checks that a build without `test-hooks` ignores both, by the
    // state id this salt gives; here the test build must honour them.
    let zero_salt = "0".repeat(64);
    let state_id = &tldw_ops::secrets::sha256_hex(&[0u8; 32])[..16];
    assert_eq!(
        state_id, "66687aadf862bd77",
        "the value .ci/hooks-compiled-out names"
    );
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!("{}env:\n  LOG_LEVEL: debug\n", header("")),
    );
    let (code, stdout, stderr) = run(command(&site, &["apply", "--auto-approve"])
        .env("TLDW_OPS_SALT", &zero_salt)
        .env("TLDW_OPS_APPLY_ID", "injected-apply-id"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (_, stdout, _) = run(&mut command(&site, &["history", "--format", "json"]));
    let history: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(history["applies"][0]["id"], "injected-apply-id", "{stdout}");
    // The salt is the store's from its first open on: a later salt changes nothing.
    let (_, stdout, _) =
        run(command(&site, &["plan", "--format", "json"]).env("TLDW_OPS_SALT", "1".repeat(64)));
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["state_id"], state_id, "{stdout}");
}
