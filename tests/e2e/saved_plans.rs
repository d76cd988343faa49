//! Saved plans away from their directory: `apply /abs/plan.json` from elsewhere finds the YAML
//! the plan was made from, and `show` reads plan files and shows an apply's plan once.

use crate::common::{run, tool};
use crate::plan::{FROM_ENV_SECRET, command, site};

#[test]
fn a_saved_plan_applied_from_another_directory_finds_its_desired_state_file() {
    let site = site("");
    let (code, _, stderr) = run(&mut command(&site, &["plan", "--out", "plan.json"]));
    assert_eq!(code, 0, "{stderr}");
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = site.path().join("plan.json");
    let (code, stdout, stderr) = run(tool(elsewhere.path())
        .env("TEST_PG_PASSWORD", FROM_ENV_SECRET)
        .args(["apply", plan.to_str().unwrap(), "--auto-approve"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        !elsewhere.path().join(".tldw-ops").exists(),
        "no state store made in the working directory"
    );
    assert_eq!(
        crate::common::env_value(&site.env_text(), "LOG_LEVEL").as_deref(),
        Some("info"),
        "applied"
    );
    let (code, _, stderr) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 0, "converged: {stderr}");
}

#[test]
fn a_plan_saved_into_another_directory_is_applied_from_anywhere() {
    let site = site("");
    // The directories do not exist yet: `plan --out` makes them.
    let (code, _, stderr) = run(&mut command(
        &site,
        &["plan", "--out", "plans/pr 12/plan.json"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("apply it with: tldw-ops apply 'plans/pr 12/plan.json'"),
        "the command to run, quoted for the shell: {stderr}"
    );
    let plan = site.path().join("plans/pr 12/plan.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(
        saved["file"], "../../tldw-ops.yaml",
        "recorded from the plan file's directory"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(tool(elsewhere.path())
        .env("TEST_PG_PASSWORD", FROM_ENV_SECRET)
        .args(["apply", plan.to_str().unwrap(), "--auto-approve"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        !elsewhere.path().join(".tldw-ops").exists(),
        "no state store made in the working directory"
    );
    let (code, _, stderr) = run(&mut command(&site, &["plan", "--detailed-exitcode"]));
    assert_eq!(code, 0, "converged: {stderr}");
}

#[test]
fn a_plan_that_cannot_be_written_leaves_no_directory_behind() {
    let site = site("");
    std::fs::write(
        site.path().join("blocker"),
        "a file where a directory would go\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&mut command(
        &site,
        &["plan", "--out", "blocker/x/plan.json"],
    ));
    assert_eq!(code, 1, "{stderr}");
    // The directory can be made but the file cannot (a name over the file system's limit):
    // the directory made for it goes again.
    let too_long = format!("new/{}.json", "p".repeat(300));
    let (code, _, stderr) = run(&mut command(&site, &["plan", "--out", &too_long]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        !site.path().join("new").exists(),
        "nothing half-made: {stderr}"
    );
}

#[test]
fn a_saved_plan_whose_file_is_nowhere_names_where_it_looked() {
    let site = site("");
    let (code, _, stderr) = run(&mut command(&site, &["plan", "--out", "plans/plan.json"]));
    assert_eq!(code, 0, "{stderr}");
    std::fs::rename(
        site.path().join("tldw-ops.yaml"),
        site.path().join("moved.yaml"),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = site.path().join("plans/plan.json");
    let (code, _, stderr) =
        run(tool(elsewhere.path()).args(["apply", plan.to_str().unwrap(), "--auto-approve"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("pass it with --file"), "{stderr}");
}

#[test]
fn show_reads_a_plan_file_as_text_and_as_json() {
    let site = site("");
    let (code, _, stderr) = run(&mut command(&site, &["plan", "--out", "plan.json"]));
    assert_eq!(code, 0, "{stderr}");
    let saved = std::fs::read_to_string(site.path().join("plan.json")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = site.path().join("plan.json");
    let (code, stdout, stderr) = run(tool(elsewhere.path()).args(["show", plan.to_str().unwrap()]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("tldw-ops plan for environment dev"),
        "{stdout}"
    );
    assert!(stdout.contains("+ env.LOG_LEVEL = \"info\""), "{stdout}");
    assert!(stdout.contains("from     tldw-ops.yaml"), "{stdout}");
    assert!(stdout.contains("Plan: "), "{stdout}");
    let (code, stdout, stderr) = run(&mut command(
        &site,
        &["show", "plan.json", "--format", "json"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, saved, "the plan file itself");
    let (code, _, stderr) = run(&mut command(&site, &["show", "missing.json"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read plan missing.json"), "{stderr}");
}

#[test]
fn show_of_an_apply_has_one_header_and_one_list_of_steps() {
    let site = site("");
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let (_, stdout, _) = run(&mut command(&site, &["history", "--format", "json"]));
    let history: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = history["applies"][0]["id"].as_str().unwrap().to_string();
    let (code, stdout, stderr) = run(&mut command(&site, &["show", &id]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("apply {id}")), "{stdout}");
    assert!(
        !stdout.contains("tldw-ops plan for environment"),
        "no second header: {stdout}"
    );
    assert_eq!(stdout.matches("Steps:").count(), 1, "{stdout}");
    assert!(stdout.contains("Changes:"), "{stdout}");
    assert!(stdout.contains("+ env.LOG_LEVEL = \"info\""), "{stdout}");
    assert!(!stdout.contains("\n\n\n"), "{stdout}");
}
