//! The promotion gate: prod takes shared layers only after staging applied the same layers,
//! passed its health gates and kept them for the soak time; `--override-promotion` records why
//! it was bypassed. The clock is fixed with TLDW_OPS_NOW.

use crate::common::run;
use crate::environments::Environments;
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

pub const T0: &str = "2026-11-26T03:00:00Z";
pub const T0_PLUS_30M: &str = "2026-11-26T03:30:00Z";
pub const T0_PLUS_1H: &str = "2026-11-26T04:00:00Z";
pub const T0_PLUS_2H: &str = "2026-11-26T05:00:00Z";

pub const PROD: &str = "promotion: { from: staging, soak: 1h }\n\
                        waivers: [{ rule: production-flag, reason: a test deployment }]\n";

/// staging and prod over one base, both with health gates on the fake server.
pub fn staging_and_prod(fake: &FakeTldw, state: Option<String>) -> Environments {
    let environments = Environments::new(state);
    environments.add(
        "staging",
        "config:\n  AuthNZ:\n    rate_limit_per_minute: 120\n",
        Some(fake),
    );
    environments.add("prod", PROD, Some(fake));
    environments
}

pub fn applies(environments: &Environments, environment: &str) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = run(&mut environments.command(&[
        "history",
        "--format",
        "json",
        "--file",
        "prod.yaml",
        "--environment",
        environment,
    ]));
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    value["applies"].as_array().unwrap().clone()
}

pub fn apply_at(environments: &Environments, now: &str, file: &str) -> (i32, String) {
    let (code, _, stderr) = run(&mut environments.at(now, &["apply", file, "--auto-approve"]));
    (code, stderr)
}

#[test]
fn prod_is_refused_while_staging_has_never_applied_and_nothing_is_journaled() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    let before = environments.env_text("prod");
    let (code, stderr) = apply_at(&environments, T0, "prod.yaml");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("error[policy.promotion]"), "{stderr}");
    assert!(
        stderr.contains("staging has no successful apply"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> prod.yaml:"),
        "points at the rule: {stderr}"
    );
    assert!(stderr.contains("--override-promotion"), "{stderr}");
    assert_eq!(environments.env_text("prod"), before);
    assert!(
        applies(&environments, "prod").is_empty(),
        "refused before the journal"
    );
}

#[test]
fn prod_is_refused_when_staging_applied_other_shared_layers() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    let (code, stderr) = apply_at(&environments, T0, "staging.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("health gates passed"), "{stderr}");
    // The shared layer changes after staging applied it.
    let base = std::fs::read_to_string(environments.path().join("base.yaml")).unwrap();
    environments.write(
        "base.yaml",
        &base.replace("LOG_LEVEL: info", "LOG_LEVEL: warning"),
    );
    let (code, stderr) = apply_at(&environments, T0_PLUS_2H, "prod.yaml");
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("staging last applied other shared layers"),
        "{stderr}"
    );
    assert!(stderr.contains("which staging never applied"), "{stderr}");
    // Staging takes the new layers; once they soaked, prod may have them.
    assert_eq!(apply_at(&environments, T0_PLUS_2H, "staging.yaml").0, 0);
    let (code, stderr) = apply_at(&environments, "2026-11-26T06:00:00Z", "prod.yaml");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn prod_waits_for_the_soak_and_then_takes_exactly_what_staging_ran() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    assert_eq!(apply_at(&environments, T0, "staging.yaml").0, 0);
    let (code, stderr) = apply_at(&environments, T0_PLUS_30M, "prod.yaml");
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "30m of the 1h soak; prod may take them from 2026-11-26 04:00:00 UTC (in 30m)"
        ),
        "{stderr}"
    );
    let (code, stderr) = apply_at(&environments, T0_PLUS_1H, "prod.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("promotion: staging has run these shared layers healthy"),
        "{stderr}"
    );
    let staging = applies(&environments, "staging");
    let prod = applies(&environments, "prod");
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0]["shared_hash"], staging[0]["shared_hash"]);
    assert!(prod[0]["shared_hash"].is_string());
    assert_eq!(prod[0]["override_reason"], serde_json::Value::Null);
}

