//! The tldw admin API provider: a reqwest client for `/api/v1/admin/*` that resolves usernames to
//! user ids, reads and writes per-user storage quotas, changes retention policies through the
//! server's own preview-then-signed-PUT, and reads the effective registration settings back. It
//! owns the transport policy (timeouts, bounded retries with exponential backoff, bounded
//! concurrency) and turns every HTTP outcome into an [`ApiError`] that names the request's URL.
//!
//! It must never reveal the admin token: the header value is marked sensitive, `Debug` of every
//! type here is written by hand, logs carry only method, path, status and duration, and text the
//! server sends back is scrubbed of the token before it lands in an error. It knows nothing about
//! plans, addresses or the command line; callers map its results onto resources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::spec::types::ApiAuth;

/// The admin routes this provider calls. Kept together because the upstream contract moves
/// weekly; `{name}` segments are filled in (percent-encoded) by [`TldwApi`].
pub mod routes {
    /// `GET ?page=&limit=&search=` → `{"users":[{"id","username",…}],"total","pages",…}`.
    pub const USERS: &str = "/api/v1/admin/users";
    /// `GET` → `{"quota_mb": int|null, …}`; `PUT {"quota_mb": int|null}`.
    pub const USER_STORAGE_QUOTA: &str = "/api/v1/admin/storage-quotas/users/{user_id}";
    /// `GET` → `{"policies":[{"key","days": int|null,"description"}]}`.
    pub const RETENTION_POLICIES: &str = "/api/v1/admin/retention-policies";
    /// `PUT {"days","preview_signature"}` → `{"key","days","description"}`; refusals are 400
    /// `preview_signature_required` / `invalid_preview_signature` /
    /// `expired_preview_signature` / `invalid_range` and 404 `unknown_policy`, never 409
    /// (`docs/admin-api.md`).
    pub const RETENTION_POLICY: &str = "/api/v1/admin/retention-policies/{key}";
    /// `POST {"current_days","days"}` → `{"key","current_days","new_days","counts",
    /// "preview_signature","notes"}`; 409 `stale_current_days`, 400 `invalid_range`, 404
    /// `unknown_policy`.
    pub const RETENTION_PREVIEW: &str = "/api/v1/admin/retention-policies/{key}/preview";
    /// `GET` → [`super::RegistrationSettings`].
    pub const REGISTRATION_SETTINGS: &str = "/api/v1/admin/registration-settings";
}

/// The largest page the users listing serves (`limit ≤ 100`).
const USERS_PAGE_LIMIT: u64 = 100;
/// Up to this many names are resolved with one `search` each; more page through the listing,
/// which costs `users / 100` requests however many names are wanted.
const SEARCH_AT_MOST: usize = 8;
/// Backoff between attempts doubles from `ApiConfig::backoff` up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The largest response body read from the admin API, by default: no documented reply comes
/// near it (a page of 100 users is a few tens of KiB), and a bigger one is a misrouted request
/// or a misbehaving proxy that would otherwise be held in memory whole.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 << 20;
/// Server-provided text quoted in an error is cut to this many characters.
const DETAIL_MAX_CHARS: usize = 500;
const REDACTED: &str = "(redacted)";

/// How to reach the admin API. `Debug` never shows the token.
#[derive(Clone)]
pub struct ApiConfig {
    /// Base URL, such as `https://tldw.example.org` (a trailing slash is tolerated).
    pub url: String,
    /// The admin token (JWT access token or API key).
    pub token: String,
    /// Which header carries the token.
    pub auth: ApiAuth,
    /// Requests in flight at once when many users are read or written. Default 16.
    pub concurrency: usize,
    /// Timeout of one request, response body included. Default 10 s.
    pub timeout: Duration,
    /// Timeout of establishing a connection. Default 3 s.
    pub connect_timeout: Duration,
    /// Attempts after the first one for transient failures. Default 3.
    pub retries: u32,
    /// Wait before the first retry; doubles for each later one (capped at 5 s). Default 100 ms.
    pub backoff: Duration,
    /// A response body larger than this is refused unread. Default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (8 MiB).
    pub max_response_bytes: u64,
}

