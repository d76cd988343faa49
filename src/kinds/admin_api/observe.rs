//! Observing what lives in the running server through the admin API: per-user quotas,
//! retention overrides and the effective registration settings. Used by plan (observe) and by
//! apply (the precondition check under the lock).

use std::collections::{BTreeMap, BTreeSet};

use crate::kinds::admin_api::kind::default_retention_days;
use crate::model::{Address, AddressKind, ObservedValue};
use crate::providers::tldw_api::{ApiConfig, ApiError, RegistrationSettings, TldwApi};
use crate::settings::Settings;
use crate::spec::Checked;
use crate::spec::types::ApiAuth;

/// What the API reported.
#[derive(Debug, Clone, Default)]
pub struct ApiObservation {
    pub values: BTreeMap<Address, ObservedValue>,
    /// Username -> user id, for the quota steps.
    pub user_ids: BTreeMap<String, i64>,
    /// Usernames asked about that the server does not have.
    pub unknown_users: Vec<String>,
    pub registration: Option<RegistrationSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiSetupError {
    #[error("target.api.token: environment variable `{0}` is not set")]
    MissingTokenVariable(String),
    #[error("target.api.token: {0}")]
    TokenFile(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The admin API client the spec describes, or `None` without `target.api`.
pub fn client(checked: &Checked, settings: &Settings) -> Result<Option<TldwApi>, ApiSetupError> {
    let Some(api) = &checked.spec.target.api else {
        return Ok(None);
    };
    let token = if let Some(variable) = &api.token.from_env {
        settings
            .process_env
            .get(variable)
            .cloned()
            .ok_or_else(|| ApiSetupError::MissingTokenVariable(variable.clone()))?
    } else if let Some(path) = &api.token.from_file {
        // Relative to the file that declares it, as every other path of the desired state.
        let file = checked.declared_path("/target/api/token/from_file", path);
        crate::secrets::read_secret_file(&file)
            .map_err(|error| ApiSetupError::TokenFile(error.to_string()))?
    } else {
        return Ok(None);
    };
    let mut config = ApiConfig::new(api.url.clone(), token, api.auth.unwrap_or(ApiAuth::Bearer));
    if let Some(concurrency) = api.concurrency {
        config.concurrency = concurrency as usize;
    }
    if let Some(timeout) = api.timeout {
        config.timeout = timeout.as_std();
    }
    Ok(Some(TldwApi::new(config)?))
}

/// Reads the API addresses among `addresses`, and the registration settings when asked.
pub async fn observe(
    api: &TldwApi,
    addresses: &BTreeSet<Address>,
    with_registration: bool,
) -> Result<ApiObservation, ApiError> {
    let mut observation = ApiObservation::default();
    let usernames: BTreeSet<String> = addresses
        .iter()
        .filter(|address| address.kind() == AddressKind::QuotaUser)
        .map(|address| address.name().to_string())
        .collect();
    let wants_retention = addresses
        .iter()
        .any(|address| address.kind() == AddressKind::Retention);
    let users = async {
        if usernames.is_empty() {
            return Ok((BTreeMap::new(), BTreeMap::new()));
        }
        let ids = api.resolve_users(&usernames).await?;
        let quotas = api.quotas(&ids).await?;
        Ok::<_, ApiError>((ids, quotas))
    };
    let retention = async {
        if wants_retention {
            api.retention_policies().await.map(Some)
        } else {
            Ok(None)
        }
    };
    let registration = async {
        if with_registration {
            api.registration().await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (users, retention, registration) = tokio::join!(users, retention, registration);
    let (ids, quotas) = users?;
    for username in &usernames {
        match quotas.get(username) {
            Some(quota) => {
                observation
                    .values
                    .insert(Address::quota_user(username), ObservedValue::Quota(*quota));
            }
            None => observation.unknown_users.push(username.clone()),
        }
    }
    observation.user_ids = ids;
    if let Some(policies) = retention? {
        for address in addresses
            .iter()
            .filter(|address| address.kind() == AddressKind::Retention)
        {
            let value = match resolve_retention_days(address.name(), policies.get(address.name())) {
                Some(days) => ObservedValue::Days(days),
                None => ObservedValue::Absent,
            };
            observation.values.insert(address.clone(), value);
        }
    }
    observation.registration = registration?;
    Ok(observation)
}

/// The days a retention policy is at, from what `GET /retention-policies` said about it:
/// `None` when the server has no such policy. tldw reports `null` (its `RetentionPolicy.days` is
/// `int | None`) when the setting is unset; the policy's built-in default is then in force, so
/// that is what a plan compares against (`docs/admin-api.md`).
pub fn resolve_retention_days(key: &str, reported: Option<&Option<u64>>) -> Option<u64> {
    reported.map(|days| days.unwrap_or_else(|| default_retention_days(key)))
}

/// Every policy the server reported, `null` resolved as [`resolve_retention_days`] does.
pub fn resolve_retention(policies: BTreeMap<String, Option<u64>>) -> BTreeMap<String, u64> {
    policies
        .into_iter()
        .map(|(key, days)| {
            let days = days.unwrap_or_else(|| default_retention_days(&key));
            (key, days)
        })
        .collect()
}

/// Why the server's effective registration settings differ from the desired ones, if they do.
pub fn registration_warnings(
    desired_enabled: Option<bool>,
    desired_require_code: Option<bool>,
    effective: &RegistrationSettings,
    env_file_changes: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, desired: Option<bool>, effective: bool| {
        if let Some(desired) = desired
            && desired != effective
        {
            let why = if env_file_changes {
                "this plan changes the .env; the server reads it only at start, so it takes effect after the restart"
            } else {
                "the server is not using the .env value: it was changed without a restart, or a process environment variable overrides it"
            };
            out.push(format!(
                "the server reports {name} = {effective}, the desired state says {desired}: {why}"
            ));
        }
    };
    check(
        "enable_registration",
        desired_enabled,
        effective.enable_registration,
    );
    check(
        "require_registration_code",
        desired_require_code,
        effective.require_registration_code,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_retention_reads_as_the_policys_default_and_an_absent_one_as_absent() {
        assert_eq!(resolve_retention_days("audit_logs", Some(&None)), Some(180));
        assert_eq!(
            resolve_retention_days("usage_daily", Some(&None)),
            Some(365)
        );
        assert_eq!(resolve_retention_days("sessions", Some(&None)), Some(90));
        assert_eq!(
            resolve_retention_days("privilege_snapshots_weekly", Some(&None)),
            Some(365)
        );
        assert_eq!(
            resolve_retention_days("sessions", Some(&Some(30))),
            Some(30)
        );
        assert_eq!(resolve_retention_days("sessions", None), None);
        let resolved = resolve_retention(BTreeMap::from([
            ("llm_usage_logs".to_string(), None),
            ("privilege_snapshots".to_string(), Some(45)),
        ]));
        assert_eq!(
            resolved,
            BTreeMap::from([
                ("llm_usage_logs".to_string(), 180),
                ("privilege_snapshots".to_string(), 45),
            ])
        );
    }
}
