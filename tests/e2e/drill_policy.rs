//! `backup: { drill: 7d }`: restore drills on a schedule. `backup drill --if-due` drills the
//! newest complete set only when the last drill that passed is at least that old, and
//! `backup schedule` prints a second timer that runs it.

use crate::common::{Site, run};

const T0: &str = "2026-12-01T03:00:00Z";

fn at(hours: i64) -> String {
    let start: jiff::Timestamp = T0.parse().unwrap();
    jiff::Timestamp::from_second(start.as_second() + hours * 3_600)
        .unwrap()
        .to_string()
}

fn site(drill: &str) -> Site {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        &format!(
            r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
backup:
  destination: backups
  every: 24h
  include: [config]
  keep: {{ daily: 3 }}
  verify: true
{drill}"#
        ),
    );
    site
}

fn tool(site: &Site, args: &[&str], now: &str) -> (i32, String, String) {
    let mut command = site.command();
    command.args(args).env("TLDW_OPS_NOW", now);
    run(&mut command)
}

fn drills(site: &Site, now: &str) -> usize {
    let (code, stdout, stderr) = tool(site, &["history", "--format", "json"], now);
    assert_eq!(code, 0, "{stderr}");
    let history: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    history["applies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|apply| apply["kind"] == "drill")
        .count()
}

#[test]
fn a_drill_runs_when_due_and_is_skipped_until_the_policy_says_so_again() {
    let site = site("  drill: 7d\n");
    let (code, _, stderr) = tool(&site, &["apply", "--only", "backup", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    // No drill yet: due.
    let (code, stdout, stderr) = tool(&site, &["backup", "drill", "--if-due"], &at(1));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("drill passed"), "{stdout}");
    assert_eq!(drills(&site, &at(1)), 1);
    // A day later the last drill is fresh: nothing is restored, and it says why.
    let (code, stdout, stderr) = tool(&site, &["backup", "drill", "--if-due"], &at(25));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("restore drill not due: the last one passed at 2026-12-01T04:00:00Z (backup.drill: every 7d)"),
        "{stderr}"
    );
    assert_eq!(drills(&site, &at(25)), 1);
    // A week after the first, it is due again.
    let (code, stdout, stderr) = tool(&site, &["backup", "drill", "--if-due"], &at(1 + 7 * 24));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("drill passed"), "{stdout}");
    assert_eq!(drills(&site, &at(1 + 7 * 24)), 2);
    // Without --if-due a drill always runs.
    let (code, _, stderr) = tool(&site, &["backup", "drill"], &at(2 + 7 * 24));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(drills(&site, &at(2 + 7 * 24)), 3);
}

#[test]
fn if_due_without_a_drill_policy_is_an_error_that_names_the_setting() {
    let site = site("");
    let (code, _, stderr) = tool(&site, &["apply", "--only", "backup", "--auto-approve"], T0);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = tool(&site, &["backup", "drill", "--if-due"], &at(1));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--if-due needs `backup.drill`"), "{stderr}");
    assert_eq!(drills(&site, &at(1)), 0);
}

#[test]
fn backup_schedule_adds_a_drill_timer_when_the_policy_has_one() {
    let site = site("  drill: 7d\n");
    let directory = site.path().display().to_string();
    for scheduler in ["systemd", "cron"] {
        let (code, stdout, stderr) = tool(
            &site,
            &[
                "backup",
                "schedule",
                "--print",
                scheduler,
                "--binary",
                "/usr/local/bin/tldw-ops",
            ],
            T0,
        );
        assert_eq!(code, 0, "{stderr}");
        let shown = stdout.replace(&directory, "<DIR>");
        insta::assert_snapshot!(format!("drill_schedule_{scheduler}"), shown);
    }
    // Without `drill`, only the backup timer.
    let site = self::site("");
    let (_, stdout, _) = tool(
        &site,
        &["backup", "schedule", "--print", "systemd", "--binary", "/x"],
        T0,
    );
    assert!(!stdout.contains("drill"), "{stdout}");
}
