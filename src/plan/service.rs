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
