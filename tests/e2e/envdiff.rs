//! `tldw-ops envdiff A B`: the differences between two resolved environments, grouped by
//! section, each side with where it is declared, and secrets only as fingerprints.

use crate::common::{assert_no_secret, run};
use crate::environments::{Environments, PG_PASSWORD};

const PROD_PASSWORD: &str = "the-prod-database-password-0123456789xyz";

fn staging_and_prod() -> Environments {
    let environments = Environments::new(None);
    environments.add(
        "staging",
        "env:\n  LOG_LEVEL: debug\n  ENABLE_OPENAPI: true\n",
        None,
    );
    environments.add(
        "prod",
        "secrets:\n  values:\n    POSTGRES_PASSWORD: { from_env: PROD_PG_PASSWORD }\n\
         config:\n  AuthNZ:\n    rate_limit_per_minute: 30\n\
         waivers: [{ rule: production-flag, reason: a test deployment }]\n",
        None,
    );
    environments
}

fn envdiff(environments: &Environments, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["envdiff", "staging.yaml", "prod.yaml"];
    all.extend_from_slice(args);
    run(environments
        .command(&all)
        .env("PROD_PG_PASSWORD", PROD_PASSWORD))
}

#[test]
fn envdiff_groups_differences_by_section_and_says_who_declares_what() {
    let environments = staging_and_prod();
    let (code, stdout, stderr) = envdiff(&environments, &[]);
    assert_eq!(code, 0, "{stderr}");
    let expected_lines = [
        "envdiff staging (staging.yaml) -> prod (prod.yaml)",
        "env",
        "  < env.ENABLE_OPENAPI  (only staging)",
        "      staging  true  [staging.yaml:7:19]",
        "  ~ env.LOG_LEVEL",
        "      staging  debug  [staging.yaml:6:14]",
        "      prod     info   [base.yaml:4:14, shared layer]",
        "secrets",
        "  ~ secret.POSTGRES_PASSWORD",
        "config [AuthNZ]",
        "  > config.AuthNZ.rate_limit_per_minute  (only prod)",
        "      prod     30  [prod.yaml:10:28]",
        "target",
        "  ~ target.root",
        "      staging  staging-site/root  [staging.yaml:4:9]",
    ];
    for line in expected_lines {
        assert!(
            stdout.lines().any(|found| found == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    // Sections come in the order of a desired-state file.
    let position = |text: &str| stdout.find(&format!("\n{text}\n")).unwrap();
    assert!(position("env") < position("secrets"));
    assert!(position("secrets") < position("config [AuthNZ]"));
    assert!(position("config [AuthNZ]") < position("target"));
    assert!(
        stdout.contains("differ: 3 changed, 1 only in staging, 3 only in prod;"),
        "{stdout}"
    );
    let (code, _, _) = envdiff(&environments, &["--detailed-exitcode"]);
    assert_eq!(code, 2);
    let (code, stdout, _) = run(&mut environments.command(&[
        "envdiff",
        "staging.yaml",
        "staging.yaml",
        "--detailed-exitcode",
    ]));
    assert_eq!(code, 0);
    assert!(stdout.contains("resolve the same"), "{stdout}");
}

#[test]
fn envdiff_json_marks_status_layer_and_location_of_each_side() {
    let environments = staging_and_prod();
    let (code, stdout, stderr) = envdiff(&environments, &["--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["a"]["environment"], "staging");
    assert_eq!(value["b"]["shared_files"], serde_json::json!(["base.yaml"]));
    assert_eq!(value["a"]["shared_hash"], value["b"]["shared_hash"]);
    assert_eq!(value["differs"], true);
    let env = &value["sections"][0];
    assert_eq!(env["section"], "env");
    let log_level = env["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["address"] == "env.LOG_LEVEL")
        .unwrap();
    assert_eq!(log_level["status"], "differs");
    assert_eq!(log_level["a"]["shown"], "debug");
    assert_eq!(log_level["a"]["layer"], "environment");
    assert_eq!(log_level["b"]["layer"], "shared");
    assert_eq!(log_level["b"]["declared_at"], "base.yaml:4:14");
    assert_eq!(env["entries"][0]["status"], "only_a");
    assert!(env["entries"][0].get("b").is_none());
}

#[test]
fn envdiff_never_shows_a_secret_and_uses_the_state_salt_when_there_is_a_store() {
    let environments = staging_and_prod();
    // Without a store: a salt made for this run, so two runs fingerprint differently.
    let (_, first, _) = envdiff(&environments, &[]);
    let (_, second, _) = envdiff(&environments, &[]);
    assert!(first.contains("with a salt made for this run"), "{first}");
    let fingerprint = |text: &str, side: &str| -> String {
        let line = text
            .lines()
            .skip_while(|line| !line.contains("secret.POSTGRES_PASSWORD"))
            .find(|line| line.trim_start().starts_with(side))
            .unwrap()
            .to_string();
        line[line.find("fp:").unwrap()..][..11].to_string()
    };
    assert_ne!(fingerprint(&first, "prod"), fingerprint(&second, "prod"));
    assert!(
        !environments.path().join(".tldw-ops").exists(),
        "envdiff created no store"
    );

    // With a store, fingerprints are the ones plans show.
    let (code, _, stderr) =
        run(&mut environments.command(&["apply", "staging.yaml", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, plan, _) =
        run(&mut environments.command(&["plan", "staging.yaml", "--format", "json"]));
    assert_eq!(code, 0);
    assert!(plan.contains("\"changes\": []"), "{plan}");
    let (_, text, _) = envdiff(&environments, &[]);
    assert!(text.contains("with the salt of the state store"), "{text}");
    let (_, json, stderr) = envdiff(&environments, &["--format", "json"]);
    assert_eq!(
        fingerprint(&text, "staging"),
        fingerprint(&envdiff(&environments, &[]).1, "staging"),
        "the store's salt is stable"
    );
    let (_, shown, _) =
        run(&mut environments.command(&["history", "--file", "staging.yaml", "--format", "json"]));
    let id = serde_json::from_str::<serde_json::Value>(&shown).unwrap()["applies"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, show, _) = run(&mut environments.command(&["show", &id, "--file", "staging.yaml"]));
    assert!(
        show.contains(&format!(
            "secret.POSTGRES_PASSWORD = {}",
            fingerprint(&text, "staging").replace("fp:", "(sensitive) fp:")
        )),
        "envdiff's fingerprint is the one the applied plan showed:\n{show}\n{text}"
    );
    assert_no_secret(
        &[PG_PASSWORD, PROD_PASSWORD],
        &[
            ("text", &text),
            ("json", &json),
            ("stderr", &stderr),
            ("first", &first),
        ],
        &[],
    );
}
