//! Per-user storage quotas.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::transport::route_missing;
use super::{ApiError, TldwApi, routes};

#[derive(serde::Deserialize)]
struct QuotaReply {
    /// Required, though `null` is a value: a missing field is not the documented JSON.
    #[serde(deserialize_with = "present_or_null")]
    quota_mb: Option<u64>,
}

fn present_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    <Option<u64> as serde::Deserialize>::deserialize(deserializer)
}

impl TldwApi {
    /// `GET /storage-quotas/users/{id}` for each user, at most `concurrency` in flight; returns
    /// username → quota in MB (`None` = unlimited). Stops at the first error.
    pub async fn quotas(
        &self,
        users: &BTreeMap<String, i64>,
    ) -> Result<BTreeMap<String, Option<u64>>, ApiError> {
        let outcomes = self
            .bounded(
                users.iter().map(|(name, id)| (name.clone(), *id)),
                |(name, id)| {
                    let api = self.clone();
                    async move { api.quota(id).await.map(|quota| (name, quota)) }
                },
                |outcome| outcome.is_err(),
            )
            .await;
        outcomes.into_iter().collect()
    }

    /// `GET /storage-quotas/users/{id}`: the user's quota in MB, `None` when unlimited.
    pub async fn quota(&self, user_id: i64) -> Result<Option<u64>, ApiError> {
        let url = self.url(
            routes::USER_STORAGE_QUOTA,
            &[("user_id", &user_id.to_string())],
        );
        let reply = self.send(Method::GET, url, None).await?;
        if reply.status == StatusCode::NOT_FOUND && !route_missing(&reply) {
            return Err(ApiError::UnknownUser {
                target: reply.target,
                user_id,
            });
        }
        let quota: QuotaReply =
            self.expect_json(reply, "`{\"quota_mb\": non-negative integer or null, …}`")?;
        Ok(quota.quota_mb)
    }

    /// `PUT /storage-quotas/users/{id}` with `{"quota_mb": n|null}` (`None` removes the limit).
    /// Idempotent: repeating it sets the same value.
    pub async fn set_quota(&self, user_id: i64, quota_mb: Option<u64>) -> Result<(), ApiError> {
        let url = self.url(
            routes::USER_STORAGE_QUOTA,
            &[("user_id", &user_id.to_string())],
        );
        let reply = self
            .send(Method::PUT, url, Some(&json!({ "quota_mb": quota_mb })))
            .await?;
        if reply.status == StatusCode::NOT_FOUND && !route_missing(&reply) {
            return Err(ApiError::UnknownUser {
                target: reply.target,
                user_id,
            });
        }
        self.expect_success(reply).map(drop)
    }

    /// Applies many quota changes, at most `concurrency` in flight, and reports every one in the
    /// order given, so a caller can journal and undo exactly what succeeded. One failure does not
    /// stop the others.
    pub async fn set_quotas(
        &self,
        changes: &[(String, i64, Option<u64>)],
    ) -> Vec<(String, Result<(), ApiError>)> {
        self.bounded(
            changes.iter().cloned(),
            |(name, id, quota)| {
                let api = self.clone();
                async move { (name, api.set_quota(id, quota).await) }
            },
            |_| false,
        )
        .await
    }
}
