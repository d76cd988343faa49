//! The smoke gates (`target.service.smoke`): requests that prove tldw_server works, not just
//! that it answers, run after the health gates. Each request is tried once and then up to
//! `retries` more times a second apart, each attempt within its own timeout; the step fails
//! (and the apply rolls back) when any request never matches its expected status and JSON
//! fields. With `auth: api` the request carries `target.api`'s token, read from its source at
//! apply; it is sent only to the API's own origin and never shown, and a differing field of an
//! authenticated answer is named without its value.

use std::time::Duration;

use super::service::journaled;
use super::{Effects, Provider, StepContext, StepError, StepFuture};
use crate::plan::service::SmokeCheck;
use crate::plan::{Operation, Step};
use crate::providers::service::{check_response, health_client};
use crate::providers::tldw_api::TldwApi;
use crate::state::StepRecord;

pub struct SmokeGate;

/// The pause between two attempts of one request.
const BETWEEN_ATTEMPTS: Duration = Duration::from_secs(1);

/// Runs one smoke request until it passes or its attempts run out.
async fn run_one(api: Option<&TldwApi>, check: &SmokeCheck) -> Result<(), String> {
    let SmokeCheck {
        name,
        url,
        auth,
        expect_status,
        expect_json,
        timeout_ms,
        retries,
    } = check;
    let timeout = Duration::from_millis(*timeout_ms);
    let client = health_client();
    let mut attempt = 0;
    loop {
        let request = if *auth {
            let api = api.ok_or_else(|| {
                format!(
                    "smoke gate `{name}` sends the API token, but `target.api` is not configured"
                )
            })?;
            api.authorized_get(url, timeout)
                .map_err(|problem| format!("smoke gate `{name}`: {problem}"))?
        } else {
            client.get(url).timeout(timeout)
        };
        match check_response(request, url, *expect_status, expect_json.as_ref(), !*auth).await {
            Ok(()) => return Ok(()),
            Err(problem) if attempt >= *retries => {
                let tries = attempt + 1;
                return Err(format!(
                    "smoke gate `{name}` failed after {tries} attempt{}: {problem}",
                    if tries == 1 { "" } else { "s" }
                ));
            }
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(BETWEEN_ATTEMPTS).await;
            }
        }
    }
}

/// Runs every smoke request; the failures, joined, when any fails.
pub async fn check_all<'a>(
    api: Option<&TldwApi>,
    checks: impl IntoIterator<Item = &'a SmokeCheck>,
) -> Result<(), String> {
    let mut failures = Vec::new();
    for check in checks {
        if let Err(failure) = run_one(api, check).await {
            failures.push(failure);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

impl Provider for SmokeGate {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(journaled(cx, step, None, async {
            let checks = step
                .operations
                .iter()
                .filter_map(|operation| match operation {
                    Operation::Smoke(check) => Some(check),
                    _ => None,
                });
            check_all(cx.api, checks).await.map_err(StepError::Message)
        }))
    }
}
