//! The effective registration settings, read back to compare a plan against.

use reqwest::Method;

use super::{ApiError, TldwApi, routes};

/// The effective registration settings, as `GET /registration-settings` reports them (env values
/// win over `config.txt`, so this is what a plan compares against).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RegistrationSettings {
    pub enable_registration: bool,
    pub require_registration_code: bool,
    #[serde(default)]
    pub auth_mode: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub self_registration_allowed: Option<bool>,
}

impl TldwApi {
    /// `GET /registration-settings`: the effective registration settings.
    pub async fn registration(&self) -> Result<RegistrationSettings, ApiError> {
        let reply = self
            .send(
                Method::GET,
                self.url(routes::REGISTRATION_SETTINGS, &[]),
                None,
            )
            .await?;
        self.expect_json(
            reply,
            "registration settings with boolean `enable_registration` and `require_registration_code`",
        )
    }
}
