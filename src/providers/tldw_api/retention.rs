//! Retention policies, changed through the server's own preview-then-signed-PUT.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::transport::{Reply, detail_code, route_missing};
use super::{ApiError, Target, TldwApi, routes};

#[derive(serde::Deserialize)]
struct RetentionList {
    policies: Vec<RetentionPolicy>,
}

#[derive(serde::Deserialize)]
struct RetentionPolicy {
    key: String,
    /// `int | None` in tldw's `RetentionPolicy` model: `null` when the setting is unset.
    #[serde(default)]
    days: Option<u64>,
}

#[derive(serde::Deserialize)]
struct RetentionPreview {
    preview_signature: String,
    /// The days the PUT would store: the requested ones, or the floor tldw raises them to.
    #[serde(default)]
    new_days: Option<u64>,
}

/// How a retention preview ended.
enum Preview {
    Signed {
        signature: String,
        target: Target,
        new_days: Option<u64>,
    },
    /// 409 `stale_current_days`: the live value is not the `current_days` sent.
    Stale,
}

/// How a retention PUT ended, for [`TldwApi::set_retention`] to decide what comes next.
enum RetentionPut {
    Done,
    /// 400 `expired_preview_signature` or `invalid_preview_signature`: the signature outlived
    /// its lifetime, or no longer binds the live current days (they moved since the preview).
    SignatureRefused {
        target: Target,
        detail: String,
    },
}

impl TldwApi {
    /// `GET /retention-policies`: policy key → retention in days, as the server enforces it now;
    /// `None` where the server reports `null` (the setting is unset, so its default applies).
    pub async fn retention_policies(&self) -> Result<BTreeMap<String, Option<u64>>, ApiError> {
        let reply = self
            .send(Method::GET, self.url(routes::RETENTION_POLICIES, &[]), None)
            .await?;
        let list: RetentionList = self.expect_json(
            reply,
            "`{\"policies\": [{\"key\": string, \"days\": non-negative integer or null}]}`",
        )?;
        Ok(list
            .policies
            .into_iter()
            .map(|policy| (policy.key, policy.days))
            .collect())
    }

    /// Changes a retention policy from `current_days` to `days` the way the server wants it:
    /// `POST …/{key}/preview {"current_days","days"}`, then `PUT …/{key} {"days",
    /// "preview_signature"}`.
    ///
    /// - A signature the PUT refuses as expired or invalid (a slow link outlived its lifetime,
    ///   or the live value moved after the preview, which the signature binds) is replaced by one
    ///   fresh preview from `current_days`, and the PUT is tried once more.
    /// - A 409 `stale_current_days` from a preview means the policy is no longer at
    ///   `current_days`: the days are read again and the result is
    ///   [`ApiError::StaleRetention`] with what the server has now, unless the server already has
    ///   `days`. That case is success: the target is reached (a retried PUT whose first response
    ///   was lost lands here), so running the change twice is safe.
    /// - A preview whose `new_days` is not `days` (tldw raises the weekly privilege-snapshot
    ///   window to the daily one) is not applied: [`ApiError::RetentionRaised`].
    /// - A policy the server reports as `null` cannot be changed through the API:
    ///   [`ApiError::RetentionUnset`].
    pub async fn set_retention(
        &self,
        key: &str,
        current_days: u64,
        days: u64,
    ) -> Result<(), ApiError> {
        // `.` and `..` would be dropped from the URL path and address another route.
        if matches!(key, "" | "." | "..") {
            return Err(ApiError::InvalidRetentionKey {
                key: key.to_string(),
            });
        }
        let mut fresh_preview_used = false;
        loop {
            let (signature, target, new_days) =
                match self.preview_retention(key, current_days, days).await? {
                    Preview::Stale => return self.confirm_retention(key, current_days, days).await,
                    Preview::Signed {
                        signature,
                        target,
                        new_days,
                    } => (signature, target, new_days),
                };
            if let Some(new_days) = new_days.filter(|&new_days| new_days != days) {
                return Err(ApiError::RetentionRaised {
                    target,
                    key: key.to_string(),
                    days,
                    new_days,
                });
            }
            match self.put_retention(key, days, &signature).await? {
                RetentionPut::Done => return Ok(()),
                RetentionPut::SignatureRefused { target, detail } => {
                    if fresh_preview_used {
                        return Err(ApiError::SignatureRejected { target, detail });
                    }
                    tracing::debug!(key, "retention signature refused; previewing again");
                    fresh_preview_used = true;
                }
            }
        }
    }