impl ApiConfig {
    /// A configuration with the defaults above.
    pub fn new(url: impl Into<String>, token: impl Into<String>, auth: ApiAuth) -> ApiConfig {
        ApiConfig {
            url: url.into(),
            token: token.into(),
            auth,
            concurrency: 16,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("url", &self.url)
            .field("token", &REDACTED)
            .field("auth", &self.auth)
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

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

/// One request, as errors name it: method and full URL (never headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: String,
    pub url: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid tldw API URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("the tldw API token {reason}")]
    InvalidToken { reason: &'static str },
    #[error("cannot set up the HTTP client for {url}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target}: the token was refused (HTTP 401)")]
    Unauthorized { target: Target },
    #[error("{target}: the principal lacks the admin role (HTTP 403)")]
    Forbidden { target: Target },
    #[error("{target}: the server is too old or the route is disabled (HTTP 404)")]
    RouteNotFound { target: Target },
    #[error("{target}: the server has no user with id {user_id} (HTTP 404)")]
    UnknownUser { target: Target, user_id: i64 },
    #[error("{target}: the server has no retention policy `{key}` (HTTP 404)")]
    UnknownRetentionKey { target: Target, key: String },
    #[error("`{key}` cannot be a retention policy key")]
    InvalidRetentionKey { key: String },
    #[error(
        "{target}: {days} days is outside the range the server allows for retention policy `{key}` (HTTP 400)"
    )]
    RetentionOutOfRange {
        target: Target,
        key: String,
        days: u64,
    },
    #[error(
        "retention policy `{key}` moved on the server: the change was planned from {expected} days, the server now has {actual}"
    )]
    StaleRetention {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("{target}: the server refused a fresh retention preview signature too: {detail}")]
    SignatureRejected { target: Target, detail: String },
    #[error(
        "{target}: the server would keep {new_days} days for retention policy `{key}`, not the {days} asked for (tldw keeps weekly privilege snapshots at least as long as `privilege_snapshots`); nothing was changed"
    )]
    RetentionRaised {
        target: Target,
        key: String,
        days: u64,
        new_days: u64,
    },
    #[error(
        "{target}: the server reports no days for retention policy `{key}` (null); tldw_server then compares a preview against 0 while requiring current_days >= 1, so the admin API cannot change this policy: set it in the .env and restart the server"
    )]
    RetentionUnset { target: Target, key: String },
    #[error(
        "{target}: the response is larger than {}, the most this client reads from the admin API; refused unread",
        show_bytes(*limit)
    )]
    ResponseTooLarge { target: Target, limit: u64 },
    #[error("{target}: the server rejected the request (HTTP 422): {detail}")]
    Validation { target: Target, detail: String },
    #[error(
        "{target}: the server redirects (HTTP {status}) to {location}; set the API URL to the final address"
    )]
    Redirected {
        target: Target,
        status: u16,
        location: String,
    },
    #[error("{target}: unexpected HTTP {status}: {detail}")]
    Status {
        target: Target,
        status: u16,
        detail: String,
    },
    #[error("{target}: the server failed with HTTP {status} on all {attempts} attempts: {detail}")]
    Server {
        target: Target,
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error(
        "{target}: cannot connect: connection refused, host unreachable or name not resolved ({attempts} attempts)"
    )]
    Unreachable {
        target: Target,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target}: timed out after {timeout:?} waiting for {phase} ({attempts} attempts)")]
    Timeout {
        target: Target,
        phase: &'static str,
        timeout: Duration,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{target}: the connection closed before a complete response arrived ({attempts} attempts)"
    )]
    ConnectionClosed {
        target: Target,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target}: the response is not the documented JSON: expected {expected} ({reason})")]
    UnexpectedBody {
        target: Target,
        expected: &'static str,
        reason: String,
    },
}

