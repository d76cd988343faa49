//! The secret lifecycle: generation in tldw's formats, rotation by age with the previous value
//! kept under another name, adoption of secrets tldw-ops did not set, and `secrets status`.

use crate::common::{Site, assert_no_secret, env_value, run};

fn site() -> Site {
    let site = Site::new();
    site.write_yaml(
        "tldw-ops.yaml",
        r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
secrets:
  values:
    JWT_SECRET_KEY: { generate: { length: 64 }, rotate_after: 90d, keep_previous_as: JWT_SECONDARY_SECRET }
    SINGLE_USER_API_KEY: { generate: { format: tldw_api_key }, rotate_after: 30d }
    SESSION_ENCRYPTION_KEY: { generate: { format: fernet } }
"#,
    );
    site
}

fn at(site: &Site, now: &str, args: &[&str]) -> (i32, String, String) {
    run(site.command().args(args).env("TLDW_OPS_NOW", now))
}

#[test]
fn generated_secrets_have_their_formats_and_rotation_keeps_the_previous_value() {
    let site = site();
    let (code, _, stderr) = at(&site, "2026-01-01T00:00:00Z", &["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let text = site.env_text();
    let jwt = env_value(&text, "JWT_SECRET_KEY").unwrap();
    let api_key = env_value(&text, "SINGLE_USER_API_KEY").unwrap();
    let fernet = env_value(&text, "SESSION_ENCRYPTION_KEY").unwrap();
    assert_eq!(jwt.len(), 64);
    assert!(
        jwt.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let (kid, secret) = api_key
        .strip_prefix("tldw_")
        .unwrap()
        .split_once('.')
        .unwrap();
    assert_eq!(kid.len(), 12);
    assert!(kid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(secret.len(), 43);
    assert_eq!(fernet.len(), 44);
    assert!(fernet.ends_with('='));
    assert!(
        env_value(&text, "JWT_SECONDARY_SECRET").is_none(),
        "nothing to keep on first set"
    );

    // 45 days later only the 30-day API key is due.
    let (_, stdout, _) = at(&site, "2026-02-15T00:00:00Z", &["plan"]);
    assert!(stdout.contains("↻ secret.SINGLE_USER_API_KEY"), "{stdout}");
    assert!(stdout.contains("age 45d > 30d (rotate_after)"), "{stdout}");
    assert!(!stdout.contains("secret.JWT_SECRET_KEY"), "{stdout}");

    // 100 days later both rotate; the old JWT key moves to JWT_SECONDARY_SECRET in the same write.
    let (code, _, stderr) = at(&site, "2026-04-11T00:00:00Z", &["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let text = site.env_text();
    let new_jwt = env_value(&text, "JWT_SECRET_KEY").unwrap();
    assert_ne!(new_jwt, jwt);
    assert_eq!(new_jwt.len(), 64);
    assert_eq!(
        env_value(&text, "JWT_SECONDARY_SECRET").as_deref(),
        Some(jwt.as_str())
    );
    let new_api_key = env_value(&text, "SINGLE_USER_API_KEY").unwrap();
    assert_ne!(new_api_key, api_key);
    assert!(new_api_key.starts_with("tldw_"));
    assert_eq!(
        env_value(&text, "SESSION_ENCRYPTION_KEY").as_deref(),
        Some(fernet.as_str()),
        "no rotate_after, no rotation"
    );
    let (code, _, _) = at(
        &site,
        "2026-04-11T00:00:00Z",
        &["plan", "--detailed-exitcode"],
    );
    assert_eq!(code, 0);
}

#[test]
fn a_rotation_that_kept_the_previous_value_can_be_rolled_back() {
    let site = site();
    assert_eq!(
        at(&site, "2026-01-01T00:00:00Z", &["apply", "--auto-approve"]).0,
        0
    );
    let before_rotation = site.env_text();
    let jwt = env_value(&before_rotation, "JWT_SECRET_KEY").unwrap();
    let (code, _, stderr) = at(&site, "2026-04-11T00:00:00Z", &["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let rotated = site.env_text();
    assert_eq!(
        env_value(&rotated, "JWT_SECONDARY_SECRET").as_deref(),
        Some(jwt.as_str())
    );
    // JWT_SECONDARY_SECRET is written by the rotation only; the desired state does not manage
    // it. Rolling back must still see it as it is in the file, not as absent (which would make
    // the rollback plan stale before it starts).
    let (code, stdout, stderr) = at(
        &site,
        "2026-04-11T01:00:00Z",
        &["rollback", "--last", "--auto-approve"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(site.env_text(), before_rotation);
    assert!(env_value(&site.env_text(), "JWT_SECONDARY_SECRET").is_none());
    let new_jwt = env_value(&rotated, "JWT_SECRET_KEY").unwrap();
    assert_no_secret(
        &[jwt.as_str(), new_jwt.as_str()],
        &[("stdout", stdout.as_str()), ("stderr", stderr.as_str())],
        &[],
    );
}

#[test]
fn a_secret_tldw_ops_did_not_set_starts_its_age_at_the_first_apply_that_adopts_it() {
    let site = site();
    let existing = "tldw_0123456789ab.existing-key-set-by-the-operator-by-hand-0000";
    site.set_env_text(&site.env_text().replace(
        "SINGLE_USER_API_KEY=CHANGE_ME_TO_SECURE_API_KEY",
        &format!("SINGLE_USER_API_KEY={existing}"),
    ));
    let (_, stdout, _) = at(&site, "2026-01-01T00:00:00Z", &["secrets", "status"]);
    let row = stdout
        .lines()
        .find(|line| line.starts_with("SINGLE_USER_API_KEY"))
        .unwrap();
    assert!(row.contains("unknown"), "{row}");
    assert_eq!(
        at(&site, "2026-01-01T00:00:00Z", &["apply", "--auto-approve"]).0,
        0
    );
    assert_eq!(
        env_value(&site.env_text(), "SINGLE_USER_API_KEY").as_deref(),
        Some(existing),
        "a good value is kept"
    );
    let (_, stdout, _) = at(
        &site,
        "2026-01-11T00:00:00Z",
        &["secrets", "status", "--format", "json"],
    );
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let row = value["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "SINGLE_USER_API_KEY")
        .unwrap();
    assert_eq!(row["adopted"], true);
    assert_eq!(row["age_days"], 10);
    assert_eq!(row["next_rotation"], "2026-01-31");
    let (_, stdout, _) = at(&site, "2026-02-01T00:00:00Z", &["plan"]);
    assert!(stdout.contains("↻ secret.SINGLE_USER_API_KEY"), "{stdout}");
    assert_no_secret(
        &[existing],
        &[("secrets status", &stdout)],
        &site.files_that_must_not_hold_secrets(),
    );
}

#[test]
fn secrets_status_never_shows_a_value() {
    let site = site();
    assert_eq!(
        at(&site, "2026-01-01T00:00:00Z", &["apply", "--auto-approve"]).0,
        0
    );
    let text = site.env_text();
    let values: Vec<String> = [
        "JWT_SECRET_KEY",
        "SINGLE_USER_API_KEY",
        "SESSION_ENCRYPTION_KEY",
    ]
    .iter()
    .map(|key| env_value(&text, key).unwrap())
    .collect();
    let (code, stdout, stderr) = at(&site, "2026-03-01T00:00:00Z", &["secrets", "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("JWT_SECRET_KEY"), "{stdout}");
    assert!(stdout.contains("fp:"), "{stdout}");
    let (_, json, _) = at(
        &site,
        "2026-03-01T00:00:00Z",
        &["secrets", "status", "--format", "json"],
    );
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    assert_no_secret(
        &refs,
        &[("text", &stdout), ("json", &json), ("stderr", &stderr)],
        &[],
    );
}
