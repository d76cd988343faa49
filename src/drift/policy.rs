//! The production policy on the running deployment (`DESIGN.md`: "for drift, on the observed
//! one"): a `.env` edited by hand, or by tldw's own entrypoint, can break a hardening rule that
//! the desired state keeps. Only the rules that can be read off the files are checked here, and
//! only when the observed `.env` says `tldw_production` is true. Names only, never values.

use serde::Serialize;

use crate::deployment::ObservedFiles;
use crate::secrets::{is_placeholder, looks_like_secret_name};
use crate::spec::Severity;
use crate::spec::policy::{SWITCH_RULES, rule_severity};
use crate::spec::types::parse_truthy;

/// One rule the running deployment breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    /// `path:line` of the offending line.
    pub location: String,
}

const TEST_SWITCHES: &[&str] = &[
    "TEST_MODE",
    "HEALTH_EXPOSE_TEST_API_KEY",
    "MCP_ENABLE_DEMO_AUTH",
    "E2E_TEST_BASE_URL",
    "SINGLE_USER_TEST_API_KEY",
];

/// The findings, in file order. Empty unless the observed `.env` is in production.
pub fn findings(files: &ObservedFiles) -> Vec<Finding> {
    let env = files.env.document();
    let production = env.get("tldw_production").and_then(parse_truthy) == Some(true);
    if !production {
        return Vec::new();
    }
    let path = crate::spec::source::display_name(&files.env.snapshot.path);
    let at = |key: &str| {
        let line = env.entry(key).map(|entry| entry.line).unwrap_or(0);
        format!("{path}:{line}")
    };
    let mut out = Vec::new();
    let mut push = |rule: &'static str, message: String, location: String| {
        out.push(Finding {
            rule,
            severity: rule_severity(rule),
            message,
            location,
        });
    };
    for (rule, variable, forbidden, message) in SWITCH_RULES {
        if env.get(variable).and_then(parse_truthy) == Some(*forbidden) {
            push(rule, (*message).to_string(), at(variable));
        }
    }
    for name in TEST_SWITCHES {
        if env.get(name).is_some_and(|value| !value.trim().is_empty()) {
            push(
                "test-switches",
                format!("test switch `{name}` is set in production"),
                at(name),
            );
        }
    }
    if let Some(level) = env.get("LOG_LEVEL")
        && level.trim().eq_ignore_ascii_case("debug")
    {
        push(
            "log-level-not-debug",
            "`LOG_LEVEL` is debug in production".to_string(),
            at("LOG_LEVEL"),
        );
    }
    if let Some(origins) = env.get("ALLOWED_ORIGINS") {
        let list: Vec<&str> = origins
            .trim_matches(['[', ']'])
            .split(',')
            .map(|origin| origin.trim().trim_matches('"'))
            .filter(|origin| !origin.is_empty())
            .collect();
        if list.contains(&"*") {
            push(
                "cors-no-wildcard",
                "`ALLOWED_ORIGINS` allows every origin (`*`)".to_string(),
                at("ALLOWED_ORIGINS"),
            );
        } else if let Some(origin) = list.iter().find(|origin| !origin.starts_with("https://")) {
            push(
                "cors-https-only",
                format!("origin `{origin}` in `ALLOWED_ORIGINS` is not https"),
                at("ALLOWED_ORIGINS"),
            );
        }
    }
    let entries: Vec<(String, Option<String>)> = env
        .entries()
        .map(|entry| (entry.key.to_string(), entry.value.clone()))
        .collect();
    for (key, value) in entries {
        let Some(value) = value else { continue };
        if !value.trim().is_empty()
            && looks_like_secret_name(&key)
            && parse_truthy(&value).is_none()
            && is_placeholder(&value)
        {
            push(
                "secret-strength",
                format!("`{key}` holds a placeholder"),
                at(&key),
            );
        }
    }
    let config = files.config.document();
    if config
        .get("Setup", "allow_remote_setup_access")
        .ok()
        .flatten()
        .and_then(|value| parse_truthy(&value))
        == Some(true)
    {
        let line = config
            .entry("Setup", "allow_remote_setup_access")
            .map(|entry| entry.line)
            .unwrap_or(0);
        push(
            "setup-locked",
            "`[Setup] allow_remote_setup_access` opens first-run setup to remote clients"
                .to_string(),
            format!(
                "{}:{line}",
                crate::spec::source::display_name(&files.config.snapshot.path)
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::config_file::ConfigFile;
    use crate::providers::env_file::EnvFile;
    use crate::providers::files::FileSnapshot;

    fn files(env: &str, config: &str) -> ObservedFiles {
        let snapshot = |name: &str, text: &str| FileSnapshot {
            path: std::path::PathBuf::from(name),
            content: Some(text.to_string()),
            mode: Some(0o600),
            owner: None,
        };
        ObservedFiles {
            env: EnvFile::from_snapshot(snapshot(".env", env)).unwrap(),
            config: ConfigFile::from_snapshot(snapshot("config.txt", config)).unwrap(),
        }
    }

    #[test]
    fn a_production_env_edited_by_hand_is_held_to_the_rules_without_showing_values() {
        let found = findings(&files(
            "tldw_production=true\nSHOW_API_KEY_ON_STARTUP=true\nTEST_MODE=1\nLOG_LEVEL=DEBUG\nALLOWED_ORIGINS=*\nMCP_JWT_SECRET=CHANGE_ME_TO_SECURE_MCP_JWT_SECRET\nOPENAI_API_KEY=\n",
            "[Setup]\nallow_remote_setup_access = True\n",
        ));
        let rules: Vec<&str> = found.iter().map(|finding| finding.rule).collect();
        assert_eq!(
            rules,
            vec![
                "show-api-key-on-startup",
                "test-switches",
                "log-level-not-debug",
                "cors-no-wildcard",
                "secret-strength",
                "setup-locked"
            ]
        );
        assert_eq!(found[4].location, ".env:6");
        assert!(
            found
                .iter()
                .all(|finding| !finding.message.contains("CHANGE_ME"))
        );
    }

    #[test]
    fn outside_production_nothing_is_checked() {
        assert!(findings(&files("SHOW_API_KEY_ON_STARTUP=true\n", "[Setup]\n")).is_empty());
    }
}