impl ApiError {
    /// The failure may go away on its own (the transport or the server failed, after retries):
    /// worth trying the whole operation again later, unlike a refused token or a bad request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Server { .. }
                | ApiError::Unreachable { .. }
                | ApiError::Timeout { .. }
                | ApiError::ConnectionClosed { .. }
        )
    }
}

/// The admin API client. Cheap to clone (shares one connection pool). `Debug` never shows the
/// token.
#[derive(Clone)]
pub struct TldwApi {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    base: Url,
    /// Kept only to scrub it out of text the server sends back.
    token: String,
    auth: ApiAuth,
    concurrency: usize,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_response_bytes: u64,
}

impl fmt::Debug for TldwApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TldwApi")
            .field("url", &inner.base.as_str())
            .field("token", &REDACTED)
            .field("auth", &inner.auth)
            .field("concurrency", &inner.concurrency)
            .field("timeout", &inner.timeout)
            .field("connect_timeout", &inner.connect_timeout)
            .field("retries", &inner.retries)
            .field("max_response_bytes", &inner.max_response_bytes)
            .finish()
    }
}

/// A response that was not a transient failure: any 1xx–4xx status, or a 2xx.
struct Reply {
    target: Target,
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

/// Why one attempt produced no reply.
enum AttemptError {
    Transport(reqwest::Error),
    /// The body is larger than `max_response_bytes`.
    TooLarge,
}

impl From<reqwest::Error> for AttemptError {
    fn from(error: reqwest::Error) -> AttemptError {
        AttemptError::Transport(error)
    }
}

/// Why one attempt failed in a way worth retrying.
enum Transient {
    Status {
        status: StatusCode,
        body: Vec<u8>,
    },
    Transport {
        kind: TransportKind,
        source: reqwest::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportKind {
    Unreachable,
    ConnectTimeout,
    Timeout,
    Closed,
}

impl TransportKind {
    fn of(error: &reqwest::Error) -> TransportKind {
        match (error.is_timeout(), error.is_connect()) {
            (true, true) => TransportKind::ConnectTimeout,
            (true, false) => TransportKind::Timeout,
            (false, true) => TransportKind::Unreachable,
            (false, false) => TransportKind::Closed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TransportKind::Unreachable => "unreachable",
            TransportKind::ConnectTimeout => "connect timeout",
            TransportKind::Timeout => "timeout",
            TransportKind::Closed => "connection closed",
        }
    }
}

#[derive(serde::Deserialize)]
struct UsersPage {
    users: Vec<UserSummary>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    pages: Option<u64>,
    /// The page size the server actually used, which may be below the one asked for.
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

impl UsersPage {
    /// Number of pages, from `pages`, `pagination.pages` or `total`, whichever the server sent.
    fn page_count(&self) -> Option<u64> {
        let limit = self.limit.filter(|&l| l > 0).unwrap_or(USERS_PAGE_LIMIT);
        self.pages
            .or_else(|| self.pagination.as_ref().and_then(|p| p.pages))
            .or_else(|| self.total.map(|total| total.div_ceil(limit)))
    }
}

#[derive(serde::Deserialize)]
struct Pagination {
    #[serde(default)]
    pages: Option<u64>,
}

#[derive(serde::Deserialize)]
struct UserSummary {
    id: i64,
    username: String,
}

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
    /// Builds the client. Fails for a URL that is not `http(s)://host[:port][/prefix]` or that
    /// carries credentials, and for an empty token or one that cannot be a header value.
    /// Proxies come from the environment as reqwest reads them, except for a loopback URL,
    /// which never goes through a proxy.
    pub fn new(config: ApiConfig) -> Result<TldwApi, ApiError> {
        let base = parse_base_url(&config.url)?;
        if config.token.is_empty() {
            return Err(ApiError::InvalidToken { reason: "is empty" });
        }
        let (name, value) = match config.auth {
            ApiAuth::Bearer => (AUTHORIZATION, format!("Bearer {}", config.token)),
            ApiAuth::ApiKey => (HeaderName::from_static("x-api-key"), config.token.clone()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ApiError::InvalidToken {
            reason: "contains characters an HTTP header cannot carry (a newline?)",
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(name, value);

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("tldw-ops/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could carry X-API-KEY to another host; refuse to follow any.
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&base) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|source| ApiError::Client {
            url: base.to_string(),
            source: source.without_url(),
        })?;
        Ok(TldwApi {
            inner: Arc::new(Inner {
                client,
                base,
                token: config.token,
                auth: config.auth,
                concurrency: config.concurrency.max(1),
                timeout: config.timeout,
                connect_timeout: config.connect_timeout,
                retries: config.retries,
                backoff: config.backoff,
                max_response_bytes: config.max_response_bytes,
            }),
        })
    }

    /// A GET of `url` with the admin credential and `timeout`, for a smoke gate. Only a URL on
    /// the API's own origin (scheme, host and port) gets one: a desired-state file cannot send
    /// the token anywhere else. Redirects are not followed.
    pub fn authorized_get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, String> {
        let parsed = Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
        let base = &self.inner.base;
        if parsed.scheme() != base.scheme()
            || parsed.host_str() != base.host_str()
            || parsed.port_or_known_default() != base.port_or_known_default()
        {
            return Err(format!(
                "{url} is not on the admin API's origin, so the API token is not sent there"
            ));
        }
        Ok(self.inner.client.get(parsed).timeout(timeout))
    }

    /// Resolves usernames to user ids in one pass. Up to a handful of names: one `search` per
    /// name (paging through the matches until the exact username shows up). More: every page of
    /// the users listing, 100 users a page, fetched concurrently after the first. Usernames are
    /// matched case-insensitively (tldw lower-cases them); the result is keyed by the names as
    /// given. Unknown names are absent from the result; the caller reports them.
    pub async fn resolve_users(
        &self,
        usernames: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, i64>, ApiError> {
        if usernames.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ids = if usernames.len() <= SEARCH_AT_MOST {
            self.search_users(usernames).await?
        } else {
            let wanted: BTreeSet<String> = usernames.iter().map(|n| n.to_lowercase()).collect();
            self.list_users(&wanted).await?
        };
        Ok(usernames
            .iter()
            .filter_map(|name| ids.get(&name.to_lowercase()).map(|id| (name.clone(), *id)))
            .collect())
    }

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

    // -- users ------------------------------------------------------------------------------

    /// One search per name, concurrently; lower-cased username → id for those found.
    async fn search_users(
        &self,
        usernames: &BTreeSet<String>,
    ) -> Result<HashMap<String, i64>, ApiError> {
        let wanted: BTreeSet<String> = usernames.iter().map(|n| n.to_lowercase()).collect();
        let outcomes = self
            .bounded(
                wanted,
                |name| {
                    let api = self.clone();
                    async move { api.search_user(&name).await.map(|id| (name, id)) }
                },
                |outcome| outcome.is_err(),
            )
            .await;
        let mut ids = HashMap::new();
        for outcome in outcomes {
            if let (name, Some(id)) = outcome? {
                ids.insert(name, id);
            }
        }
        Ok(ids)
    }

    /// Pages through `?search=<name>` until the exact (lower-cased) username shows up.
    async fn search_user(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let mut page = 1;
        loop {
            let users = self.users_page(page, Some(name)).await?;
            if let Some(user) = users
                .users
                .iter()
                .find(|user| user.username.to_lowercase() == name)
            {
                return Ok(Some(user.id));
            }
            if is_last_page(&users, page) {
                return Ok(None);
            }
            page += 1;
        }
    }

    /// Reads every page of the listing once; lower-cased username → id for the wanted ones.
    async fn list_users(
        &self,
        wanted: &BTreeSet<String>,
    ) -> Result<HashMap<String, i64>, ApiError> {
        let mut ids = HashMap::new();
        let mut keep = |page: UsersPage| {
            for user in page.users {
                let name = user.username.to_lowercase();
                if wanted.contains(&name) {
                    ids.insert(name, user.id);
                }
            }
        };
        let first = self.users_page(1, None).await?;
        match first.page_count() {
            Some(pages) => {
                keep(first);
                let outcomes = self
                    .bounded(
                        2..=pages,
                        |page| {
                            let api = self.clone();
                            async move { api.users_page(page, None).await }
                        },
                        |outcome| outcome.is_err(),
                    )
                    .await;
                for outcome in outcomes {
                    keep(outcome?);
                }
            }
            // No page count in the response: read on until a short page.
            None => {
                let mut page = 1;
                let mut current = first;
                loop {
                    let last = is_last_page(&current, page);
                    keep(current);
                    if last {
                        break;
                    }
                    page += 1;
                    current = self.users_page(page, None).await?;
                }
            }
        }
        Ok(ids)
    }

    async fn users_page(&self, page: u64, search: Option<&str>) -> Result<UsersPage, ApiError> {
        let mut url = self.url(routes::USERS, &[]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("page", &page.to_string());
            query.append_pair("limit", &USERS_PAGE_LIMIT.to_string());
            if let Some(search) = search {
                query.append_pair("search", search);
            }
        }
        let reply = self.send(Method::GET, url, None).await?;
        self.expect_json(
            reply,
            "`{\"users\": [{\"id\": integer, \"username\": string}], …}`",
        )
    }

    // -- retention --------------------------------------------------------------------------

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

    // -- transport --------------------------------------------------------------------------

    /// `route` with its `{name}` segments replaced by `params` (percent-encoded), under the base.
    fn url(&self, route: &str, params: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        {
            // The base was checked to be a hierarchical http(s) URL, which has segments.
            let Ok(mut segments) = url.path_segments_mut() else {
                unreachable!("the base URL was checked to have a path");
            };
            segments.pop_if_empty();
            for segment in route.split('/').filter(|s| !s.is_empty()) {
                let value = segment
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .and_then(|name| params.iter().find(|(n, _)| *n == name))
                    .map_or(segment, |(_, value)| value);
                segments.push(value);
            }
        }
        url
    }

    /// Sends a request, retrying connect errors, timeouts, dropped connections and 5xx with
    /// exponential backoff (`retries` more attempts at most). Any other status is returned as is;
    /// 4xx is never retried.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply, ApiError> {
        let inner = &self.inner;
        let target = Target {
            method: method.to_string(),
            url: url.to_string(),
        };
        let attempts = inner.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let failure = match self.attempt(&method, &url, body).await {
                Err(AttemptError::TooLarge) => {
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        limit = inner.max_response_bytes,
                        "tldw admin API: response too large"
                    );
                    return Err(ApiError::ResponseTooLarge {
                        target,
                        limit: inner.max_response_bytes,
                    });
                }
                Ok((status, location, body)) if !status.is_server_error() => {
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        status = status.as_u16(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "tldw admin API"
                    );
                    return Ok(Reply {
                        target,
                        status,
                        location,
                        body,
                    });
                }
                Ok((status, _, body)) => {
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        status = status.as_u16(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "tldw admin API: server error"
                    );
                    Transient::Status { status, body }
                }
                Err(AttemptError::Transport(source)) if source.is_builder() => {
                    return Err(ApiError::Client {
                        url: target.url,
                        source: source.without_url(),
                    });
                }
                Err(AttemptError::Transport(source)) => {
                    let kind = TransportKind::of(&source);
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        error = kind.name(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "tldw admin API: transport error"
                    );
                    Transient::Transport { kind, source }
                }
            };
            if attempt >= attempts {
                return Err(self.exhausted(target, attempts, failure));
            }
            tokio::time::sleep(self.backoff_before(attempt)).await;
        }
    }

    /// One attempt: status, `Location` header and the whole body, read up to
    /// `max_response_bytes` (a larger declared or received body stops the read).
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>), AttemptError> {
        let mut request = self.inner.client.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let limit = self.inner.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(AttemptError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(AttemptError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, location, body))
    }

    /// Wait after failed attempt number `attempt` (1-based): backoff, doubled each time, capped.
    fn backoff_before(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        self.inner
            .backoff
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }

    fn exhausted(&self, target: Target, attempts: u32, failure: Transient) -> ApiError {
        match failure {
            Transient::Status { status, body } => ApiError::Server {
                target,
                status: status.as_u16(),
                attempts,
                detail: self.detail(&body),
            },
            Transient::Transport { kind, source } => {
                let source = source.without_url();
                match kind {
                    TransportKind::Unreachable => ApiError::Unreachable {
                        target,
                        attempts,
                        source,
                    },
                    TransportKind::ConnectTimeout => ApiError::Timeout {
                        target,
                        phase: "a connection",
                        timeout: self.inner.connect_timeout,
                        attempts,
                        source,
                    },
                    TransportKind::Timeout => ApiError::Timeout {
                        target,
                        phase: "the response",
                        timeout: self.inner.timeout,
                        attempts,
                        source,
                    },
                    TransportKind::Closed => ApiError::ConnectionClosed {
                        target,
                        attempts,
                        source,
                    },
                }
            }
        }
    }

    /// The reply when it is a success, else the error its status means on any admin route.
    fn expect_success(&self, reply: Reply) -> Result<Reply, ApiError> {
        if reply.status.is_success() {
            return Ok(reply);
        }
        let Reply {
            target,
            status,
            location,
            body,
        } = reply;
        Err(match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized { target },
            StatusCode::FORBIDDEN => ApiError::Forbidden { target },
            StatusCode::NOT_FOUND => ApiError::RouteNotFound { target },
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation {
                target,
                detail: self.detail(&body),
            },
            status if status.is_redirection() => ApiError::Redirected {
                target,
                status: status.as_u16(),
                location: location.map_or_else(|| "(no location)".to_string(), |l| self.scrub(&l)),
            },
            status => ApiError::Status {
                target,
                status: status.as_u16(),
                detail: self.detail(&body),
            },
        })
    }