    /// The preview's signature, or [`Preview::Stale`] when the server says `current_days` is
    /// stale.
    async fn preview_retention(
        &self,
        key: &str,
        current_days: u64,
        days: u64,
    ) -> Result<Preview, ApiError> {
        let url = self.url(routes::RETENTION_PREVIEW, &[("key", key)]);
        let body = json!({ "current_days": current_days, "days": days });
        let reply = self.send(Method::POST, url, Some(&body)).await?;
        if let Some(error) = self.retention_error(&reply, key, days) {
            return Err(error);
        }
        if reply.status == StatusCode::CONFLICT
            && detail_code(&reply.body).as_deref() == Some("stale_current_days")
        {
            return Ok(Preview::Stale);
        }
        let target = reply.target.clone();
        let preview: RetentionPreview = self.expect_json(
            reply,
            "a preview with a `preview_signature` string and `new_days`",
        )?;
        Ok(Preview::Signed {
            signature: preview.preview_signature,
            target,
            new_days: preview.new_days,
        })
    }

    async fn put_retention(
        &self,
        key: &str,
        days: u64,
        signature: &str,
    ) -> Result<RetentionPut, ApiError> {
        let url = self.url(routes::RETENTION_POLICY, &[("key", key)]);
        let body = json!({ "days": days, "preview_signature": signature });
        let reply = self.send(Method::PUT, url, Some(&body)).await?;
        if let Some(error) = self.retention_error(&reply, key, days) {
            return Err(error);
        }
        let code = detail_code(&reply.body);
        match (reply.status, code.as_deref()) {
            (
                StatusCode::BAD_REQUEST,
                Some("expired_preview_signature" | "invalid_preview_signature"),
            ) => Ok(RetentionPut::SignatureRefused {
                detail: self.detail(&reply.body),
                target: reply.target,
            }),
            _ => self.expect_success(reply).map(|_| RetentionPut::Done),
        }
    }

    /// The errors both retention calls share: unknown key and days out of range.
    fn retention_error(&self, reply: &Reply, key: &str, days: u64) -> Option<ApiError> {
        let code = detail_code(&reply.body);
        match reply.status {
            StatusCode::NOT_FOUND if !route_missing(reply) => Some(ApiError::UnknownRetentionKey {
                target: reply.target.clone(),
                key: key.to_string(),
            }),
            StatusCode::BAD_REQUEST if code.as_deref() == Some("invalid_range") => {
                Some(ApiError::RetentionOutOfRange {
                    target: reply.target.clone(),
                    key: key.to_string(),
                    days,
                })
            }
            _ => None,
        }
    }

    /// After a 409: success when the server already has `days`, else what it has instead.
    async fn confirm_retention(
        &self,
        key: &str,
        current_days: u64,
        days: u64,
    ) -> Result<(), ApiError> {
        let policies = self.retention_policies().await?;
        let target = || Target {
            method: Method::GET.to_string(),
            url: self.url(routes::RETENTION_POLICIES, &[]).to_string(),
        };
        match policies.get(key) {
            Some(Some(actual)) if *actual == days => Ok(()),
            Some(Some(actual)) => Err(ApiError::StaleRetention {
                key: key.to_string(),
                expected: current_days,
                actual: *actual,
            }),
            Some(None) => Err(ApiError::RetentionUnset {
                target: target(),
                key: key.to_string(),
            }),
            None => Err(ApiError::UnknownRetentionKey {
                target: target(),
                key: key.to_string(),
            }),
        }
    }
}
