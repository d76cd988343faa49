//! Policy on what apply would leave behind: for every env check of tldw's production preflight,
//! a deployment the preflight flags, and `plan` flags it too, at the deployment file's line
//! when the YAML does not declare the value. No value reaches the output.

use std::os::unix::fs::PermissionsExt;

use super::common::{ENV_PATH, Site, run};

const JWT: &str = "jwt-0123456789abcdefghijklmnopqrstuvwxyz-A";
const SESSION: &str = "sess-0123456789abcdefghijklmnopqrstuvwxyz-B";
const PG: &str = "pg-0123456789abcdefghijklmnopqrstuvwxyz-CCC";
const REDIS: &str = "rd-0123456789abcdefghijklmnopqrstuvwxyz-DDD";

/// A reference (Compose) production deployment that passes every check.
fn reference_env() -> String {
    format!(
        "# reference deployment\n\
         TLDW_PUBLIC_DOMAIN=tldw.research.org\n\
         TLDW_ACME_EMAIL=ops@research.org\n\
         SESSION_ENCRYPTION_KEY={SESSION}\n\
         POSTGRES_USER=tldw\n\
         POSTGRES_DB=tldw_users\n\
         POSTGRES_PASSWORD={PG}\n\
         DATABASE_URL=postgresql://tldw:{PG}@postgres:5432/tldw_users\n\
         REDIS_PASSWORD={REDIS}\n\
         REDIS_URL=redis://:{REDIS}@redis:6379/0\n\
         TLDW_EXISTING_INSTALLATION=true\n\
         TLDW_SETUP_COMPLETED=true\n\
         TLDW_EDGE_SUBNET=172.28.0.0/24\n\
         TLDW_BACKEND_SUBNET=172.29.0.0/24\n\
         TLDW_APP_IMAGE=ghcr.io/rmusser01/tldw-server@sha256:{}\n\
         TLDW_ROLLBACK_IMAGE=ghcr.io/rmusser01/tldw-server:sha-0123abcd\n\
         CADDY_IMAGE=caddy:2.10.2\n\
         POSTGRES_IMAGE=postgres:18.1\n\
         REDIS_IMAGE=redis:8.2.1\n\
         TLDW_BACKUP_DIR=/srv/tldw-backups\n",
        "a".repeat(64)
    )
}

fn spec(extra: &str) -> String {
    format!(
        "apiVersion: tldw-ops/v1\n\
         environment: prod\n\
         target: {{ root: site }}\n\
         env:\n  tldw_production: true\n  AUTH_MODE: multi_user\n\
         secrets:\n  values:\n    JWT_SECRET_KEY: {{ from_env: TEST_JWT }}\n\
         cors: {{ allowed_origins: [https://tldw.research.org] }}\n\
         registration: {{ enabled: false }}\n\
         waivers:\n  - {{ rule: backups-configured, reason: backups are made by the host }}\n\
         {extra}"
    )
}

fn site(env: &str) -> Site {
    let site = Site::new();
    site.set_env_text(env);
    site.write_yaml("prod.yaml", &spec(""));
    site
}

fn plan(site: &Site) -> (i32, String, String) {
    run(site
        .command()
        .args(["plan", "prod.yaml"])
        .env("TEST_JWT", JWT))
}

/// The 1-based line of the first line of the `.env` that starts with `prefix`.
fn line_of(env: &str, prefix: &str) -> usize {
    env.lines()
        .position(|line| line.starts_with(prefix))
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("no line starts with {prefix}"))
}

fn assert_no_secrets(text: &str) {
    for secret in [JWT, SESSION, PG, REDIS] {
        assert!(!text.contains(secret), "a secret value leaked:\n{text}");
    }
}

#[test]
fn a_reference_deployment_that_passes_the_preflight_passes_plan() {
    let site = site(&reference_env());
    let (code, stdout, stderr) = plan(&site);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains("policy."), "{stderr}");
}

/// (what is wrong, the .env lines to replace or add, the rule, the line it points at).
struct Case {
    name: &'static str,
    edit: fn(String) -> String,
    rule: &'static str,
    at: Option<&'static str>,
}