    /// The reply's JSON as `T`, after [`TldwApi::expect_success`].
    fn expect_json<T: DeserializeOwned>(
        &self,
        reply: Reply,
        expected: &'static str,
    ) -> Result<T, ApiError> {
        let reply = self.expect_success(reply)?;
        serde_json::from_slice(&reply.body).map_err(|error| ApiError::UnexpectedBody {
            target: reply.target,
            expected,
            reason: self.scrub(&error.to_string()),
        })
    }

    /// What the server said, for an error message: FastAPI's `detail` (a string, or the
    /// validation errors as `field: message; …`), else the start of the body. Scrubbed of the
    /// token in case a proxy or a misbehaving server echoes headers.
    fn detail(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => match map.get("detail") {
                Some(Value::String(detail)) => detail.clone(),
                Some(Value::Array(errors)) => errors
                    .iter()
                    .map(validation_error_text)
                    .collect::<Vec<_>>()
                    .join("; "),
                Some(other) => other.to_string(),
                None => Value::Object(map).to_string(),
            },
            Ok(other) => other.to_string(),
            Err(_) if body.is_empty() => "(empty body)".to_string(),
            Err(_) => String::from_utf8_lossy(body).trim().to_string(),
        };
        truncate(self.scrub(&text))
    }

    fn scrub(&self, text: &str) -> String {
        let token = &self.inner.token;
        if token.is_empty() {
            text.to_string()
        } else {
            text.replace(token.as_str(), REDACTED)
        }
    }

