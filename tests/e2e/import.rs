//! `tldw-ops import`: a YAML file written from a deployment (the shipped files, a changed one
//! with secrets, one behind the fake admin API) after which the first plan is empty, and no
//! secret value in the file or in any output.

use crate::common::{CONFIG_PATH, ENV_PATH, Site, assert_no_secret, run};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

const JWT_SECRET: &str = "jwt-secret-of-the-running-server-0123456789abcdef";
const PG_PASSWORD: &str = "pg-password-in-a-url-9f8e7d6c5b4a";
const OPENAI_KEY: &str = "sk-openai-key-of-the-deployment-424242";
const CONFIG_SECRET: &str = "config-txt-holds-this-password-31337";

fn import(site: &Site, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["import", "--root", "site", "--out", "tldw-ops.yaml"];
    args.extend_from_slice(extra);
    run(site.command().args(&args))
}

fn yaml(site: &Site) -> String {
    std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap()
}

/// `plan --detailed-exitcode` with the import variables exported.
fn plan(site: &Site, variables: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = site.command();
    command.args(["plan", "--detailed-exitcode"]);
    for (name, value) in variables {
        command.env(name, value);
    }
    run(&mut command)
}

fn replace_env(site: &Site, changes: &[(&str, &str)], added: &str) {
    let mut text = site.env_text();
    for (from, to) in changes {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    text.push_str(added);
    site.set_env_text(&text);
}

#[test]
fn the_shipped_files_import_to_a_file_whose_plan_is_empty() {
    let site = Site::new();
    let (code, stdout, stderr) = import(&site, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "the YAML goes to the file");
    let text = yaml(&site);
    assert!(
        text.starts_with("# yaml-language-server: $schema="),
        "{text}"
    );
    assert!(text.contains("tldw-ops import` on 20"), "{text}");
    assert!(
        text.contains("apiVersion: tldw-ops/v1\nenvironment: imported\ntarget:\n  root: site\n")
    );
    assert!(
        !text.contains("\nenv:") && !text.contains("\nconfig:"),
        "{text}"
    );
    assert!(text.contains("# backup:\n#   destination:"), "{text}");
    assert!(
        text.contains("SINGLE_USER_API_KEY: a placeholder in the .env"),
        "placeholders are left out with a comment: {text}"
    );
    let (code, stdout, stderr) = plan(&site, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("No changes"), "{stdout}");
    // A second import refuses to overwrite the file without --force.
    let (code, _, stderr) = import(&site, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--force"), "{stderr}");
    let (code, _, stderr) = import(&site, &["--force", "--environment", "prod-eu"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(yaml(&site).contains("environment: prod-eu\n"));
}

/// A deployment someone has run for a while: values changed by hand, secrets set, keys added.
fn lived_in_site() -> Site {
    let site = Site::new();
    replace_env(
        &site,
        &[
            ("AUTH_MODE=single_user", "AUTH_MODE=multi_user"),
            (
                "DATABASE_URL=sqlite:///./Databases/users.db",
                &format!("DATABASE_URL=postgresql://tldw:{PG_PASSWORD}@db:5432/tldw"),
            ),
            (
                "OPENAI_API_KEY=\n",
                &format!("OPENAI_API_KEY={OPENAI_KEY}\n"),
            ),
            (
                "ALLOWED_ORIGINS=http://localhost:3000,http://127.0.0.1:3000,http://localhost:8080,http://127.0.0.1:8080",
                "ALLOWED_ORIGINS=https://tldw.example.org,https://admin.example.org",
            ),
            (
                "CORS_ALLOW_CREDENTIALS=false",
                "CORS_ALLOW_CREDENTIALS=true",
            ),
            (
                "MCP_WS_ALLOWED_ORIGINS=[\"http://127.0.0.1:8000\",\"http://localhost:8000\",\"http://localhost:5173\"]",
                "MCP_WS_ALLOWED_ORIGINS=[\"https://tldw.example.org\"]",
            ),
            ("STREAM_QUEUE_MAXSIZE=512", "STREAM_QUEUE_MAXSIZE=0512"),
        ],
        &format!(
            "LOG_LEVEL=debug\n\
             JWT_SECRET_KEY={JWT_SECRET}\n\
             SESSION_COOKIE_SECURE=True\n\
             UVICORN_WORKERS=2\n\
             ENABLE_REGISTRATION=false\n\
             REQUIRE_REGISTRATION_CODE=true\n\
             USAGE_QUOTAS_ENABLED=true\n\
             AUDIT_LOG_RETENTION_DAYS=365\n\
             PRIVILEGE_SNAPSHOT_RETENTION_DAYS=30\n\
             SESSION_LOG_RETENTION_DAYS=3\n\
             GREETING=\"it's: #1 {{{{ not a template }}}}\"\n\
             EMPTY_SETTING=\n\
             SMTP_PASSWORD=\n"
        ),
    );
    let mut config = site.config_text();
    for (from, to) in [
        ("setup_completed = false", "setup_completed = true"),
        ("rate_limit_per_minute = 60", "rate_limit_per_minute = 90"),
        ("log_level = INFO", "log_level = WARNING"),
        (
            "pg_password = your_secure_password",
            &format!("pg_password = {CONFIG_SECRET}"),
        ),
    ] {
        assert!(config.contains(from), "{from}");
        config = config.replacen(from, to, 1);
    }
    config.push_str("\n[Custom-Ops]\nowner = platform team\nshare = 50%%\nflag = True\n");
    site.set_config_text(&config);
    site
}

#[test]
fn a_changed_deployment_with_secrets_imports_to_a_file_whose_plan_is_empty() {
    let site = lived_in_site();
    let (code, stdout, stderr) = import(&site, &[]);
    assert_eq!(code, 0, "{stderr}");
    let text = yaml(&site);
    for expected in [
        "  AUTH_MODE: multi_user\n",
        "  LOG_LEVEL: debug\n",
        "  SESSION_COOKIE_SECURE: 'True'\n",
        "  UVICORN_WORKERS: 2\n",
        "  STREAM_QUEUE_MAXSIZE: '0512'\n",
        "  MCP_WS_ALLOWED_ORIGINS: '[\"https://tldw.example.org\"]'\n",
        "  GREETING: '{% raw %}it''s: #1 {{ not a template }}{% endraw %}'\n",
        "  EMPTY_SETTING: ''\n",
        "  SESSION_LOG_RETENTION_DAYS: 3\n",
        "  Setup:\n    setup_completed: true\n",
        "    rate_limit_per_minute: 90\n",
        "  Logging:\n    log_level: WARNING\n",
        "  Custom-Ops:\n    owner: platform team\n    share: 50%\n    flag: 'True'\n",
        "    DATABASE_URL: { from_env: TLDW_IMPORT_DATABASE_URL }\n",
        "    OPENAI_API_KEY: { from_env: TLDW_IMPORT_OPENAI_API_KEY }\n",
        "    # export TLDW_IMPORT_JWT_SECRET_KEY with the current value of JWT_SECRET_KEY from the .env\n    JWT_SECRET_KEY: { from_env: TLDW_IMPORT_JWT_SECRET_KEY }\n",
        "cors:\n  allowed_origins: [https://tldw.example.org, https://admin.example.org]\n  allow_credentials: true\n",
        "registration:\n  enabled: false\n  require_code: true\n",
        "quotas:\n  enforce: true\n",
        "retention:\n  privilege_snapshots:\n    keep_all: 30d\n  audit_logs: 365d\n",
        "SMTP_PASSWORD: empty in the .env",
        "[Database] pg_password in config.txt: it holds a secret",
        "SESSION_LOG_RETENTION_DAYS is kept as a raw `env:` value, not `retention`: 3 days is outside the 7..3650 days",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("pg_password:"), "{text}");
    assert!(
        stderr.contains("TLDW_IMPORT_JWT_SECRET_KEY  (JWT_SECRET_KEY)"),
        "{stderr}"
    );
    let secrets = [
        ("TLDW_IMPORT_JWT_SECRET_KEY", JWT_SECRET.to_string()),
        (
            "TLDW_IMPORT_DATABASE_URL",
            format!("postgresql://tldw:{PG_PASSWORD}@db:5432/tldw"),
        ),
        ("TLDW_IMPORT_OPENAI_API_KEY", OPENAI_KEY.to_string()),
    ];
    let variables: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let env_before = site.env_text();
    let config_before = site.config_text();
    let (plan_code, plan_stdout, plan_stderr) = plan(&site, &variables);
    assert_eq!(plan_code, 0, "{plan_stdout}\n{plan_stderr}");
    // The deployment is untouched by import and plan, and apply has nothing to do either.
    assert_eq!(site.env_text(), env_before);
    assert_eq!(site.config_text(), config_before);
    let mut apply = site.command();
    apply.args(["apply", "--auto-approve"]);
    for (name, value) in &variables {
        apply.env(name, value);
    }
    let (code, apply_stdout, apply_stderr) = run(&mut apply);
    assert_eq!(code, 0, "{apply_stderr}");
    assert_eq!(site.env_text(), env_before, "apply changed nothing");
    assert_eq!(site.config_text(), config_before);
    let (code, drift_stdout, drift_stderr) = run(site
        .command()
        .args(["drift"])
        .envs(variables.iter().copied()));
    assert_eq!(code, 0, "{drift_stdout}\n{drift_stderr}");
    assert_no_secret(
        &[JWT_SECRET, PG_PASSWORD, OPENAI_KEY, CONFIG_SECRET],
        &[
            ("import stdout", &stdout),
            ("import stderr", &stderr),
            ("plan stdout", &plan_stdout),
            ("plan stderr", &plan_stderr),
            ("apply stdout", &apply_stdout),
            ("apply stderr", &apply_stderr),
            ("drift stdout", &drift_stdout),
        ],
        &site
            .files_that_must_not_hold_secrets()
            .into_iter()
            .filter(|path| !path.ends_with("config.txt"))
            .collect::<Vec<_>>(),
    );
}

#[test]
fn without_the_variables_the_plan_names_them_and_shows_no_value() {
    let site = lived_in_site();
    let (code, _, stderr) = import(&site, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = plan(&site, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("TLDW_IMPORT_"), "{stdout}\n{stderr}");
    assert_no_secret(
        &[JWT_SECRET, PG_PASSWORD, OPENAI_KEY, CONFIG_SECRET],
        &[("plan stdout", &stdout), ("plan stderr", &stderr)],
        &[],
    );
}

#[test]
fn import_to_stdout_holds_no_secret_and_roots_are_relative_to_the_output() {
    let site = lived_in_site();
    let (code, stdout, stderr) = run(site.command().args(["import", "--root", "site"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("  root: site\n"), "{stdout}");
    assert_no_secret(
        &[JWT_SECRET, PG_PASSWORD, OPENAI_KEY, CONFIG_SECRET],
        &[("stdout", &stdout), ("stderr", &stderr)],
        &[],
    );
    std::fs::create_dir(site.path().join("ops")).unwrap();
    let (code, _, stderr) =
        run(site
            .command()
            .args(["import", "--root", "site", "--out", "ops/prod.yaml"]));
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(site.path().join("ops/prod.yaml")).unwrap();
    assert!(text.contains("  root: ../site\n"), "{text}");
    let (code, stdout, stderr) = run(site.command().args(["validate", "ops/prod.yaml"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

fn quota_of_every_second_user(index: usize) -> Option<i64> {
    index.is_multiple_of(2).then_some(1000 + index as i64)
}

#[test]
fn with_the_admin_api_quotas_and_retention_overrides_import_and_the_plan_is_empty() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 5,
        extra_users: vec![("bob".to_string(), Some(0)), ("carol".to_string(), None)],
        seed_quotas: quota_of_every_second_user,
        retention_days: vec![
            ("audit_logs".to_string(), 365),
            ("usage_logs".to_string(), 90),
            ("sessions".to_string(), 30),
        ],
        ..FakeTldwConfig::default()
    });
    let site = Site::new();
    replace_env(
        &site,
        &[],
        "AUDIT_LOG_RETENTION_DAYS=365\nUSAGE_LOG_RETENTION_DAYS=120\nUSAGE_QUOTAS_ENABLED=true\n",
    );
    let url = fake.url();
    let mut command = site.command();
    command
        .args([
            "import",
            "--root",
            "site",
            "--out",
            "tldw-ops.yaml",
            "--api",
            &url,
            "--token-env",
            "TLDW_ADMIN_TOKEN",
        ])
        .env("TLDW_ADMIN_TOKEN", fake.admin_token());
    let (code, stdout, stderr) = run(&mut command);
    assert_eq!(code, 0, "{stderr}");
    let text = yaml(&site);
    for expected in [
        &format!("  api:\n    url: {url}\n    token: {{ from_env: TLDW_ADMIN_TOKEN }}\n"),
        "quotas:\n  enforce: true\n  users:\n    bob: 0\n    user0002: 1002\n    user0004: 1004\n",
        "retention:\n  audit_logs: 365d\n",
        "  USAGE_LOG_RETENTION_DAYS: 120\n",
        "USAGE_LOG_RETENTION_DAYS is kept as a raw `env:` value: the server enforces 90 days for `usage_logs`",
        "the server enforces 30 days for `sessions` (tldw's default is 90)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("carol") && !text.contains("user0001"),
        "{text}"
    );
    assert!(
        !text.contains(fake.admin_token()),
        "the token is a reference"
    );
    let (code, plan_stdout, plan_stderr) = run(site
        .command()
        .args(["plan", "--detailed-exitcode"])
        .env("TLDW_ADMIN_TOKEN", fake.admin_token()));
    assert_eq!(code, 0, "{plan_stdout}\n{plan_stderr}");
    assert_no_secret(
        &[fake.admin_token()],
        &[
            ("import stdout", &stdout),
            ("import stderr", &stderr),
            ("plan stdout", &plan_stdout),
            ("plan stderr", &plan_stderr),
        ],
        &site.files_that_must_not_hold_secrets(),
    );
    let _ = (ENV_PATH, CONFIG_PATH);
}

#[tokio::test]
async fn every_user_is_listed_across_pages() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 250,
        ..FakeTldwConfig::default()
    });
    let api =
        tldw_ops::providers::tldw_api::TldwApi::new(tldw_ops::providers::tldw_api::ApiConfig::new(
            fake.url(),
            fake.admin_token(),
            tldw_ops::spec::types::ApiAuth::Bearer,
        ))
        .unwrap();
    let users = api.all_users().await.unwrap();
    assert_eq!(users.len(), 250);
    assert_eq!(users.get("user0250"), Some(&250));
}
