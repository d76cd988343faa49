//! The service a plan restarts and checks: its health gates, and how its commands are shown.
//! Shared by the change steps (`diff`) and the backup steps (`backups`), which otherwise do not
//! know each other.

/// A health check the plan runs after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub url: String,
    pub expect_status: u16,
    pub expect_json: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A smoke gate: a request that proves the server works, not just that it answers (the
/// providers list with the API key, say). Its status and top-level JSON fields must match
/// within `retries` more attempts of `timeout_ms` each. Credentials are named, never carried:
/// `auth` says to send `target.api`'s token, which the executor reads from its source at apply.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct SmokeCheck {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auth: bool,
    pub expect_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_json: Option<serde_json::Map<String, serde_json::Value>>,
    /// Per attempt.
    pub timeout_ms: u64,
    /// Attempts after the first one fails.
    pub retries: u32,
}

/// The steps that end a plan that restarted or put back what tldw_server reads at start: the
/// health gates, then the smoke gates.
pub fn gate_steps(health: &[HealthCheck], smoke: &[SmokeCheck]) -> Vec<super::Step> {
    health_gate_step(health)
        .into_iter()
        .chain(smoke_gate_step(smoke))
        .collect()
}

/// The step that runs the smoke gates, or `None` when the target declares none.
pub fn smoke_gate_step(smoke: &[SmokeCheck]) -> Option<super::Step> {
    if smoke.is_empty() {
        return None;
    }
    Some(super::Step {
        index: 0,
        kind: super::StepKind::SmokeGate,
        target: smoke
            .iter()
            .map(|check| check.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        addresses: Vec::new(),
        operations: smoke.iter().cloned().map(super::Operation::Smoke).collect(),
    })
}

/// The step that runs the health gates, or `None` when the target declares none. Its index is
/// set when the plan numbers its steps. A change plan, a backup restore and a rollback all end
/// with this step, built here so they check the same way and show the same target.
pub fn health_gate_step(health: &[HealthCheck]) -> Option<super::Step> {
    if health.is_empty() {
        return None;
    }
    Some(super::Step {
        index: 0,
        kind: super::StepKind::HealthGate,
        target: health
            .iter()
            .map(|check| check.url.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        addresses: Vec::new(),
        operations: health
            .iter()
            .map(|check| super::Operation::Check {
                url: check.url.clone(),
                expect_status: check.expect_status,
                expect_json: check.expect_json.clone(),
            })
            .collect(),
    })
}

/// An argv shown as a shell would need it typed, for people (it is never run through a shell).
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            if !word.is_empty()
                && word
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&byte))
            {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