    /// Runs `make(item)` for every item with at most `concurrency` futures in flight, returning
    /// the outputs in item order. When `stop` is true of an output, the rest are cancelled and
    /// the outputs finished so far (that one included) are returned.
    async fn bounded<I, T, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        mut make: F,
        stop: impl Fn(&T) -> bool,
    ) -> Vec<T>
    where
        F: FnMut(I) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut items = items.into_iter().enumerate();
        let mut running = JoinSet::new();
        let mut spawn_next = |running: &mut JoinSet<(usize, T)>| match items.next() {
            Some((index, item)) => {
                let future = make(item);
                running.spawn(async move { (index, future.await) });
                true
            }
            None => false,
        };
        for _ in 0..self.inner.concurrency {
            if !spawn_next(&mut running) {
                break;
            }
        }
        let mut outputs = Vec::new();
        while let Some(joined) = running.join_next().await {
            let (index, output) = match joined {
                Ok(done) => done,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => continue,
            };
            let stopping = stop(&output);
            outputs.push((index, output));
            if stopping {
                running.abort_all();
                break;
            }
            spawn_next(&mut running);
        }
        outputs.sort_by_key(|(index, _)| *index);
        outputs.into_iter().map(|(_, output)| output).collect()
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ApiError> {
    let invalid = |reason| ApiError::InvalidUrl {
        url: raw.to_string(),
        reason,
    };
    let url = Url::parse(raw.trim_end_matches('/'))
        .map_err(|_| invalid("not an absolute URL such as `http://127.0.0.1:8000`"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Errors name the URL; credentials in it would end up in messages and logs.
        return Err(ApiError::InvalidUrl {
            url: "(URL with credentials, not shown)".to_string(),
            reason: "the URL must not contain credentials; the token is configured separately",
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(url)
}

/// `localhost`, `127.0.0.0/8` and `::1` never go through a proxy: a proxy cannot reach the
/// operator's own loopback.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// FastAPI's plain `detail` string, lower-cased, when the body has one.
fn detail_code(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()?.get("detail")? {
        Value::String(detail) => Some(detail.trim().to_lowercase()),
        _ => None,
    }
}

/// A 404 from the router itself (FastAPI's `Not Found`, or a proxy's non-JSON page) rather than
/// from a handler that looked something up.
fn route_missing(reply: &Reply) -> bool {
    detail_code(&reply.body).is_none_or(|code| code == "not found")
}

/// Whether `page` (1-based) is the last of the listing it came from.
impl TldwApi {
    /// Every user the server has: username (as the server spells it) → user id, one page of
    /// the listing after the other. For `import`, which has no names to look up.
    pub async fn all_users(&self) -> Result<BTreeMap<String, i64>, ApiError> {
        let mut users = BTreeMap::new();
        let mut page = 1;
        loop {
            let current = self.users_page(page, None).await?;
            let last = is_last_page(&current, page);
            users.extend(
                current
                    .users
                    .into_iter()
                    .map(|user| (user.username, user.id)),
            );
            if last {
                return Ok(users);
            }
            page += 1;
        }
    }
}

fn is_last_page(page: &UsersPage, number: u64) -> bool {
    match page.page_count() {
        Some(pages) => number >= pages,
        None => {
            page.users.is_empty()
                || (page.users.len() as u64) < page.limit.unwrap_or(USERS_PAGE_LIMIT)
        }
    }
}

/// `days: Input should be greater than or equal to 0` from one FastAPI validation error.
fn validation_error_text(error: &Value) -> String {
    let message = error
        .get("msg")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_string);
    let location: Vec<String> = error
        .get("loc")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter(|part| part.as_str() != Some("body"))
                .map(|part| match part {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if location.is_empty() {
        message
    } else {
        format!("{}: {message}", location.join("."))
    }
}

/// `8 MiB`, `512 KiB` or `1000 bytes`.
fn show_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(DETAIL_MAX_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str, token: &str) -> TldwApi {
        TldwApi::new(ApiConfig::new(url, token, ApiAuth::Bearer)).unwrap()
    }

    #[test]
    fn routes_are_filled_under_the_base_path_with_parameters_encoded_as_one_segment() {
        let api = api("https://tldw.example.org/prefix/", "t0ken");
        assert_eq!(
            api.url(routes::RETENTION_PREVIEW, &[("key", "a/b c")])
                .as_str(),
            "https://tldw.example.org/prefix/api/v1/admin/retention-policies/a%2Fb%20c/preview"
        );
        assert_eq!(
            api.url(routes::USER_STORAGE_QUOTA, &[("user_id", "42")])
                .as_str(),
            "https://tldw.example.org/prefix/api/v1/admin/storage-quotas/users/42"
        );
    }

    #[test]
    fn byte_limits_read_in_the_largest_whole_unit() {
        assert_eq!(show_bytes(8 << 20), "8 MiB");
        assert_eq!(show_bytes(512 << 10), "512 KiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
        assert_eq!(show_bytes((1 << 20) + 1), "1048577 bytes");
    }

    /// A chunked body declares no length: the limit stops the read once the body outgrows it.
    #[tokio::test]
    async fn a_streamed_body_that_outgrows_the_limit_is_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            let chunk = format!("{:x}\r\n{}\r\n", 512, "x".repeat(512));
            for _ in 0..8 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        let api = TldwApi::new(ApiConfig {
            max_response_bytes: 1024,
            retries: 0,
            ..ApiConfig::new(format!("http://{address}"), "t0ken", ApiAuth::Bearer)
        })
        .unwrap();
        let error = api.registration().await.unwrap_err();
        assert!(
            matches!(error, ApiError::ResponseTooLarge { limit: 1024, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("larger than 1 KiB"), "{error}");
        server.abort();
    }

    #[test]
    fn backoff_doubles_from_the_configured_start_and_is_capped() {
        let api = api("http://127.0.0.1:8000", "t0ken");
        let waits: Vec<Duration> = (1..=8).map(|attempt| api.backoff_before(attempt)).collect();
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(api.backoff_before(40), MAX_BACKOFF);
    }

    #[test]
    fn fastapi_validation_errors_read_as_field_and_message() {
        let api = api("http://127.0.0.1:8000", "t0ken");
        let body = br#"{"detail":[{"type":"missing","loc":["body","days"],"msg":"Field required","input":{}},{"type":"int_type","loc":["body","quota_mb"],"msg":"Input should be a valid integer","input":"x"}]}"#;
        assert_eq!(
            api.detail(body),
            "days: Field required; quota_mb: Input should be a valid integer"
        );
        assert_eq!(
            api.detail(br#"{"detail":"user_not_found"}"#),
            "user_not_found"
        );
        assert_eq!(api.detail(b""), "(empty body)");
        assert_eq!(
            api.detail(b"<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
    }

    #[test]
    fn server_text_that_echoes_the_token_is_scrubbed_and_long_text_is_cut() {
        let api = api("http://127.0.0.1:8000", "s3cret-admin-token");
        let echoed = br#"{"detail":"bad header Authorization: Bearer s3cret-admin-token"}"#;
        let detail = api.detail(echoed);
        assert!(!detail.contains("s3cret-admin-token"), "{detail}");
        assert!(detail.ends_with("Bearer (redacted)"), "{detail}");
        let long = "x".repeat(2000);
        assert_eq!(
            api.detail(long.as_bytes()).chars().count(),
            DETAIL_MAX_CHARS + 1
        );
    }

    #[test]
    fn only_loopback_hosts_bypass_proxies() {
        let loopback = |url: &str| is_loopback(&Url::parse(url).unwrap());
        assert!(loopback("http://127.0.0.1:8000"));
        assert!(loopback("http://127.1.2.3"));
        assert!(loopback("http://[::1]:8000"));
        assert!(loopback("http://LocalHost:8000"));
        assert!(!loopback("https://tldw.example.org"));
        assert!(!loopback("http://10.0.0.1"));
    }

    #[test]
    fn base_urls_must_be_plain_http_or_https() {
        assert!(parse_base_url("http://127.0.0.1:8000/").is_ok());
        assert!(parse_base_url("https://tldw.example.org/base").is_ok());
        for bad in [
            "127.0.0.1:8000",
            "ftp://example.org",
            "http://example.org/?x=1",
            "http://example.org/#top",
            "not a url",
        ] {
            assert!(
                matches!(parse_base_url(bad), Err(ApiError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        let Err(error) = parse_base_url("https://ops:pa55word@example.org") else {
            panic!("credentials accepted");
        };
        assert!(!error.to_string().contains("pa55word"), "{error}");
    }
}
