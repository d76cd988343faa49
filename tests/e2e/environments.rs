//! Helpers for the team tests: several environments of one deployment in one directory, each
//! with its own copy of tldw_server's files, sharing a base layer and (optionally) one
//! PostgreSQL state database.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crate::common::{fixture, tool};
use crate::support::fake_tldw::FakeTldw;
use crate::support::pg;

pub const PG_PASSWORD: &str = "pg-password-of-the-team-0123456789abcdef";

/// The shared layer every environment extends.
pub const BASE: &str = r#"apiVersion: tldw-ops/v1
env:
  AUTH_MODE: single_user
  LOG_LEVEL: info
  DISABLE_CORS: false
config:
  Setup:
    setup_completed: true
secrets:
  values:
    SINGLE_USER_API_KEY: { generate: { format: tldw_api_key } }
    POSTGRES_PASSWORD: { from_env: TEAM_PG_PASSWORD }
cors:
  allowed_origins: [http://localhost:3000]
registration: { enabled: false }
"#;

/// A directory holding `base.yaml`, one YAML file per environment and one tldw_server copy
/// per environment (`<name>-site/`).
pub struct Environments {
    pub dir: tempfile::TempDir,
    /// `--state` for every command; `None` is SQLite beside the YAML files.
    pub state: Option<String>,
}

impl Environments {
    pub fn new(state: Option<String>) -> Environments {
        let environments = Environments {
            dir: tempfile::tempdir().unwrap(),
            state,
        };
        environments.write("base.yaml", BASE);
        environments
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Adds `<name>.yaml` extending `base.yaml`, with its own copy of the shipped files. `extra`
    /// is appended to the file; `service` adds restart and health gates against `fake`.
    pub fn add(&self, name: &str, extra: &str, service: Option<&FakeTldw>) -> PathBuf {
        let site = self.site(name);
        std::fs::create_dir_all(&site).unwrap();
        std::fs::copy(fixture("tldw_server/env.example"), site.join(".env")).unwrap();
        std::fs::copy(fixture("tldw_server/config.txt"), site.join("config.txt")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(site.join(".env"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let service = service.map(service_yaml).unwrap_or_default();
        self.write(
            &format!("{name}.yaml"),
            &format!(
                "extends: base.yaml\nenvironment: {name}\ntarget:\n  root: {name}-site/root\n{service}{extra}"
            ),
        )
    }

    /// The directory holding an environment's `.env` and config.txt.
    pub fn site(&self, name: &str) -> PathBuf {
        self.path()
            .join(format!("{name}-site/root/tldw_Server_API/Config_Files"))
    }

    pub fn env_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.site(name).join(".env")).unwrap()
    }

    pub fn set_env_text(&self, name: &str, text: &str) {
        std::fs::write(self.site(name).join(".env"), text).unwrap();
    }

    /// The binary in this directory, with the secret source set and `--state` when given.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = tool(self.path());
        command.env("TEAM_PG_PASSWORD", PG_PASSWORD);
        if let Some(state) = &self.state {
            command.env("TLDW_OPS_STATE", state);
        }
        command.args(args);
        command
    }

    /// Like [`Environments::command`] with the test clock set.
    pub fn at(&self, now: &str, args: &[&str]) -> std::process::Command {
        let mut command = self.command(args);
        command.env("TLDW_OPS_NOW", now);
        command
    }
}

/// Restart and health gates served by the fake server.
pub fn service_yaml(fake: &FakeTldw) -> String {
    let restart = crate::common::yaml_words(&fake.restart_command());
    format!(
        "  service:\n    url: {}\n    restart: [{restart}]\n    timeout: 5s\n    health:\n      - {{ path: /health, expect_status: 200 }}\n",
        fake.url()
    )
}

/// A fresh PostgreSQL database on the shared throwaway cluster, or `None` (with the harness's
/// loud note) when PostgreSQL is not installed and not required.
pub fn postgres(prefix: &str) -> Option<(&'static pg::PgCluster, String)> {
    let cluster = pg::shared()?;
    let url = cluster.fresh_database(prefix);
    Some((cluster, url))
}