fn replace(env: String, prefix: &str, line: &str) -> String {
    env.lines()
        .map(|existing| {
            if existing.starts_with(prefix) {
                line.to_string()
            } else {
                existing.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn remove(env: String, prefix: &str) -> String {
    env.lines()
        .filter(|line| !line.starts_with(prefix))
        .map(|line| format!("{line}\n"))
        .collect()
}

const CASES: &[Case] = &[
    Case {
        name: "the database host is not postgres",
        edit: |env| {
            replace(
                env,
                "DATABASE_URL=",
                &format!("DATABASE_URL=postgresql://tldw:{PG}@db.internal:5432/tldw_users"),
            )
        },
        rule: "preflight-database-url",
        at: Some("DATABASE_URL="),
    },
    Case {
        name: "the database password is not POSTGRES_PASSWORD",
        edit: |env| {
            replace(
                env,
                "DATABASE_URL=",
                "DATABASE_URL=postgresql://tldw:another-password-of-forty-characters-xx@postgres:5432/tldw_users",
            )
        },
        rule: "preflight-database-url",
        at: Some("DATABASE_URL="),
    },
    Case {
        name: "the database is the template's SQLite file",
        edit: |env| {
            replace(
                env,
                "DATABASE_URL=",
                "DATABASE_URL=sqlite:///./Databases/users.db",
            )
        },
        rule: "multi-user-postgres",
        at: Some("DATABASE_URL="),
    },
    Case {
        name: "no database url at all, so tldw's SQLite default",
        edit: |env| remove(env, "DATABASE_URL="),
        rule: "multi-user-postgres",
        at: None,
    },
    Case {
        name: "the redis password is not REDIS_PASSWORD",
        edit: |env| replace(env, "REDIS_URL=", "REDIS_URL=redis://:other@redis:6379/0"),
        rule: "preflight-redis-url",
        at: Some("REDIS_URL="),
    },
    Case {
        name: "the redis host is not redis",
        edit: |env| {
            replace(
                env,
                "REDIS_URL=",
                &format!("REDIS_URL=redis://:{REDIS}@cache:6379/0"),
            )
        },
        rule: "preflight-redis-url",
        at: Some("REDIS_URL="),
    },
    Case {
        name: "setup is not attested as completed",
        edit: |env| replace(env, "TLDW_SETUP_COMPLETED=", "TLDW_SETUP_COMPLETED=false"),
        rule: "preflight-setup-state",
        at: Some("TLDW_SETUP_COMPLETED="),
    },
    Case {
        name: "setup completion is not set",
        edit: |env| remove(env, "TLDW_SETUP_COMPLETED="),
        rule: "preflight-setup-state",
        at: None,
    },
    Case {
        name: "the existing-installation flag is not a boolean",
        edit: |env| {
            replace(
                env,
                "TLDW_EXISTING_INSTALLATION=",
                "TLDW_EXISTING_INSTALLATION=maybe",
            )
        },
        rule: "preflight-setup-state",
        at: Some("TLDW_EXISTING_INSTALLATION="),
    },
    Case {
        name: "a bootstrap admin password on an existing installation",
        edit: |env| env + "ADMIN_PASSWORD=bootstrap-admin-password-of-forty-chars-x\n",
        rule: "preflight-setup-state",
        at: Some("ADMIN_PASSWORD="),
    },
    Case {
        name: "the app image is latest",
        edit: |env| {
            replace(
                env,
                "TLDW_APP_IMAGE=",
                "TLDW_APP_IMAGE=ghcr.io/rmusser01/tldw-server:latest",
            )
        },
        rule: "preflight-images",
        at: Some("TLDW_APP_IMAGE="),
    },
    Case {
        name: "the rollback image is the app image",
        edit: |env| {
            replace(
                env,
                "TLDW_ROLLBACK_IMAGE=",
                &format!(
                    "TLDW_ROLLBACK_IMAGE=ghcr.io/rmusser01/tldw-server@sha256:{}",
                    "a".repeat(64)
                ),
            )
        },
        rule: "preflight-images",
        at: Some("TLDW_ROLLBACK_IMAGE="),
    },
    Case {
        name: "a dependency image without a numeric version",
        edit: |env| replace(env, "REDIS_IMAGE=", "REDIS_IMAGE=redis:alpine"),
        rule: "preflight-images",
        at: Some("REDIS_IMAGE="),
    },
    Case {
        name: "a public edge subnet",
        edit: |env| replace(env, "TLDW_EDGE_SUBNET=", "TLDW_EDGE_SUBNET=8.8.8.0/24"),
        rule: "preflight-networks",
        at: Some("TLDW_EDGE_SUBNET="),
    },
    Case {
        name: "overlapping subnets",
        edit: |env| {
            replace(
                env,
                "TLDW_BACKEND_SUBNET=",
                "TLDW_BACKEND_SUBNET=172.28.0.128/25",
            )
        },
        rule: "preflight-networks",
        at: Some("TLDW_BACKEND_SUBNET="),
    },
    Case {
        name: "a relative backup directory",
        edit: |env| replace(env, "TLDW_BACKUP_DIR=", "TLDW_BACKUP_DIR=backups"),
        rule: "preflight-backup-dir",
        at: Some("TLDW_BACKUP_DIR="),
    },
    Case {
        name: "a backup directory inside live data",
        edit: |env| {
            replace(
                env,
                "TLDW_BACKUP_DIR=",
                "TLDW_BACKUP_DIR=/app/Databases/backups",
            )
        },
        rule: "preflight-backup-dir",
        at: Some("TLDW_BACKUP_DIR="),
    },
    Case {
        name: "an export line",
        edit: |env| env + "export EXTRA_SETTING=1\n",
        rule: "env-file-syntax",
        at: Some("export EXTRA_SETTING="),
    },
    Case {
        name: "a line without =",
        edit: |env| env + "JUST_A_NAME\n",
        rule: "env-file-syntax",
        at: Some("JUST_A_NAME"),
    },
    Case {
        name: "origins not on the public domain",
        edit: |env| {
            replace(
                env,
                "TLDW_PUBLIC_DOMAIN=",
                "TLDW_PUBLIC_DOMAIN=other.research.org",
            )
        },
        rule: "preflight-origin-domain",
        at: None,
    },
    Case {
        name: "a sample public domain",
        edit: |env| {
            replace(
                env,
                "TLDW_PUBLIC_DOMAIN=",
                "TLDW_PUBLIC_DOMAIN=tldw.example.com",
            )
        },
        rule: "preflight-public-identity",
        at: Some("TLDW_PUBLIC_DOMAIN="),
    },
    Case {
        name: "a sample contact address",
        edit: |env| replace(env, "TLDW_ACME_EMAIL=", "TLDW_ACME_EMAIL=admin@localhost"),
        rule: "preflight-public-identity",
        at: Some("TLDW_ACME_EMAIL="),
    },
    Case {
        name: "a required name missing",
        edit: |env| remove(remove(env, "REDIS_URL="), "REDIS_PASSWORD="),
        rule: "preflight-required",
        at: None,
    },
    Case {
        name: "a placeholder secret the YAML does not manage",
        edit: |env| {
            replace(
                env,
                "SESSION_ENCRYPTION_KEY=",
                "SESSION_ENCRYPTION_KEY=changeme",
            )
        },
        rule: "secret-strength",
        at: Some("SESSION_ENCRYPTION_KEY="),
    },
    Case {
        name: "a weak secret the YAML does not manage",
        edit: |env| {
            replace(
                env,
                "SESSION_ENCRYPTION_KEY=",
                "SESSION_ENCRYPTION_KEY=short-but-real-9f2",
            )
        },
        rule: "secret-strength",
        at: Some("SESSION_ENCRYPTION_KEY="),
    },
    Case {
        name: "two secrets share a value",
        edit: |env| {
            let env = replace(env, "REDIS_PASSWORD=", &format!("REDIS_PASSWORD={PG}"));
            replace(
                env,
                "REDIS_URL=",
                &format!("REDIS_URL=redis://:{PG}@redis:6379/0"),
            )
        },
        rule: "secrets-distinct",
        at: None,
    },
];

#[test]
fn every_preflight_env_check_fails_the_plan_at_the_line_that_breaks_it() {
    let mut failures = Vec::new();
    for case in CASES {
        let env = (case.edit)(reference_env());
        let site = site(&env);
        let (code, stdout, stderr) = plan(&site);
        assert_no_secrets(&stdout);
        assert_no_secrets(&stderr);
        let code_ok = code == 3;
        let rule_ok = stderr.contains(&format!("[policy.{}]", case.rule))
            || stderr.contains(&format!("policy.{}", case.rule));
        let at_ok = case
            .at
            .is_none_or(|prefix| stderr.contains(&format!(".env:{}:", line_of(&env, prefix))));
        if !(code_ok && rule_ok && at_ok) {
            failures.push(format!(
                "{}: exit {code}, rule {} found {rule_ok}, line found {at_ok}\n{stderr}",
                case.name, case.rule
            ));
        }
        // Nothing was changed by a refused plan.
        assert_eq!(site.env_text(), env, "{}", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn an_env_file_readable_by_others_fails_the_plan() {
    let site = site(&reference_env());
    std::fs::set_permissions(
        site.path().join(ENV_PATH),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, _, stderr) = plan(&site);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("policy.env-file-permissions"), "{stderr}");
    assert!(stderr.contains("mode 0644"), "{stderr}");
}

#[test]
fn apply_refuses_what_plan_refuses_and_changes_nothing() {
    let env = replace(
        reference_env(),
        "DATABASE_URL=",
        "DATABASE_URL=sqlite:///./Databases/users.db",
    );
    let site = site(&env);
    let (code, stdout, stderr) = run(site
        .command()
        .args(["apply", "prod.yaml", "--auto-approve"])
        .env("TEST_JWT", JWT));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("policy.multi-user-postgres"), "{stderr}");
    assert_eq!(site.env_text(), env);
    assert_no_secrets(&stderr);
}

#[test]
fn a_value_the_yaml_declares_is_reported_at_its_yaml_line() {
    let site = site(&reference_env());
    site.write_yaml(
        "prod.yaml",
        &spec("").replace(
            "  AUTH_MODE: multi_user\n",
            "  AUTH_MODE: multi_user\n  TLDW_BACKUP_DIR: relative/backups\n",
        ),
    );
    let (code, _, stderr) = plan(&site);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("prod.yaml:7:"), "{stderr}");
    assert!(stderr.contains("policy.preflight-backup-dir"), "{stderr}");
}

#[test]
fn a_bare_metal_deployment_waives_the_reference_checks_as_a_group() {
    let env = "DATABASE_URL=postgresql://tldw:secretpassword0123456789abcdefgh@127.0.0.1:5432/tldw\n\
               SESSION_ENCRYPTION_KEY=sess-0123456789abcdefghijklmnopqrstuvwxyz-B\n\
               TLDW_SETUP_COMPLETED=true\nTLDW_EXISTING_INSTALLATION=true\n";
    let site = site(env);
    let (code, _, stderr) = plan(&site);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("policy.preflight-required"), "{stderr}");
    site.write_yaml(
        "prod.yaml",
        &spec("  - { rule: preflight-*, reason: bare metal; no compose topology }\n"),
    );
    let (code, stdout, stderr) = plan(&site);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains("secretpassword0123456789"), "{stderr}");
}

#[test]
fn validate_passes_what_only_the_deployment_breaks_and_says_plan_checks_it() {
    let site = site(&replace(
        reference_env(),
        "DATABASE_URL=",
        "DATABASE_URL=sqlite:///./Databases/users.db",
    ));
    let (code, _, stderr) = run(site
        .command()
        .args(["validate", "prod.yaml"])
        .env("TEST_JWT", JWT));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("`plan` checks"), "{stderr}");
}

#[test]
fn a_secret_file_declared_in_a_layer_is_checked_and_written_from_the_same_path() {
    let site = site(&reference_env());
    let shared = site.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // The layer's own directory holds a weak value; the main file's directory a strong one.
    std::fs::write(shared.join("session.secret"), "weak5\n").unwrap();
    std::fs::write(
        site.path().join("session.secret"),
        "a-strong-session-value-of-more-than-32-chars\n",
    )
    .unwrap();
    std::fs::write(
        shared.join("base.yaml"),
        "apiVersion: tldw-ops/v1\nsecrets:\n  values:\n    SESSION_ENCRYPTION_KEY: { from_file: session.secret }\n",
    )
    .unwrap();
    site.write_yaml(
        "prod.yaml",
        &format!("extends: shared/base.yaml\n{}", spec("")),
    );
    let (code, _, stderr) = run(site
        .command()
        .args(["validate", "prod.yaml"])
        .env("TEST_JWT", JWT));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("secret `SESSION_ENCRYPTION_KEY` has 5 characters"),
        "{stderr}"
    );
    assert!(stderr.contains("base.yaml:4:"), "{stderr}");
    // With a strong value in the layer's directory, apply writes exactly that one.
    std::fs::write(
        shared.join("session.secret"),
        "the-layer-session-value-of-more-than-32-chars\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(site
        .command()
        .args(["apply", "prod.yaml", "--auto-approve"])
        .env("TEST_JWT", JWT));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        site.env_text()
            .contains("SESSION_ENCRYPTION_KEY=the-layer-session-value-of-more-than-32-chars"),
        "{}",
        site.env_text()
    );
}

