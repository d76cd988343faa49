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