#[test]
fn staging_without_health_gates_cannot_promote() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = Environments::new(None);
    environments.add("staging", "", None);
    environments.add("prod", PROD, Some(&fake));
    assert_eq!(apply_at(&environments, T0, "staging.yaml").0, 0);
    let (code, stderr) = apply_at(&environments, T0_PLUS_2H, "prod.yaml");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no health gate ran"), "{stderr}");
    assert!(stderr.contains("target.service.health"), "{stderr}");
}

#[test]
fn an_override_applies_anyway_and_records_its_reason() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    let (code, _, stderr) = run(&mut environments.at(
        T0,
        &[
            "apply",
            "prod.yaml",
            "--auto-approve",
            "--override-promotion",
            "hotfix for incident 42",
        ],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("promotion gate overridden: staging has no successful apply"),
        "{stderr}"
    );
    let prod = applies(&environments, "prod");
    assert_eq!(prod[0]["override_reason"], "hotfix for incident 42");
    let id = prod[0]["id"].as_str().unwrap();
    let (code, stdout, _) = run(&mut environments.command(&["show", id, "--file", "prod.yaml"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("override hotfix for incident 42"),
        "{stdout}"
    );
    let (_, stdout, _) =
        run(&mut environments.command(&["show", id, "--file", "prod.yaml", "--format", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["apply"]["override_reason"], "hotfix for incident 42");

    // An empty reason is refused.
    let (code, _, stderr) = run(&mut environments.at(
        T0,
        &[
            "apply",
            "prod.yaml",
            "--auto-approve",
            "--override-promotion",
            " ",
        ],
    ));
    assert_eq!(code, 64, "a usage error: {stderr}");
    assert!(stderr.contains("give a reason"), "{stderr}");
}

#[test]
fn a_saved_plan_for_prod_is_gated_by_the_layers_it_carries() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    let (code, _, stderr) =
        run(&mut environments.at(T0, &["plan", "prod.yaml", "--out", "prod.json"]));
    assert_eq!(code, 0, "plan itself is not gated: {stderr}");
    assert_eq!(apply_at(&environments, T0, "staging.yaml").0, 0);
    let (code, stderr) = apply_at(&environments, T0_PLUS_30M, "prod.json");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("error[policy.promotion]"), "{stderr}");
    let (code, stderr) = apply_at(&environments, T0_PLUS_2H, "prod.json");
    assert_eq!(code, 0, "{stderr}");
}

fn promote(environments: &Environments, now: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["promote", "--from", "staging", "--to", "prod"];
    all.extend_from_slice(args);
    run(&mut environments.at(now, &all))
}

#[test]
fn promote_explains_what_prod_would_receive_and_whether_the_gate_passes() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    let (code, stdout, stderr) = promote(&environments, T0, &[]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("promote staging (staging.yaml) -> prod (prod.yaml)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refuses: staging has no successful apply"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  + env.LOG_LEVEL = info  [base.yaml:4:14; staging: not managed]"),
        "{stdout}"
    );
    assert!(
        !environments.path().join(".tldw-ops").exists(),
        "promote created no store"
    );

    assert_eq!(apply_at(&environments, T0, "staging.yaml").0, 0);
    assert_eq!(apply_at(&environments, T0_PLUS_1H, "prod.yaml").0, 0);
    let (code, stdout, _) = promote(&environments, T0_PLUS_1H, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("nothing: prod already has every shared value"),
        "{stdout}"
    );

    // A change to the shared layer goes to staging first.
    let base = std::fs::read_to_string(environments.path().join("base.yaml")).unwrap();
    environments.write(
        "base.yaml",
        &base.replace("LOG_LEVEL: info", "LOG_LEVEL: warning"),
    );
    assert_eq!(apply_at(&environments, T0_PLUS_2H, "staging.yaml").0, 0);
    let prod_before = environments.env_text("prod");
    let (code, stdout, _) = promote(&environments, "2026-11-26T05:30:00Z", &[]);
    assert_eq!(code, 3, "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.contains("env.LOG_LEVEL"))
        .unwrap();
    assert!(
        line.starts_with("  ~ env.LOG_LEVEL = warning (was fp:")
            && line.ends_with("[base.yaml:4:14; staging: same]"),
        "{line}"
    );
    assert!(stdout.contains("30m of the 1h soak"), "{stdout}");
    let (code, stdout, _) = promote(&environments, "2026-11-26T06:00:00Z", &["--format", "json"]);
    assert_eq!(code, 0, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["gate"]["passes"], true);
    assert_eq!(report["gate"]["detail"]["verdict"], "passes");
    assert_eq!(report["receives"].as_array().unwrap().len(), 1);
    assert_eq!(report["receives"][0]["address"], "env.LOG_LEVEL");
    assert_eq!(report["receives"][0]["action"], "update");
    assert_eq!(report["receives"][0]["from_has"], "same");
    assert_eq!(
        report["from_last_applied"]["shared_hash"],
        report["to"]["shared_hash"]
    );
    assert_ne!(
        report["to_last_applied"]["shared_hash"],
        report["to"]["shared_hash"]
    );
    assert_eq!(
        environments.env_text("prod"),
        prod_before,
        "promote changed nothing"
    );
    assert_eq!(applies(&environments, "prod").len(), 1);
    // And the apply agrees with promote.
    assert_eq!(
        apply_at(&environments, "2026-11-26T06:00:00Z", "prod.yaml").0,
        0
    );
}

#[test]
fn promote_shows_where_an_environment_overrides_a_shared_value() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    environments.add(
        "prod",
        &format!("{PROD}env:\n  LOG_LEVEL: warning\n"),
        Some(&fake),
    );
    let (code, stdout, _) = promote(&environments, T0, &["--dir", "."]);
    assert_eq!(code, 3);
    assert!(
        stdout.contains("Where staging and prod resolve the shared layers differently\n  env\n    ~ env.LOG_LEVEL\n        staging  info     [base.yaml:4:14, shared layer]\n        prod     warning  [prod.yaml:"),
        "{stdout}"
    );
}

#[test]
fn promote_names_files_it_cannot_find_or_that_promote_from_elsewhere() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, None);
    let (code, _, stderr) =
        run(&mut environments.command(&["promote", "--from", "qa", "--to", "prod"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no YAML file in . has `environment: qa`"),
        "{stderr}"
    );
    environments.add("qa", "", None);
    let (code, _, stderr) = run(&mut environments.command(&[
        "promote",
        "--from",
        "qa",
        "--to",
        "prod",
        "--from-file",
        "qa.yaml",
        "--to-file",
        "prod.yaml",
    ]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("prod.yaml promotes from default/staging, not from qa"),
        "{stderr}"
    );
}

#[test]
fn the_gate_reads_staging_from_a_shared_postgres_state() {
    let Some((_, url)) = crate::environments::postgres("promotion") else {
        return;
    };
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let environments = staging_and_prod(&fake, Some(url));
    assert_eq!(apply_at(&environments, T0, "staging.yaml").0, 0);
    let (code, stderr) = apply_at(&environments, T0_PLUS_30M, "prod.yaml");
    assert_eq!(code, 3, "{stderr}");
    let (code, stdout, _) = promote(&environments, T0_PLUS_1H, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("salt of the state store postgres://"),
        "{stdout}"
    );
    let (code, stderr) = apply_at(&environments, T0_PLUS_1H, "prod.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert!(!environments.path().join(".tldw-ops/state.db").exists());
}