#[test]
fn the_hardened_example_applies_a_deployment_tldw_accepts() {
    use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};
    const TOKEN: &str = "admin-token-of-the-hardened-example-0123456";
    let fake = FakeTldw::start(FakeTldwConfig {
        admin_token: TOKEN.to_string(),
        users: 0,
        extra_users: vec![
            ("alice".to_string(), Some(5120)),
            ("bob".to_string(), Some(100)),
        ],
        ..FakeTldwConfig::default()
    });
    // The shipped template: AUTH_MODE single_user, DATABASE_URL on SQLite, placeholder secrets.
    let site = Site::new();
    let restart = crate::common::yaml_words(&fake.restart_command());
    let example = super::common::repo().join("examples/hardened-prod.yaml");
    // The example as shipped, pointed at this site and the fake server.
    site.write_yaml(
        "prod.yaml",
        &format!(
            "extends: {example}\n\
             apiVersion: tldw-ops/v1\n\
             environment: prod\n\
             target:\n  root: site\n  database: sqlite:///./Databases/users.db\n\
             \x20 api: {{ url: {url}, token: {{ from_env: TLDW_ADMIN_TOKEN }} }}\n\
             \x20 service:\n    url: {url}\n    restart: [{restart}]\n    timeout: 10s\n\
             \x20   health: [{{ path: /health, expect_json: {{ status: ok }} }}]\n\
             backup: {{ destination: backups, include: [config], before_apply: false }}\n",
            example = example.display(),
            url = fake.url()
        ),
    );
    let database_url = format!("postgresql://tldw:{PG}@postgres:5432/tldw_users");
    let redis_url = format!("redis://:{REDIS}@redis:6379/0");
    let command = |args: &[&str]| {
        let mut command = site.command();
        command
            .args(args)
            .env("TLDW_ADMIN_TOKEN", TOKEN)
            .env("TLDW_PG_PASSWORD", PG)
            .env("TLDW_DATABASE_URL", &database_url)
            .env("TLDW_REDIS_PASSWORD", REDIS)
            .env("TLDW_REDIS_URL", &redis_url);
        command
    };
    let (code, stdout, stderr) = run(&mut command(&["plan", "prod.yaml"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (code, stdout, stderr) = run(&mut command(&["apply", "prod.yaml", "--auto-approve"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for text in [&stdout, &stderr] {
        assert_no_secrets(text);
    }
    // What tldw's AuthNZ settings check at startup in production multi_user mode.
    let env = site.env_text();
    let value = |name: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(|value| value.trim_matches(['\'', '"']).to_string())
            .unwrap_or_else(|| panic!("{name} is not in the .env"))
    };
    assert_eq!(value("AUTH_MODE"), "multi_user");
    assert_eq!(value("tldw_production"), "true");
    assert_eq!(value("DATABASE_URL"), database_url);
    assert!(value("JWT_SECRET_KEY").len() >= 32);
    assert_ne!(
        value("JWT_SECRET_KEY"),
        "CHANGE_ME_TO_SECURE_RANDOM_KEY_MIN_32_CHARS"
    );
    assert!(!value("MCP_JWT_SECRET").starts_with("CHANGE_ME"));
    assert!(!value("BYOK_ENCRYPTION_KEY").starts_with("CHANGE_ME"));
    // And the next plan, judging the deployment as it now is, is empty and passes policy.
    let (code, stdout, stderr) = run(&mut command(&["plan", "prod.yaml", "--detailed-exitcode"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[test]
fn a_release_image_that_is_not_pinned_is_refused_in_production_at_its_yaml_line() {
    for image in [
        "ghcr.io/rmusser01/tldw-server:latest",
        "ghcr.io/rmusser01/tldw-server:main",
    ] {
        let site = site(&reference_env());
        site.write_yaml(
            "prod.yaml",
            &spec(&format!(
                "release: {{ image: \"{image}\" }}\n\
                 backup: {{ destination: /srv/tldw-backups, every: 24h, keep: {{ daily: 7 }} }}\n"
            ))
            .replace(
                "target: { root: site }",
                "target: { root: site, service: { restart: [docker, compose, up, -d] } }",
            ),
        );
        let (code, _, stderr) = plan(&site);
        assert_eq!(code, 3, "{image}: {stderr}");
        assert!(
            stderr.contains("policy.preflight-images"),
            "{image}: {stderr}"
        );
        let line = spec("").lines().count() + 1;
        assert!(
            stderr.contains(&format!("prod.yaml:{line}:")),
            "{image}: {stderr}"
        );
    }
}
