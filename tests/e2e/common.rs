//! Helpers for the end-to-end tests: running the binary, building deployments in temporary
//! directories, and scanning outputs for secret values.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_tldw-ops");

/// The repository root, for fixtures and examples.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(relative: &str) -> PathBuf {
    repo().join("fixtures").join(relative)
}

/// A command for the binary with a clean, predictable environment.
pub fn tool(directory: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .current_dir(directory)
        .env_remove("TLDW_OPS_STATE")
        .env_remove("TLDW_OPS_FAULT")
        .env_remove("TLDW_OPS_NOW")
        .env_remove("TLDW_OPS_SALT")
        .env_remove("TLDW_OPS_APPLY_ID")
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .stdin(std::process::Stdio::null());
    command
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(command: &mut std::process::Command) -> (i32, String, String) {
    let output: Output = command.output().expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A tldw_server install in a temporary directory: the real shipped `.env` template and
/// config.txt in their usual places.
pub struct Site {
    pub dir: tempfile::TempDir,
}

pub const ENV_PATH: &str = "site/tldw_Server_API/Config_Files/.env";
pub const CONFIG_PATH: &str = "site/tldw_Server_API/Config_Files/config.txt";

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_dir = dir.path().join("site/tldw_Server_API/Config_Files");
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::copy(fixture("tldw_server/env.example"), config_dir.join(".env")).unwrap();
        std::fs::copy(
            fixture("tldw_server/config.txt"),
            config_dir.join("config.txt"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            config_dir.join(".env"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_yaml(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn env_text(&self) -> String {
        std::fs::read_to_string(self.path().join(ENV_PATH)).unwrap()
    }

    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.path().join(CONFIG_PATH)).unwrap()
    }

    pub fn set_env_text(&self, text: &str) {
        std::fs::write(self.path().join(ENV_PATH), text).unwrap();
    }

    pub fn set_config_text(&self, text: &str) {
        std::fs::write(self.path().join(CONFIG_PATH), text).unwrap();
    }

    pub fn command(&self) -> std::process::Command {
        tool(self.path())
    }

    /// Every file under the directory except the deployment's own .env and the checkpoints
    /// (which hold secrets by design, mode 0600).
    pub fn files_that_must_not_hold_secrets(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(self.path(), &mut out);
        out.into_iter()
            .filter(|path| {
                let text = path.to_string_lossy();
                !text.ends_with("/.env")
                    && !text.contains("/checkpoints/")
                    && !text.contains("/backups/")
            })
            .collect()
    }
}

fn walk(directory: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Fails when any of `secrets` appears in any of `texts` or in any of `files` (bytes).
pub fn assert_no_secret(secrets: &[&str], texts: &[(&str, &str)], files: &[PathBuf]) {
    for secret in secrets {
        assert!(
            secret.len() >= 8,
            "scan for a secret long enough to be unambiguous"
        );
        for (name, text) in texts {
            assert!(!text.contains(secret), "secret value found in {name}");
        }
        for file in files {
            let bytes = std::fs::read(file).unwrap_or_default();
            let found = bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes());
            assert!(!found, "secret value found in {}", file.display());
        }
    }
}

/// Values of `.env` keys, as python-dotenv would read them (enough for tests).
pub fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix('=')?;
        Some(rest.trim_matches(['\'', '"']).to_string())
    })
}

/// The kinds of a JSON plan's steps, in order.
pub fn step_kinds(plan: &serde_json::Value) -> Vec<&str> {
    plan["steps"]
        .as_array()
        .expect("a plan has steps")
        .iter()
        .map(|step| step["kind"].as_str().expect("a step has a kind"))
        .collect()
}

/// The lines of a log file a stand-in command appends to; none when it never ran.
pub fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An argv as a YAML flow list's items (`"sh", "-c", "..."`), quoted as JSON strings, which YAML
/// reads back unchanged.
pub fn yaml_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| format!("{word:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `command` (an `apply`) paused at a step by the fault hook and kills it with SIGKILL
/// there, as a crash or power loss would.
pub fn crash_at(mut command: std::process::Command, step: u32, point: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .env("TLDW_OPS_FAULT", format!("pause:{step}:{point}"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "apply ended before pausing at {step}:{point}"
        );
        if line.contains("TLDW_OPS_FAULT: paused") {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
